//! How the SSH pool connects and how long it waits.

use std::time::Duration;

/// Timeouts and limits of an [`SshPool`](super::SshPool).
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// Limit for TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    /// Limit for one remote command (generous: deleting a big home takes a while).
    pub command_timeout: Duration,
    /// Channels open at once per host connection; sshd's `MaxSessions` defaults to 10.
    pub max_channels_per_host: usize,
    /// Keepalive interval; three unanswered keepalives close the connection.
    pub keepalive_interval: Option<Duration>,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(120),
            max_channels_per_host: 10,
            keepalive_interval: Some(Duration::from_secs(30)),
        }
    }
}
