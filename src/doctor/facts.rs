//! What doctor saw, as plain data: the input of [`super::verdict::report`].
//!
//! The shells ([`super::cluster`], [`super::probe`]) fill these in; nothing here
//! decides whether something is a problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::remote::{LoginOutcome, Privilege, RemoteError};
use mpc_core::config::PoolConfig;
use mpc_core::host_work::report::ProbeFacts;
use mpc_core::naming::UserName;

/// Everything observed in one doctor run.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The controller namespace.
    pub namespace: String,
    /// Whether the host-config ConfigMap carries the config label.
    pub config_labelled: bool,
    /// The host-config data, parsed.
    pub config: PoolConfig,
    /// Host names to report on (as written in the keys); `None`: every host.
    pub selected: Option<BTreeSet<String>>,
    /// Why the known-hosts ConfigMap could not be read, when it could not (absent is fine).
    pub known_hosts_error: Option<String>,
    /// TaskRuns holding a slot (`assigned-host` label), per host name, or why they could
    /// not be counted.
    pub slots_used: Result<BTreeMap<String, u32>, String>,
    /// What was seen of each probed host (the valid, selected ones), by name.
    pub hosts: BTreeMap<String, HostFacts>,
}

/// What was seen of one valid host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The admin key Secret.
    pub admin_key: AdminKeyFact,
    /// The key remembered for the host in the known-hosts ConfigMap.
    pub remembered_key: RememberedKey,
    /// How far the admin connection got.
    pub contact: Contact,
    /// The throwaway-user test; `None` when the admin probe did not succeed.
    pub user_test: Option<UserTest>,
}

/// The host's admin key Secret (`host.<name>.secret`, key `id_rsa`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeyFact {
    /// The key was read and parsed.
    Loaded {
        /// SHA256 fingerprint of the key's public half.
        fingerprint: String,
        /// Whether the Secret carries the multi-platform-secret label.
        labelled: bool,
    },
    /// No such Secret in the controller namespace.
    SecretMissing,
    /// The Secret has no `id_rsa` key.
    KeyMissing,
    /// `id_rsa` is not a usable private key (the reason, never key material).
    Invalid(String),
    /// The API server did not answer or refused (the reason).
    Unreadable(String),
}

/// The entry for a host in the known-hosts ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RememberedKey {
    /// No entry (or the ConfigMap does not exist).
    None,
    /// A valid entry, by SHA256 fingerprint.
    Key(String),
    /// An entry that is not a public key (the reason).
    Invalid(String),
}

/// How far the connection to the host got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// The admin logged in and the probe script ran as root.
    Probed {
        /// Connect, log in and run the probe.
        round_trip: Duration,
        /// SHA256 fingerprint of the verified host key.
        host_key: String,
        /// How the admin acts as root.
        privilege: Privilege,
        /// What the probe found for the build users' rootless podman.
        host: ProbeFacts,
    },
    /// Without a usable admin key: the handshake (host key check) succeeded and a
    /// throwaway key was refused, as it should be.
    Handshake {
        /// Connect, handshake and the refused login.
        round_trip: Duration,
        /// SHA256 fingerprint of the verified host key.
        host_key: String,
    },
    /// The connection, host key check, login or probe failed.
    Failed {
        /// What failed.
        error: RemoteError,
        /// SHA256 fingerprint of the host key, when the handshake verified it before
        /// the failure.
        host_key: Option<String>,
    },
}

/// A step of the user test that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The host (or the connection to it) failed.
    Remote(RemoteError),
    /// Something on our side failed (key generation).
    Local(String),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Remote(e) => e.fmt(f),
            StepError::Local(why) => f.write_str(why),
        }
    }
}

/// The throwaway-user test: create a user with an expired key (login must be refused),
/// give it a valid key (login must work), remove it (it must be gone). Steps after a
/// failed one are `None`; the removal is always attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTest {
    /// The throwaway user.
    pub user: UserName,
    /// Creating the user with an already expired key.
    pub provision_expired: Result<(), StepError>,
    /// Logging in with the expired key.
    pub expired_login: Option<Result<LoginOutcome, StepError>>,
    /// Giving the user a valid key.
    pub provision_valid: Option<Result<(), StepError>>,
    /// Logging in with the valid key.
    pub valid_login: Option<Result<LoginOutcome, StepError>>,
    /// Removing the user.
    pub cleanup: Result<(), StepError>,
    /// After a successful removal: whether the user is still listed on the host.
    pub still_present: Option<Result<bool, StepError>>,
}
