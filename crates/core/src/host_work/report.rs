//! Reading what a remote script answered: exit status, result line, user list.
//!
//! Pure functions over the bytes a channel delivered; [`super::session`] adds the host.

use std::collections::HashMap;
use std::time::Duration;

use crate::host_work::script::{
    EXIT_BUSY, EXIT_MISSING_TOOL, EXIT_SUDOERS_REJECTED, EXIT_USAGE, EXIT_VERIFY, Operation,
};
use crate::naming::UserName;

/// Most stderr kept for an error message.
pub const MAX_STDERR: usize = 2048;

/// What a remote command left behind when its channel closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOutput {
    /// Exit status, when the command exited.
    pub exit_status: Option<u32>,
    /// Signal name, when the command was killed.
    pub exit_signal: Option<String>,
    /// Standard output (bounded by the reader).
    pub stdout: Vec<u8>,
    /// Standard error (bounded by the reader).
    pub stderr: Vec<u8>,
}

/// Why a script's answer is a failure, before the host is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptFailure {
    /// The host is busy (account files locked, processes not dying): retry later.
    Busy(String),
    /// `sudo -n` refused to run the script.
    NotPrivileged(String),
    /// A program the scripts need is missing on the host.
    MissingTool(String),
    /// The script failed.
    Failed {
        /// Exit status or signal, in words.
        status: String,
        /// Its stderr, truncated.
        stderr: String,
    },
    /// The script succeeded but its output is not what it prints.
    UnexpectedOutput(String),
}

/// The `created`/`lock-retries` result of a provisioning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Whether the user was created (false: it existed and was re-keyed).
    pub created: bool,
    /// How often `/etc/passwd` was found locked and the tool retried.
    pub lock_retries: u32,
}

/// The result of a cleanup run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupReport {
    /// Whether the user existed (false: nothing to do, which is success).
    pub existed: bool,
    /// How often the account files were found locked and the tool retried.
    pub lock_retries: u32,
}

/// A build user found on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUser {
    /// The user.
    pub name: UserName,
    /// How long ago it was created, by the host's clock; `None` when unknown.
    pub age: Option<Duration>,
}

/// Lossy UTF-8 of `bytes`, cut to at most `max` bytes on a character boundary.
pub fn truncate(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes truncated)", &text[..end], text.len() - end)
}

/// Success, or the failure the exit status and stderr describe.
pub fn check_exit(output: &RawOutput) -> Result<(), ScriptFailure> {
    let stderr = truncate(&output.stderr, MAX_STDERR);
    let status = match (output.exit_status, &output.exit_signal) {
        (Some(0), _) => return Ok(()),
        (Some(code), _) => code,
        (None, Some(signal)) => {
            return Err(ScriptFailure::Failed {
                status: format!("signal {signal}"),
                stderr,
            });
        }
        (None, None) => {
            return Err(ScriptFailure::Failed {
                status: "no exit status".into(),
                stderr,
            });
        }
    };
    let ours = ours(&stderr);
    Err(match status {
        EXIT_BUSY => ScriptFailure::Busy(ours.unwrap_or(stderr)),
        EXIT_MISSING_TOOL => ScriptFailure::MissingTool(ours.unwrap_or(stderr)),
        // sudo's own refusals (`sudo: a password is required`, `… is not in the sudoers
        // file`) exit 1 before our script starts, so no `mpc:` line exists.
        1 if ours.is_none() && stderr.lines().any(|l| l.starts_with("sudo: ")) => {
            ScriptFailure::NotPrivileged(stderr)
        }
        EXIT_USAGE | EXIT_SUDOERS_REJECTED | EXIT_VERIFY => ScriptFailure::Failed {
            status: format!("exit status {status}"),
            stderr: ours.unwrap_or(stderr),
        },
        _ => ScriptFailure::Failed {
            status: format!("exit status {status}"),
            stderr,
        },
    })
}

/// The script's own `mpc:` messages, when there are any.
fn ours(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("mpc: "))
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// The `key=value` pairs of the last `mpc-result` line of stdout.
fn result_fields(stdout: &[u8]) -> Option<HashMap<String, String>> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("mpc-result "))?;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn field<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    key: &str,
    op: Operation,
) -> Result<T, ScriptFailure> {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ScriptFailure::UnexpectedOutput(format!("{op} printed no valid {key}")))
}

fn flag(fields: &HashMap<String, String>, key: &str, op: Operation) -> Result<bool, ScriptFailure> {
    match fields.get(key).map(String::as_str) {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        _ => Err(ScriptFailure::UnexpectedOutput(format!(
            "{op} printed no valid {key}"
        ))),
    }
}

fn result_of(output: &RawOutput, op: Operation) -> Result<HashMap<String, String>, ScriptFailure> {
    check_exit(output)?;
    result_fields(&output.stdout)
        .ok_or_else(|| ScriptFailure::UnexpectedOutput(format!("{op} printed no result line")))
}

/// Interprets a provisioning run.
pub fn provision(output: &RawOutput) -> Result<ProvisionReport, ScriptFailure> {
    let op = Operation::Provision;
    let fields = result_of(output, op)?;
    Ok(ProvisionReport {
        created: flag(&fields, "created", op)?,
        lock_retries: field(&fields, "lock-retries", op)?,
    })
}

/// Interprets a cleanup run.
pub fn cleanup(output: &RawOutput) -> Result<CleanupReport, ScriptFailure> {
    let op = Operation::Cleanup;
    let fields = result_of(output, op)?;
    Ok(CleanupReport {
        existed: flag(&fields, "existed", op)?,
        lock_retries: field(&fields, "lock-retries", op)?,
    })
}

/// What a probe found out about a host besides "the admin is root".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeFacts {
    /// Programs rootless podman needs that are not installed (`newuidmap`,
    /// `newgidmap`, `podman`, `slirp4netns` standing for any rootless network helper).
    pub missing_for_podman: Vec<String>,
    /// Whether unprivileged user namespaces are enabled.
    pub user_namespaces: bool,
    /// Whether systemd runs the host (the slice limits and lingering apply).
    pub systemd: bool,
}

impl ProbeFacts {
    /// Whether build users can run rootless podman.
    pub fn rootless_podman_ready(&self) -> bool {
        self.missing_for_podman.is_empty() && self.user_namespaces
    }
}

/// Interprets a probe: succeeds only when the scripts run as root (uid 0).
pub fn probe(output: &RawOutput) -> Result<ProbeFacts, ScriptFailure> {
    let op = Operation::Probe;
    let fields = result_of(output, op)?;
    let uid: u32 = field(&fields, "uid", op)?;
    if uid != 0 {
        return Err(ScriptFailure::NotPrivileged(format!(
            "scripts run as uid {uid}, not root"
        )));
    }
    let missing: String = field(&fields, "missing", op)?;
    Ok(ProbeFacts {
        missing_for_podman: missing
            .split(',')
            .filter(|t| !t.is_empty() && *t != "-")
            .map(str::to_owned)
            .collect(),
        user_namespaces: flag(&fields, "userns", op)?,
        systemd: flag(&fields, "systemd", op)?,
    })
}

/// Interprets a user listing. Lines that do not name a valid build user are skipped:
/// the host's passwd may hold anything, and only `u-` + 28 hex digits is ours.
pub fn user_list(output: &RawOutput) -> Result<Vec<BuildUser>, ScriptFailure> {
    check_exit(output)?;
    let text = String::from_utf8_lossy(&output.stdout);
    let now: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("now "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| ScriptFailure::UnexpectedOutput("mpc-list-users printed no clock".into()))?;
    let mut users: Vec<BuildUser> = text
        .lines()
        .filter_map(|l| l.strip_prefix("user "))
        .filter_map(|rest| {
            let (name, created) = rest.split_once(' ')?;
            let name = UserName::parse(name).ok()?;
            let age = created
                .trim()
                .parse::<u64>()
                .ok()
                .map(|created| Duration::from_secs(now.saturating_sub(created)));
            Some(BuildUser { name, age })
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    users.dedup_by(|a, b| a.name == b.name);
    Ok(users)
}

/// The uid printed by [`crate::host_work::script::WHOAMI_COMMAND`].
pub fn uid(output: &RawOutput) -> Option<u32> {
    if output.exit_status != Some(0) {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn out(status: u32, stdout: &str, stderr: &str) -> RawOutput {
        RawOutput {
            exit_status: Some(status),
            exit_signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn provision_and_cleanup_results_parse() {
        let p = provision(&out(0, "noise\nmpc-result created=1 lock-retries=3\n", "")).unwrap();
        assert_eq!(
            p,
            ProvisionReport {
                created: true,
                lock_retries: 3
            }
        );
        let c = cleanup(&out(0, "mpc-result existed=0 lock-retries=0\n", "")).unwrap();
        assert!(!c.existed);
        assert!(matches!(
            provision(&out(0, "", "")),
            Err(ScriptFailure::UnexpectedOutput(_))
        ));
        assert!(matches!(
            provision(&out(0, "mpc-result created=yes lock-retries=0", "")),
            Err(ScriptFailure::UnexpectedOutput(_))
        ));
    }

    #[test]
    fn exit_statuses_are_classified() {
        assert_eq!(
            check_exit(&out(
                75,
                "",
                "mpc: account files stayed locked for 30 s: x\n"
            )),
            Err(ScriptFailure::Busy(
                "account files stayed locked for 30 s: x".into()
            ))
        );
        assert!(matches!(
            check_exit(&out(69, "", "mpc: setpriv is not installed on this host")),
            Err(ScriptFailure::MissingTool(m)) if m.contains("setpriv")
        ));
        assert!(matches!(
            check_exit(&out(1, "", "sudo: a password is required\n")),
            Err(ScriptFailure::NotPrivileged(_))
        ));
        assert!(matches!(
            check_exit(&out(1, "", "chmod: cannot access\n")),
            Err(ScriptFailure::Failed { .. })
        ));
        assert!(matches!(
            check_exit(&out(65, "", "mpc: visudo rejected the sudoers rule: bad\n")),
            Err(ScriptFailure::Failed { stderr, .. }) if stderr == "visudo rejected the sudoers rule: bad"
        ));
        let killed = RawOutput {
            exit_signal: Some("KILL".into()),
            ..RawOutput::default()
        };
        assert!(matches!(
            check_exit(&killed),
            Err(ScriptFailure::Failed { status, .. }) if status == "signal KILL"
        ));
    }

    #[test]
    fn probe_requires_root_and_reads_the_host_facts() {
        let ready = probe(&out(
            0,
            "mpc-result uid=0 missing=- userns=1 systemd=1\n",
            "",
        ))
        .unwrap();
        assert!(ready.rootless_podman_ready());
        assert!(ready.systemd);
        let bare = probe(&out(
            0,
            "mpc-result uid=0 missing=newuidmap,newgidmap,podman userns=0 systemd=0\n",
            "",
        ))
        .unwrap();
        assert_eq!(
            bare.missing_for_podman,
            ["newuidmap", "newgidmap", "podman"]
        );
        assert!(!bare.user_namespaces && !bare.systemd);
        assert!(!bare.rootless_podman_ready());
        assert!(matches!(
            probe(&out(
                0,
                "mpc-result uid=1000 missing=- userns=1 systemd=0\n",
                ""
            )),
            Err(ScriptFailure::NotPrivileged(_))
        ));
        assert!(matches!(
            probe(&out(0, "mpc-result uid=0\n", "")),
            Err(ScriptFailure::UnexpectedOutput(_))
        ));
    }

    #[test]
    fn user_list_keeps_only_valid_names_and_computes_ages() {
        let listing = "now 1000\n\
            user u-0123456789abcdef0123456789ab 400\n\
            user u-ffffffffffffffffffffffffffff -\n\
            user u-short 10\n\
            user u-0123456789abcdef0123456789ab 400\n\
            user u-aaaaaaaaaaaaaaaaaaaaaaaaaaaa 2000\n";
        let users = user_list(&out(0, listing, "")).unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[0].name.as_str(), "u-0123456789abcdef0123456789ab");
        assert_eq!(users[0].age, Some(Duration::from_secs(600)));
        // Created "in the future" (clock step): age zero, not an underflow.
        assert_eq!(users[1].age, Some(Duration::ZERO));
        assert_eq!(users[2].age, None);
        assert!(user_list(&out(0, "user u-x 1\n", "")).is_err());
    }

    proptest! {
        #[test]
        fn truncate_is_bounded_and_never_splits_characters(s in "\\PC{0,300}", max in 0usize..100) {
            let t = truncate(s.as_bytes(), max);
            let trimmed = s.trim();
            if trimmed.len() <= max {
                prop_assert_eq!(t, trimmed);
            } else {
                let kept = t.split("… (").next().unwrap();
                prop_assert!(kept.len() <= max);
                prop_assert!(trimmed.starts_with(kept));
            }
        }

        #[test]
        fn arbitrary_output_never_panics(status in 0u32..300, stdout in "\\PC{0,200}", stderr in "\\PC{0,200}") {
            let o = out(status, &stdout, &stderr);
            let _ = provision(&o);
            let _ = cleanup(&o);
            let _ = user_list(&o);
            let _ = probe(&o);
        }
    }
}
