//! What a host's key is checked against, and what to say about it.

use crate::doctor::facts::RememberedKey;
use crate::doctor::report::{Cell, Status};
use mpc_core::config::HostKeyChecking;
use mpc_core::naming::KNOWN_HOSTS_CONFIG_NAME;

/// What the host's key is checked against.
pub(super) struct KeyRule<'a> {
    pub(super) name: &'a str,
    pub(super) namespace: &'a str,
    pub(super) pinned: Option<String>,
    pub(super) checking: HostKeyChecking,
    pub(super) remembered: &'a RememberedKey,
}

impl KeyRule<'_> {
    /// The fingerprint the host must present, if any.
    pub(super) fn expected(&self) -> Option<String> {
        match (&self.pinned, self.checking, self.remembered) {
            (Some(pin), _, _) => Some(pin.clone()),
            (None, HostKeyChecking::AcceptNew, RememberedKey::Key(fp)) => Some(fp.clone()),
            _ => None,
        }
    }

    /// Cell and note for a key the handshake verified.
    pub(super) fn verified(&self) -> (Cell, String) {
        let name = self.name;
        if self.pinned.is_some() {
            return (
                Cell::new(Status::Pass, "pinned"),
                format!("matches host.{name}.host-key"),
            );
        }
        match (self.checking, self.remembered) {
            (HostKeyChecking::Off, _) => (
                Cell::new(Status::Info, "unchecked"),
                "not checked: host-key-checking is off".to_owned(),
            ),
            (_, RememberedKey::Key(_)) => (
                Cell::new(Status::Pass, "remembered"),
                format!("matches the key remembered in ConfigMap {KNOWN_HOSTS_CONFIG_NAME}"),
            ),
            (_, RememberedKey::Invalid(_)) => (
                Cell::new(Status::Fail, "invalid"),
                format!("the entry in ConfigMap {KNOWN_HOSTS_CONFIG_NAME} is invalid"),
            ),
            (_, RememberedKey::None) => (
                Cell::new(Status::Info, "new"),
                "not remembered yet: the controller remembers it on first contact; compare it \
                 with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, or pin it \
                 with host-key"
                    .to_owned(),
            ),
        }
    }

    pub(super) fn mismatch_message(&self, expected: &str, actual: &str) -> String {
        let (name, ns) = (self.name, self.namespace);
        let (source, fix) = if self.pinned.is_some() {
            (
                format!("host.{name}.host-key pins {expected}"),
                format!("update host.{name}.host-key"),
            )
        } else {
            (
                format!(
                    "the controller remembered {expected} for it (entry {name} of ConfigMap \
                     {KNOWN_HOSTS_CONFIG_NAME})"
                ),
                format!(
                    "delete the entry: kubectl edit configmap {KNOWN_HOSTS_CONFIG_NAME} -n {ns} \
                     (the controller remembers the new key on next contact), or pin the new \
                     key with host.{name}.host-key"
                ),
            )
        };
        format!(
            "the host presented {actual}, but {source}. If the host was reinstalled or its \
             keys rotated, check the key on the host itself (`ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`), then {fix}; otherwise the connection may be \
             intercepted. The controller does not use this host until this is fixed"
        )
    }
}
