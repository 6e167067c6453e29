//! The decisions: an [`Observation`] becomes a [`Report`]. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use super::facts::{AdminKeyFact, Contact, HostFacts, Observation, RememberedKey, UserTest};
use super::report::{Cell, Check, Finding, HostRow, Report, Severity, Status, Verdict};
use crate::config::{ExcludedHost, Host, HostKeyChecking, HostState, Problem, Subject};
use crate::naming::{CONFIG_LABEL, HOST_CONFIG_NAME, KNOWN_HOSTS_CONFIG_NAME, SECRET_LABEL};
use crate::remote::error::Phase;
use crate::remote::{LoginOutcome, Privilege, RemoteError, fingerprint};

/// Where a failed connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before or during the handshake: the host is not (properly) reachable.
    Reach,
    /// The host key was refused.
    HostKey,
    /// The host key was verified; the admin login or the probe failed.
    Admin,
}

fn stage(error: &RemoteError) -> Stage {
    match error {
        RemoteError::Unreachable { .. }
        | RemoteError::ConnectionLost { .. }
        | RemoteError::Protocol { .. }
        | RemoteError::Timeout {
            phase: Phase::Connect,
            ..
        } => Stage::Reach,
        RemoteError::HostKeyMismatch { .. } | RemoteError::KnownHosts { .. } => Stage::HostKey,
        RemoteError::Timeout {
            phase: Phase::Command(_),
            ..
        }
        | RemoteError::AuthenticationFailed { .. }
        | RemoteError::NotPrivileged { .. }
        | RemoteError::MissingTool { .. }
        | RemoteError::Busy { .. }
        | RemoteError::CommandFailed { .. }
        | RemoteError::UnexpectedOutput { .. } => Stage::Admin,
    }
}

/// Whether the host key had been verified when `error` happened (so the expected key
/// is the one the host presented).
pub fn host_key_verified_before(error: &RemoteError) -> bool {
    stage(error) == Stage::Admin
}

/// Builds the report from what was observed.
pub fn report(obs: &Observation) -> Report {
    let selected = |name: &str| obs.selected.as_ref().is_none_or(|s| s.contains(name));
    let mut config_problems = Vec::new();
    if !obs.config_labelled {
        config_problems.push(Finding::failure(
            Check::Config,
            format!(
                "ConfigMap {HOST_CONFIG_NAME} in namespace {ns} lacks the label {CONFIG_LABEL}, \
                 so the controller ignores it; label it: kubectl label configmap \
                 {HOST_CONFIG_NAME} -n {ns} {CONFIG_LABEL}=hosts",
                ns = obs.namespace
            ),
        ));
    }
    let mut host_findings: BTreeMap<&str, Vec<Finding>> = BTreeMap::new();
    for problem in &obs.config.problems {
        match &problem.subject {
            Subject::Host(name) => {
                if selected(name) {
                    host_findings
                        .entry(name.as_str())
                        .or_default()
                        .push(config_finding(problem));
                }
            }
            Subject::Platform(_) | Subject::Global => {
                config_problems.push(config_finding(problem));
            }
        }
    }

    let mut cluster_problems = Vec::new();
    if let Some(why) = &obs.known_hosts_error {
        cluster_problems.push(Finding::failure(
            Check::KnownHosts,
            format!(
                "cannot read ConfigMap {KNOWN_HOSTS_CONFIG_NAME} in namespace {ns}: {why}; the \
                 keys of unpinned hosts were not compared with the keys the controller \
                 remembered (doctor needs get on ConfigMaps in {ns})",
                ns = obs.namespace
            ),
        ));
    }
    if let Err(why) = &obs.slots_used {
        cluster_problems.push(Finding::failure(
            Check::TaskRuns,
            format!("cannot count the TaskRuns holding slots: {why}"),
        ));
    }

    let mut rows: Vec<HostRow> = Vec::new();
    for host in obs.config.hosts.values() {
        if selected(host.name.as_str()) {
            let findings = host_findings.remove(host.name.as_str()).unwrap_or_default();
            rows.push(host_row(obs, host, findings));
        }
    }
    for host in &obs.config.excluded_hosts {
        if selected(&host.name) {
            let findings = host_findings.remove(host.name.as_str()).unwrap_or_default();
            rows.push(excluded_row(obs, host, findings));
        }
    }
    // Problems of hosts that are in neither list cannot happen with `config::parse`;
    // keep them visible all the same.
    config_problems.extend(host_findings.into_values().flatten());
    rows.sort_by(|a, b| a.name.cmp(&b.name));

    let healthy = config_problems.is_empty()
        && cluster_problems.is_empty()
        && rows.iter().all(|r| r.verdict == Verdict::Ok);
    Report {
        namespace: obs.namespace.clone(),
        config_problems,
        cluster_problems,
        hosts: rows,
        healthy,
    }
}

fn config_finding(problem: &Problem) -> Finding {
    let severity = match problem.severity {
        crate::config::Severity::Warning => Severity::Warning,
        crate::config::Severity::Error | crate::config::Severity::Unsupported => Severity::Failure,
    };
    Finding {
        check: Check::Config,
        severity,
        key: Some(problem.key.clone()),
        message: problem.message.clone(),
    }
}

fn endpoint(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn slots_used(obs: &Observation, name: &str) -> Option<u32> {
    obs.slots_used
        .as_ref()
        .ok()
        .map(|counts| counts.get(name).copied().unwrap_or(0))
}

fn verdict_of(problems: &[Finding]) -> Verdict {
    if problems.iter().any(|f| f.severity == Severity::Failure) {
        Verdict::Fail
    } else if problems.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Warn
    }
}

fn excluded_row(obs: &Observation, host: &ExcludedHost, mut problems: Vec<Finding>) -> HostRow {
    if problems.is_empty() {
        problems.push(Finding::failure(
            Check::Config,
            "the host's entries are invalid, so the controller does not use it",
        ));
    }
    HostRow {
        name: host.name.clone(),
        platform: host.platform.as_ref().map(ToString::to_string),
        address: None,
        state: None,
        reachable: Cell::skipped(),
        round_trip_ms: None,
        host_key: Cell::skipped(),
        host_key_fingerprint: None,
        expected_host_key: None,
        host_key_note: None,
        admin: Cell::skipped(),
        expiry_time: Cell::skipped(),
        slots_used: slots_used(obs, &host.name),
        slots_total: None,
        verdict: Verdict::Excluded,
        problems,
    }
}

/// What the host's key is checked against.
struct KeyRule<'a> {
    name: &'a str,
    namespace: &'a str,
    pinned: Option<String>,
    checking: HostKeyChecking,
    remembered: &'a RememberedKey,
}

impl KeyRule<'_> {
    /// The fingerprint the host must present, if any.
    fn expected(&self) -> Option<String> {
        match (&self.pinned, self.checking, self.remembered) {
            (Some(pin), _, _) => Some(pin.clone()),
            (None, HostKeyChecking::AcceptNew, RememberedKey::Key(fp)) => Some(fp.clone()),
            _ => None,
        }
    }

    /// Cell and note for a key the handshake verified.
    fn verified(&self) -> (Cell, String) {
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

    fn mismatch_message(&self, expected: &str, actual: &str) -> String {
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

fn host_row(obs: &Observation, host: &Host, mut problems: Vec<Finding>) -> HostRow {
    let name = host.name.as_str();
    let address = endpoint(&host.address, host.port);
    let none = RememberedKey::None;
    let facts = obs.hosts.get(name);
    let rule = KeyRule {
        name,
        namespace: &obs.namespace,
        pinned: host.host_key.as_ref().map(|k| fingerprint(k.public_key())),
        checking: obs.config.settings.host_key_checking,
        remembered: facts.map_or(&none, |f| &f.remembered_key),
    };
    let mut row = HostRow {
        name: name.to_owned(),
        platform: Some(host.platform.to_string()),
        address: Some(address.clone()),
        state: Some(host.state.as_str().to_owned()),
        reachable: Cell::skipped(),
        round_trip_ms: None,
        host_key: Cell::skipped(),
        host_key_fingerprint: None,
        expected_host_key: rule.expected(),
        host_key_note: None,
        admin: Cell::skipped(),
        expiry_time: Cell::skipped(),
        slots_used: slots_used(obs, name),
        slots_total: Some(host.concurrency),
        verdict: Verdict::Ok,
        problems: Vec::new(),
    };

    match facts {
        Some(facts) => {
            admin_key_findings(obs, host, &facts.admin_key, &mut problems);
            if let (None, HostKeyChecking::AcceptNew, RememberedKey::Invalid(why)) =
                (&rule.pinned, rule.checking, rule.remembered)
            {
                problems.push(Finding::failure(
                    Check::HostKey,
                    format!(
                        "the entry {name} of ConfigMap {KNOWN_HOSTS_CONFIG_NAME} is not a public \
                         key ({why}); delete it (kubectl edit configmap {KNOWN_HOSTS_CONFIG_NAME} \
                         -n {ns}) so the controller remembers the host's key again, or pin the \
                         key with host.{name}.host-key",
                        ns = obs.namespace
                    ),
                ));
            }
            contact_cells(&mut row, &rule, host, facts, &address, &mut problems);
            if let Some(test) = &facts.user_test {
                row.expiry_time = user_test_cell(test, &mut problems);
            }
        }
        None => problems.push(Finding::failure(
            Check::Reachable,
            "doctor did not probe this host; run doctor again",
        )),
    }

    if let (Some(used), Some(total)) = (row.slots_used, row.slots_total)
        && used > total
    {
        problems.push(Finding::warning(
            Check::Slots,
            format!(
                "{used} TaskRuns hold slots on this host, more than its concurrency {total}: \
                 expected for a while after concurrency was lowered or after a switch from \
                 the Go controller (they finish first); otherwise report it as a controller bug"
            ),
        ));
    }
    row.verdict = verdict_of(&problems);
    row.problems = problems;
    row
}

fn admin_key_findings(
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn privilege_text(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::Root => "root",
        Privilege::Sudo => "sudo",
    }
}

fn contact_cells(
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
        } => {
            row.reachable = Cell::new(Status::Pass, format!("{} ms", millis(*round_trip)));
            row.round_trip_ms = Some(millis(*round_trip));
            verified(row, host_key);
            row.admin = Cell::new(Status::Pass, privilege_text(*privilege));
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

fn user_test_cell(test: &UserTest, problems: &mut Vec<Finding>) -> Cell {
    let user = &test.user;
    let fail = |problems: &mut Vec<Finding>, text: &str, message: String| {
        problems.push(Finding::failure(Check::ExpiryTime, message));
        Cell::new(Status::Fail, text)
    };
    let cell = match (
        &test.provision_expired,
        &test.expired_login,
        &test.provision_valid,
        &test.valid_login,
    ) {
        (Err(e), ..) => fail(
            problems,
            "no user",
            format!(
                "creating the throwaway user {user} failed, so provisioning for builds fails \
                 too: {e}"
            ),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Accepted)), ..) => fail(
            problems,
            "IGNORED",
            "sshd accepted a key whose expiry-time passed a day ago, so keys issued to builds \
             never expire on this host; check the host's clock (`date -u`) and that sshd reads \
             ~/.ssh/authorized_keys with its options (OpenSSH 7.7 or later)"
                .to_owned(),
        ),
        (Ok(()), Some(Err(e)), ..) => fail(
            problems,
            "error",
            format!("could not check that an expired key is refused: {e}"),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Refused)), Some(Err(e)), _) => fail(
            problems,
            "error",
            format!("giving the throwaway user {user} a valid key failed: {e}"),
        ),
        (
            Ok(()),
            Some(Ok(LoginOutcome::Refused)),
            Some(Ok(())),
            Some(Ok(LoginOutcome::Accepted)),
        ) => Cell::new(Status::Pass, "honoured"),
        (
            Ok(()),
            Some(Ok(LoginOutcome::Refused)),
            Some(Ok(())),
            Some(Ok(LoginOutcome::Refused)),
        ) => fail(
            problems,
            "no login",
            "sshd refused the throwaway user's valid key, so builds cannot log in to this \
                 host; check sshd_config (AllowUsers, AllowGroups, DenyUsers, \
                 AuthorizedKeysFile) and that its OpenSSH understands expiry-time (7.7 or \
                 later); the host's sshd log says why"
                .to_owned(),
        ),
        (Ok(()), Some(Ok(LoginOutcome::Refused)), Some(Ok(())), Some(Err(e))) => fail(
            problems,
            "error",
            format!("could not log in as the throwaway user {user}: {e}"),
        ),
        _ => fail(
            problems,
            "error",
            "the throwaway-user test stopped early; run doctor again".to_owned(),
        ),
    };
    let leftover = format!(
        "remove it on the host with `userdel --remove {user}` (the controller's reaper also \
         removes leftover build users)"
    );
    match (&test.cleanup, &test.still_present) {
        (Err(e), _) => problems.push(Finding::failure(
            Check::Cleanup,
            format!("removing the throwaway user {user} failed: {e}; if it exists, {leftover}"),
        )),
        (Ok(()), Some(Ok(true))) => problems.push(Finding::failure(
            Check::Cleanup,
            format!(
                "the throwaway user {user} is still on the host after cleanup, so build users \
                 would leak too; {leftover}"
            ),
        )),
        (Ok(()), Some(Err(e))) => problems.push(Finding::failure(
            Check::Cleanup,
            format!("could not check that the throwaway user {user} is gone: {e}"),
        )),
        (Ok(()), Some(Ok(false)) | None) => {}
    }
    cell
}

/// The verdict text shown in the table.
pub fn verdict_text(row: &HostRow) -> String {
    match row.verdict {
        Verdict::Ok => match row.state.as_deref() {
            Some(state) if state != HostState::Active.as_str() => format!("ok ({state})"),
            _ => "ok".to_owned(),
        },
        Verdict::Warn => "warn".to_owned(),
        Verdict::Fail => "FAIL".to_owned(),
        Verdict::Excluded => "excluded".to_owned(),
    }
}
