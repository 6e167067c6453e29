//! Errors of remote operations, classified by what the controller should do next.

use std::fmt;
use std::time::Duration;

use mpc_core::host_work::report::ScriptFailure;
use mpc_core::host_work::script::Operation;
use mpc_core::naming::UserName;

/// What the controller should do about a [`RemoteError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The host is down, slow or busy: mark it unhealthy, retry later with backoff.
    Unavailable,
    /// The host presented a key other than the pinned or remembered one: take it out of
    /// service (loud Event and metric) until an admin verifies and updates the key.
    HostKeyMismatch,
    /// The admin credentials or the host's setup are wrong (key refused, no
    /// passwordless sudo, tools missing): the host is unusable until an admin fixes it.
    Misconfigured,
    /// The operation itself failed on a working host: record the host as failed for
    /// this TaskRun and try another one.
    OperationFailed,
}

/// The step of SSH work that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SshStep {
    /// TCP connect, SSH handshake and authentication.
    Connect,
    /// Running a remote command.
    Command(Operation),
}

impl fmt::Display for SshStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshStep::Connect => f.write_str("connecting"),
            SshStep::Command(op) => write!(f, "running {op}"),
        }
    }
}

/// A remote operation failed. Every variant names the host; messages say what to do.
/// Key material never appears here, only SHA256 fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// TCP connect failed or the server closed the connection before we were in.
    #[error("cannot reach host {host} at {address}: {reason}; it is retried later")]
    Unreachable {
        /// Host name in the pool.
        host: String,
        /// `address:port` dialled.
        address: String,
        /// What failed.
        reason: String,
    },
    /// Connecting or a command took longer than its timeout.
    #[error("host {host}: timed out after {after:?} while {phase}; it is retried later")]
    Timeout {
        /// Host name in the pool.
        host: String,
        /// What was going on.
        phase: SshStep,
        /// The timeout.
        after: Duration,
    },
    /// The host key differs from the pinned or remembered one. Nothing was sent to the
    /// host: the connection was dropped before authentication.
    #[error(
        "host {host}: host key mismatch: expected {expected}, host presented {actual}; the host stays out of service until an admin verifies the host and updates its host-key (or removes the remembered key)"
    )]
    HostKeyMismatch {
        /// Host name in the pool.
        host: String,
        /// Fingerprint of the expected key.
        expected: String,
        /// Fingerprint (or description) of what the host presented.
        actual: String,
    },
    /// The host refused the admin key.
    #[error(
        "host {host}: the admin key {fingerprint} was refused for user {user}; check the host's admin Secret and that user's authorized_keys"
    )]
    AuthenticationFailed {
        /// Host name in the pool.
        host: String,
        /// Admin user.
        user: String,
        /// Fingerprint of the admin key offered.
        fingerprint: String,
    },
    /// The admin cannot act as root (sudo needs a password, or is not allowed).
    #[error(
        "host {host}: admin user {user} cannot act as root: {detail}; use root or give {user} passwordless sudo"
    )]
    NotPrivileged {
        /// Host name in the pool.
        host: String,
        /// Admin user.
        user: String,
        /// What sudo said.
        detail: String,
    },
    /// A program the scripts need is missing on the host.
    #[error("host {host}: {detail}; install it on the host")]
    MissingTool {
        /// Host name in the pool.
        host: String,
        /// Which program.
        detail: String,
    },
    /// The host was too busy (account files locked, processes not dying).
    #[error("host {host}: {operation} could not finish: {detail}; it is retried later")]
    Busy {
        /// Host name in the pool.
        host: String,
        /// The operation.
        operation: Operation,
        /// What the script reported.
        detail: String,
    },
    /// A remote script failed.
    #[error("host {host}: {operation}{} failed ({status}): {stderr}", user_suffix(.user))]
    CommandFailed {
        /// Host name in the pool.
        host: String,
        /// The operation.
        operation: Operation,
        /// The build user it was for.
        user: Option<UserName>,
        /// Exit status or signal, in words.
        status: String,
        /// The script's stderr, truncated.
        stderr: String,
    },
    /// A remote script answered something we do not understand.
    #[error("host {host}: unexpected answer from {operation}: {detail}")]
    UnexpectedOutput {
        /// Host name in the pool.
        host: String,
        /// The operation.
        operation: Operation,
        /// What is wrong.
        detail: String,
    },
    /// The connection dropped during an operation, also after one reconnect.
    #[error("host {host}: connection lost: {reason}; it is retried later")]
    ConnectionLost {
        /// Host name in the pool.
        host: String,
        /// What happened.
        reason: String,
    },
    /// The SSH handshake failed (no common algorithm, bad signature, …).
    #[error("host {host}: SSH handshake failed: {reason}")]
    Protocol {
        /// Host name in the pool.
        host: String,
        /// What failed.
        reason: String,
    },
    /// The remembered-key store failed.
    #[error(
        "host {host}: cannot read or store its remembered host key: {reason}; it is retried later"
    )]
    KnownHosts {
        /// Host name in the pool.
        host: String,
        /// What failed.
        reason: String,
    },
}

fn user_suffix(user: &Option<UserName>) -> String {
    user.as_ref()
        .map(|u| format!(" of {u}"))
        .unwrap_or_default()
}

impl RemoteError {
    /// What the controller should do about this error.
    pub fn class(&self) -> FailureClass {
        match self {
            RemoteError::Unreachable { .. }
            | RemoteError::Timeout { .. }
            | RemoteError::Busy { .. }
            | RemoteError::ConnectionLost { .. }
            | RemoteError::Protocol { .. }
            | RemoteError::KnownHosts { .. } => FailureClass::Unavailable,
            RemoteError::HostKeyMismatch { .. } => FailureClass::HostKeyMismatch,
            RemoteError::AuthenticationFailed { .. }
            | RemoteError::NotPrivileged { .. }
            | RemoteError::MissingTool { .. } => FailureClass::Misconfigured,
            RemoteError::CommandFailed { .. } | RemoteError::UnexpectedOutput { .. } => {
                FailureClass::OperationFailed
            }
        }
    }

    /// The host the error is about.
    pub fn host(&self) -> &str {
        match self {
            RemoteError::Unreachable { host, .. }
            | RemoteError::Timeout { host, .. }
            | RemoteError::HostKeyMismatch { host, .. }
            | RemoteError::AuthenticationFailed { host, .. }
            | RemoteError::NotPrivileged { host, .. }
            | RemoteError::MissingTool { host, .. }
            | RemoteError::Busy { host, .. }
            | RemoteError::CommandFailed { host, .. }
            | RemoteError::UnexpectedOutput { host, .. }
            | RemoteError::ConnectionLost { host, .. }
            | RemoteError::Protocol { host, .. }
            | RemoteError::KnownHosts { host, .. } => host,
        }
    }

    /// Attaches the host (and admin user) to a script failure.
    pub(crate) fn from_script(
        failure: ScriptFailure,
        host: &str,
        admin_user: &str,
        operation: Operation,
        user: Option<&UserName>,
    ) -> Self {
        let host = host.to_owned();
        match failure {
            ScriptFailure::Busy(detail) => RemoteError::Busy {
                host,
                operation,
                detail,
            },
            ScriptFailure::NotPrivileged(detail) => RemoteError::NotPrivileged {
                host,
                user: admin_user.to_owned(),
                detail,
            },
            ScriptFailure::MissingTool(detail) => RemoteError::MissingTool { host, detail },
            ScriptFailure::Failed { status, stderr } => RemoteError::CommandFailed {
                host,
                operation,
                user: user.cloned(),
                status,
                stderr,
            },
            ScriptFailure::UnexpectedOutput(detail) => RemoteError::UnexpectedOutput {
                host,
                operation,
                detail,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_names_host_and_both_fingerprints() {
        let e = RemoteError::HostKeyMismatch {
            host: "arm-1".into(),
            expected: "SHA256:aaa".into(),
            actual: "SHA256:bbb".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("arm-1") && text.contains("SHA256:aaa") && text.contains("SHA256:bbb")
        );
        assert_eq!(e.class(), FailureClass::HostKeyMismatch);
        assert_eq!(e.host(), "arm-1");
    }

    #[test]
    fn script_failures_map_to_classes() {
        let user = UserName::parse("u-0123456789abcdef0123456789ab").unwrap();
        let cases = [
            (
                ScriptFailure::Busy("locked".into()),
                FailureClass::Unavailable,
            ),
            (
                ScriptFailure::NotPrivileged("sudo: a password is required".into()),
                FailureClass::Misconfigured,
            ),
            (
                ScriptFailure::MissingTool("setpriv".into()),
                FailureClass::Misconfigured,
            ),
            (
                ScriptFailure::Failed {
                    status: "exit status 71".into(),
                    stderr: "useradd failed".into(),
                },
                FailureClass::OperationFailed,
            ),
        ];
        for (failure, class) in cases {
            let e =
                RemoteError::from_script(failure, "h", "admin", Operation::Provision, Some(&user));
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(e.host(), "h");
        }
        let e = RemoteError::from_script(
            ScriptFailure::Failed {
                status: "exit status 71".into(),
                stderr: "boom".into(),
            },
            "h",
            "admin",
            Operation::Cleanup,
            Some(&user),
        );
        assert_eq!(
            e.to_string(),
            "host h: mpc-cleanup of u-0123456789abcdef0123456789ab failed (exit status 71): boom"
        );
    }
}
