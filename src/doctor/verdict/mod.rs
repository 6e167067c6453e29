//! The decisions: an [`Observation`] becomes a [`Report`]. Pure: no I/O, no clock.
//!
//! `host_key` holds what a host's key is checked against, `contact` turns the
//! connection outcome into cells and findings, `user_test` the throwaway-user test.

mod contact;
mod host_key;
mod user_test;

use std::collections::BTreeMap;

use super::facts::{Observation, RememberedKey};
use super::report::{Cell, Check, Finding, HostRow, Report, Severity, Verdict};
use crate::remote::error::SshStep;
use crate::remote::{RemoteError, fingerprint};
#[cfg(test)]
pub(super) use contact::podman_message;
use contact::{admin_key_findings, contact_cells};
use host_key::KeyRule;
use mpc_core::config::{ExcludedHost, Host, HostKeyChecking, HostState, Problem, Subject};
use mpc_core::naming::{CONFIG_LABEL, HOST_CONFIG_NAME, KNOWN_HOSTS_CONFIG_NAME};
use user_test::user_test_cell;

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
            phase: SshStep::Connect,
            ..
        } => Stage::Reach,
        RemoteError::HostKeyMismatch { .. } | RemoteError::KnownHosts { .. } => Stage::HostKey,
        RemoteError::Timeout {
            phase: SshStep::Command(_),
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
        mpc_core::config::Severity::Warning => Severity::Warning,
        mpc_core::config::Severity::Error | mpc_core::config::Severity::Unsupported => {
            Severity::Failure
        }
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
