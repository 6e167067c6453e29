//! One-off logins: does the host's sshd accept this key for this user right now?
//!
//! The controller itself only logs in as the admin; this is for checks such as
//! `doctor`'s "an expired build key is refused, a valid one is accepted".

use std::time::Duration;

use crate::remote::connect::connect;
use crate::remote::error::RemoteError;
use crate::remote::keys::AdminKey;
use crate::remote::session::SshPool;
use crate::remote::target::HostTarget;

/// How long the polite SSH disconnect after a successful login may take.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// What sshd answered to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    /// sshd accepted the key and a command (`id -u`) ran as that user.
    Accepted,
    /// sshd refused the key for that user.
    Refused,
}

impl SshPool {
    /// Tries to log in to `host` as `user` with `key` on a connection of its own (not
    /// pooled, closed before returning), within the pool's connect timeout.
    ///
    /// The host key is checked exactly as for admin connections (`host`'s policy), so
    /// a mismatch is an error, never a login. Only the admin user and key of `host` are
    /// replaced. `key` may be any private key, e.g. a build user's issued key parsed
    /// with [`AdminKey::parse`].
    pub async fn try_login(
        &self,
        host: &HostTarget,
        user: &str,
        key: &AdminKey,
    ) -> Result<LoginOutcome, RemoteError> {
        let as_user = HostTarget {
            admin_user: user.to_owned(),
            admin_key: key.clone(),
            ..host.clone()
        };
        match connect(&as_user, self.config()).await {
            Ok(connection) => {
                let bye = connection.handle.disconnect(
                    russh::Disconnect::ByApplication,
                    "login check done",
                    "en",
                );
                // Best effort: dropping the handle closes the connection anyway.
                let _ = tokio::time::timeout(DISCONNECT_GRACE, bye).await;
                Ok(LoginOutcome::Accepted)
            }
            Err(RemoteError::AuthenticationFailed { .. }) => Ok(LoginOutcome::Refused),
            Err(other) => Err(other),
        }
    }
}
