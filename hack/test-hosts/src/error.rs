use std::path::PathBuf;

/// What can go wrong while starting, driving or stopping a test host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the fixture relies on is missing from the machine.
    #[error("test hosts need {0}; run hack/test.sh, which installs the Debian packages")]
    Missing(String),
    /// The fixture is not running as root.
    #[error(
        "test hosts need root (namespaces, mounts, port 22); run as root or through hack/test.sh"
    )]
    NotRoot,
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the fixture was doing.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A helper program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A helper command ran but failed.
    #[error("{what} failed ({status}): {stderr}")]
    Command {
        /// What the command was for.
        what: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// sshd did not come up or go down in time.
    #[error("{0}")]
    Timeout(String),
    /// Every loopback address tried had port 22 taken.
    #[error(
        "no free loopback address with port 22 after {0} tries; is something listening on 0.0.0.0:22?"
    )]
    NoFreeAddress(usize),
    /// The address asked for has port 22 taken.
    #[error("{0}:22 is taken by another process; pick another loopback address")]
    AddressInUse(std::net::Ipv4Addr),
    /// Anything else during setup.
    #[error("test host setup: {0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
