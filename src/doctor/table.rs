//! The report as text: configuration and cluster problems, one table row per host with
//! its problems right below it, the host-key fingerprints, and a summary line. Pure.

use std::fmt::Write;

use super::report::{Finding, HostRow, Report, Severity};
use super::verdict::verdict_text;
use mpc_core::naming::HOST_CONFIG_NAME;

const HEADERS: [&str; 9] = [
    "HOST",
    "PLATFORM",
    "ADDRESS",
    "REACHABLE",
    "HOST KEY",
    "ADMIN",
    "EXPIRY-TIME",
    "SLOTS",
    "VERDICT",
];

fn slots_text(row: &HostRow) -> String {
    match (row.slots_used, row.slots_total) {
        (Some(used), Some(total)) => format!("{used}/{total}"),
        (None, Some(total)) => format!("?/{total}"),
        (Some(used), None) if used > 0 => format!("{used}/-"),
        _ => "-".to_owned(),
    }
}

fn cells(row: &HostRow) -> [String; 9] {
    [
        row.name.clone(),
        row.platform.clone().unwrap_or_else(|| "-".into()),
        row.address.clone().unwrap_or_else(|| "-".into()),
        row.reachable.text.clone(),
        row.host_key.text.clone(),
        row.admin.text.clone(),
        row.expiry_time.text.clone(),
        slots_text(row),
        verdict_text(row),
    ]
}

fn severity_text(severity: Severity) -> &'static str {
    match severity {
        Severity::Failure => "FAIL",
        Severity::Warning => "warn",
    }
}

fn push_finding(out: &mut String, finding: &Finding) {
    let what = finding
        .key
        .as_deref()
        .unwrap_or_else(|| finding.check.as_str());
    let _ = writeln!(
        out,
        "  {} {what}: {}",
        severity_text(finding.severity),
        finding.message
    );
}

/// Renders the report as the table `doctor` prints by default.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "namespace {}, ConfigMap {HOST_CONFIG_NAME}: {} host(s)",
        report.namespace,
        report.hosts.len()
    );
    if !report.config_problems.is_empty() {
        out.push_str("configuration problems:\n");
        for finding in &report.config_problems {
            push_finding(&mut out, finding);
        }
    }
    if !report.cluster_problems.is_empty() {
        out.push_str("cluster problems:\n");
        for finding in &report.cluster_problems {
            push_finding(&mut out, finding);
        }
    }

    out.push('\n');
    let rows: Vec<[String; 9]> = report.hosts.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &HEADERS);
    for (host, row) in report.hosts.iter().zip(&rows) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
        for finding in &host.problems {
            push_finding(&mut out, finding);
        }
    }

    let keyed: Vec<&HostRow> = report
        .hosts
        .iter()
        .filter(|h| h.host_key_fingerprint.is_some() || h.expected_host_key.is_some())
        .collect();
    if !keyed.is_empty() {
        out.push_str("\nhost keys:\n");
        let seen = |h: &HostRow| {
            h.host_key_fingerprint
                .clone()
                .unwrap_or_else(|| "(not seen)".into())
        };
        let width = keyed.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let key_width = keyed.iter().map(|h| seen(h).len()).max().unwrap_or(0);
        for host in keyed {
            let fingerprint = seen(host);
            let note = host.host_key_note.clone().unwrap_or_else(|| {
                host.expected_host_key
                    .as_ref()
                    .map(|e| format!("expected {e}"))
                    .unwrap_or_default()
            });
            let _ = writeln!(
                out,
                "  {:<width$}  {fingerprint:<key_width$}  {note}",
                host.name,
            );
        }
    }

    out.push('\n');
    if report.healthy {
        let _ = writeln!(out, "all {} host(s) ok", report.hosts.len());
    } else {
        let mut parts = vec![format!(
            "{} of {} host(s) with problems",
            report.hosts_with_problems(),
            report.hosts.len()
        )];
        if !report.config_problems.is_empty() {
            parts.push(format!(
                "{} configuration problem(s)",
                report.config_problems.len()
            ));
        }
        if !report.cluster_problems.is_empty() {
            parts.push(format!(
                "{} cluster problem(s)",
                report.cluster_problems.len()
            ));
        }
        let _ = writeln!(out, "{}", parts.join(", "));
    }
    out
}
