//! The connection outcome and the admin Secret → cells and findings with advice.

use std::time::Duration;

use super::host_key::KeyRule;
use super::{Stage, stage};
use crate::doctor::facts::{AdminKeyFact, Contact, HostFacts, Observation};
use crate::doctor::report::{Cell, Check, Finding, HostRow, Status};
use crate::remote::{Privilege, RemoteError};
use mpc_core::config::Host;
use mpc_core::host_work::report::ProbeFacts;
use mpc_core::naming::SECRET_LABEL;

pub(super) fn admin_key_findings(
    obs: &Observation,
    host: &Host,
    fact: &AdminKeyFact,
    problems: &mut Vec<Finding>,
) {
    let (secret, ns, name) = (&host.secret, &obs.namespace, host.name.as_str());
    let message = match fact {
        AdminKeyFact::Loaded { labelled: true, .. } => return,
        AdminKeyFact::Loaded {
            labelled: false, ..
        } => format!(
            "Secret {secret} lacks the label {SECRET_LABEL}, so the controller does not see \
             it; label it: kubectl label secret {secret} -n {ns} {SECRET_LABEL}=true"
        ),
        AdminKeyFact::SecretMissing => format!(
            "Secret {secret} (host.{name}.secret) does not exist in namespace {ns}; create it \
             with the admin private key: kubectl create secret generic {secret} -n {ns} \
             --from-file=id_rsa=<key file>, then kubectl label secret {secret} -n {ns} \
             {SECRET_LABEL}=true"
        ),
        AdminKeyFact::KeyMissing => {
            format!("Secret {secret} has no key id_rsa; store the admin private key under id_rsa")
        }
        AdminKeyFact::Invalid(why) => format!("Secret {secret}, key id_rsa: {why}"),
        AdminKeyFact::Unreadable(why) => {
            format!("cannot read Secret {secret}: {why}; doctor needs get on Secrets in {ns}")
        }
    };
    problems.push(Finding::failure(Check::AdminKey, message));
}

/// What the host lacks for the build users' rootless podman and how to install it, or
/// `None` when nothing is missing.
pub(in crate::doctor) fn podman_message(facts: &ProbeFacts) -> Option<String> {
    if facts.rootless_podman_ready() {
        return None;
    }
    let mut lacks = Vec::new();
    let missing = |tool: &str| facts.missing_for_podman.iter().any(|t| t == tool);
    if missing("newuidmap") || missing("newgidmap") {
        lacks.push(
            "newuidmap/newgidmap (Debian/Ubuntu: apt-get install uidmap; Fedora/RHEL: dnf \
             install shadow-utils)"
                .to_owned(),
        );
    }
    if missing("podman") {
        lacks.push("podman (apt-get install podman / dnf install podman)".to_owned());
    }
    if missing("slirp4netns") {
        lacks.push(
            "a rootless network helper (apt-get install slirp4netns / dnf install passt)"
                .to_owned(),
        );
    }
    if !facts.user_namespaces {
        lacks.push(
            "unprivileged user namespaces (sysctl -w user.max_user_namespaces=28633, and \
             kernel.unprivileged_userns_clone=1 on old Debian kernels; persist it in \
             /etc/sysctl.d)"
                .to_owned(),
        );
    }
    Some(format!(
        "build users cannot run rootless podman, which the remote Tasks build with; the \
         host lacks {}",
        lacks.join(", ")
    ))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn privilege_text(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::Root => "root",
        Privilege::Sudo => "sudo",
    }
}

pub(super) fn contact_cells(
    row: &mut HostRow,
    rule: &KeyRule<'_>,
    host: &Host,
    facts: &HostFacts,
    address: &str,
    problems: &mut Vec<Finding>,
) {
    let key_usable = matches!(facts.admin_key, AdminKeyFact::Loaded { .. });
    let no_key = || Cell::new(Status::Fail, "no key");
    let verified = |row: &mut HostRow, fp: &str| {
        let (cell, note) = rule.verified();
        row.host_key = cell;
        row.host_key_fingerprint = Some(fp.to_owned());
        row.host_key_note = Some(note);
    };
    match &facts.contact {
        Contact::Probed {
            round_trip,
            host_key,
            privilege,
            host: probed,
        } => {
            row.reachable = Cell::new(Status::Pass, format!("{} ms", millis(*round_trip)));
            row.round_trip_ms = Some(millis(*round_trip));
            verified(row, host_key);
            row.admin = Cell::new(Status::Pass, privilege_text(*privilege));
            if let Some(message) = podman_message(probed) {
                problems.push(Finding::failure(Check::Podman, message));
            }
        }
        Contact::Handshake {
            round_trip,
            host_key,
        } => {
            row.reachable = Cell::new(Status::Pass, format!("{} ms", millis(*round_trip)));
            row.round_trip_ms = Some(millis(*round_trip));
            verified(row, host_key);
            row.admin = if key_usable {
                Cell::skipped()
            } else {
                no_key()
            };
        }
        Contact::Failed { error, host_key } => {
            if !key_usable {
                row.admin = no_key();
            }
            match stage(error) {
                Stage::Reach => {
                    let timed_out = matches!(error, RemoteError::Timeout { .. });
                    row.reachable =
                        Cell::new(Status::Fail, if timed_out { "timeout" } else { "no" });
                    problems.push(Finding::failure(
                        Check::Reachable,
                        reach_message(error, address, host),
                    ));
                }
                Stage::HostKey => {
                    row.reachable = Cell::new(Status::Pass, "yes");
                    match error {
                        RemoteError::HostKeyMismatch {
                            expected, actual, ..
                        } => {
                            row.host_key = Cell::new(Status::Fail, "MISMATCH");
                            if actual.starts_with("SHA256:") {
                                row.host_key_fingerprint = Some(actual.clone());
                            }
                            row.expected_host_key = Some(expected.clone());
                            row.host_key_note = Some(format!("expected {expected}"));
                            problems.push(Finding::failure(
                                Check::HostKey,
                                rule.mismatch_message(expected, actual),
                            ));
                        }
                        other => {
                            row.host_key = Cell::new(Status::Fail, "error");
                            problems.push(Finding::failure(Check::HostKey, other.to_string()));
                        }
                    }
                }
                Stage::Admin => {
                    row.reachable = Cell::new(Status::Pass, "yes");
                    if let Some(fp) = host_key {
                        verified(row, fp);
                    }
                    if key_usable {
                        let (text, message) = admin_failure(error, host);
                        row.admin = Cell::new(Status::Fail, text);
                        problems.push(Finding::failure(Check::Admin, message));
                    } else {
                        // The throwaway-key handshake failed after the host key check;
                        // the admin-key finding already says what to fix.
                        problems.push(Finding::failure(Check::Admin, error.to_string()));
                    }
                }
            }
        }
    }
}

fn reach_message(error: &RemoteError, address: &str, host: &Host) -> String {
    let name = host.name.as_str();
    match error {
        RemoteError::Unreachable { reason, .. } => format!(
            "cannot connect to {address}: {reason}; check that the host is up, that sshd \
             listens on that address and port (host.{name}.address, host.{name}.port) and that \
             no firewall blocks the controller"
        ),
        RemoteError::Timeout { after, .. } => format!(
            "no SSH answer from {address} within {after:?}: the host or its sshd hangs, or a \
             firewall drops the packets; check the host and its sshd, or give a slow link \
             more --timeout"
        ),
        RemoteError::ConnectionLost { reason, .. } | RemoteError::Protocol { reason, .. } => {
            format!(
                "the SSH connection to {address} failed: {reason}; check the host's sshd and \
                 its log"
            )
        }
        other => other.to_string(),
    }
}

fn admin_failure(error: &RemoteError, host: &Host) -> (&'static str, String) {
    let (user, secret) = (&host.user, &host.secret);
    match error {
        RemoteError::AuthenticationFailed { fingerprint, .. } => (
            "refused",
            format!(
                "sshd refused the admin key {fingerprint} (Secret {secret}) for user {user}; add \
                 its public half to {user}'s authorized_keys on the host, or put {user}'s key \
                 into the Secret"
            ),
        ),
        RemoteError::NotPrivileged { detail, .. } => (
            "no root",
            format!(
                "admin user {user} cannot act as root ({detail}); log in as root, or give \
                 {user} passwordless sudo (`{user} ALL=(ALL) NOPASSWD: ALL` in \
                 /etc/sudoers.d/{user})"
            ),
        ),
        RemoteError::MissingTool { detail, .. } => (
            "no tools",
            format!(
                "{detail}; provisioning needs useradd, userdel, groupdel (package passwd or \
                 shadow-utils), getent, setpriv (util-linux), pkill and pgrep (procps): \
                 install what is missing"
            ),
        ),
        RemoteError::Timeout { after, .. } => (
            "timeout",
            format!(
                "the admin probe did not finish within {after:?}: the host is overloaded or \
                 hangs; check it, or give a slow link more --timeout"
            ),
        ),
        other => ("error", other.to_string()),
    }
}
