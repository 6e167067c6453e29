//! Which upstream generator's output to reproduce.
//!
//! The Go tool changed over three repositories; each generation below reproduces the
//! output that was checked in at the time (TASKGEN.md §2.4).

use crate::error::Error;

/// One historical behaviour of the upstream generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// konflux-ci/multi-platform-controller `cmd/taskgen` (final logic, 2024-06): the build
    /// step runs in the multi-platform-runner image and pulls the image back as OCI.
    Mpc,
    /// build-definitions with `--task-version 0.1` (2025 generator): no
    /// IMAGE_APPEND_PLATFORM, other steps untouched, legacy container-mount block.
    BuildDefinitions01,
    /// build-definitions with `--task-version 0.2` or `0.3` (2025 generator): like 0.1 but
    /// with PLATFORM / IMAGE_APPEND_PLATFORM handling in every step.
    BuildDefinitionsLegacy,
    /// build-definitions' last generator (2026-07) for any other version, e.g. 0.10.
    BuildDefinitions,
    /// container-build-catalog, the current home of the tasks (the default).
    Newest,
}

impl Generation {
    /// Maps a `--task-version` value to a generation: none → newest, `mpc` → the
    /// controller's own tool, `0.1` / `0.2`–`0.3` / any other `X.Y` → build-definitions.
    pub fn from_task_version(version: Option<&str>) -> Result<Self, Error> {
        let Some(version) = version else {
            return Ok(Generation::Newest);
        };
        let well_formed = version.split('.').count() >= 2
            && version
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        match version {
            "mpc" => Ok(Generation::Mpc),
            "0.1" => Ok(Generation::BuildDefinitions01),
            "0.2" | "0.3" => Ok(Generation::BuildDefinitionsLegacy),
            _ if well_formed => Ok(Generation::BuildDefinitions),
            _ => Err(Error::InvalidTaskVersion(version.to_owned())),
        }
    }

    /// Whether PLATFORM / IMAGE_APPEND_PLATFORM are added and every other script step
    /// gets the IMAGE suffix snippet.
    pub fn appends_platform(self) -> bool {
        !matches!(self, Generation::Mpc | Generation::BuildDefinitions01)
    }

    /// Whether the remote wrapper needs the stepTemplate mount named `shared`.
    pub fn needs_shared_mount(self) -> bool {
        self == Generation::Newest
    }

    /// Whether the output carries `metadata.creationTimestamp: null`, as the Kubernetes
    /// libraries of that era wrote into every checked-in file.
    pub fn writes_null_creation_timestamp(self) -> bool {
        matches!(
            self,
            Generation::Mpc | Generation::BuildDefinitions01 | Generation::BuildDefinitionsLegacy
        )
    }

    /// The image the MPC generator put on the remote step (it ran ssh/rsync from there).
    pub fn runner_image(self) -> Option<&'static str> {
        (self == Generation::Mpc).then_some(
            "quay.io/redhat-appstudio/multi-platform-runner:01c7670e81d5120347cf0ad13372742489985e5f@sha256:246adeaaba600e207131d63a7f706cffdcdc37d8f600c56187123ec62823ff44",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_versions_map_to_generations() {
        let g = |v| Generation::from_task_version(v).expect("valid");
        assert_eq!(g(None), Generation::Newest);
        assert_eq!(g(Some("mpc")), Generation::Mpc);
        assert_eq!(g(Some("0.1")), Generation::BuildDefinitions01);
        assert_eq!(g(Some("0.2")), Generation::BuildDefinitionsLegacy);
        assert_eq!(g(Some("0.3")), Generation::BuildDefinitionsLegacy);
        assert_eq!(g(Some("0.4")), Generation::BuildDefinitions);
        assert_eq!(g(Some("0.10")), Generation::BuildDefinitions);
        assert_eq!(g(Some("1.0.2")), Generation::BuildDefinitions);
    }

    #[test]
    fn malformed_versions_are_rejected() {
        for bad in ["", "latest", "0", "0.", ".1", "v0.1", "0.1-rc"] {
            assert!(
                matches!(
                    Generation::from_task_version(Some(bad)),
                    Err(Error::InvalidTaskVersion(_))
                ),
                "{bad:?}"
            );
        }
    }
}
