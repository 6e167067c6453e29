use std::path::PathBuf;

/// What can go wrong while setting up or driving the EC2 testbed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// moto's server is not installed where the testbed looks for it.
    #[error(
        "moto's server is not installed at {path}: run hack/test.sh (or `source hack/lib/setup.sh && install_moto`), \
         or point MPC_MOTO_SERVER at a moto_server binary"
    )]
    MotoMissing {
        /// Where the testbed looked.
        path: PathBuf,
    },
    /// The installed moto is not the pinned one.
    #[error(
        "moto in {venv} was not installed from hack/ec2-testbed/moto-requirements.txt (moto {wanted}): \
         run hack/test.sh (or `source hack/lib/setup.sh && install_moto`) to reinstall it"
    )]
    MotoStale {
        /// The virtualenv.
        venv: PathBuf,
        /// The pinned moto version.
        wanted: &'static str,
    },
    /// moto's server did not come up.
    #[error("moto's server did not start: {0}")]
    MotoStart(String),
    /// A call to the EC2 (or IAM) API of moto failed.
    #[error("{what}: {detail}")]
    Api {
        /// What the testbed was doing.
        what: String,
        /// The SDK's or moto's words.
        detail: String,
    },
    /// A local I/O operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What the testbed was doing.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Generating an SSH key failed.
    #[error("generate an SSH key: {0}")]
    Key(String),
    /// A host for an instance could not be started.
    #[error(transparent)]
    Host(#[from] test_hosts::Error),
    /// A condition was not met in time.
    #[error("timed out after {seconds:.1} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: f64,
    },
}

impl Error {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }

    pub(crate) fn api(what: impl Into<String>, detail: impl std::fmt::Display) -> Error {
        Error::Api {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
