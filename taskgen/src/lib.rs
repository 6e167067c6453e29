//! taskgen: turns a buildah-style Tekton Task into its remote (SSH) variant.
