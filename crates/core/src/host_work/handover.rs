//! Windows and macOS VMs: no throwaway Unix user. Their user data creates the builder
//! account `konflux-builder` and leaves its private key in a file of the VM's admin; the
//! controller logs in as that admin, reads the key, writes the TaskRun's Secret, then
//! deletes the file. This module says what the admin runs and how its answer is read.
//!
//! The commands are fixed strings: nothing from a TaskRun or host-config reaches them.
//! Windows has no POSIX shell, so its commands are single PowerShell invocations for
//! OpenSSH's default shell (`cmd.exe`), which passes them on unchanged.

use std::fmt;

use zeroize::Zeroizing;

use super::report::RawOutput;
use super::script::{Operation, RemoteCommand};
use crate::cloud::VmOs;

/// The account the VM's user data creates for builds.
pub const BUILDER_USER: &str = "konflux-builder";
/// The name of the key file in the admin's home.
const KEY_FILE: &str = "konflux-builder";
/// The most a key file may hold: an RSA-4096 key in OpenSSH format is about 3.4 KiB.
const MAX_KEY_BYTES: usize = 16 << 10;

/// How a builder account's key is handed over on a VM of one OS.
#[derive(Clone, PartialEq, Eq)]
pub struct BuilderHandover {
    /// The OS.
    pub os: VmOs,
    /// The VM's admin, who can read the key file (`Administrator`, `ec2-user`).
    pub admin_user: &'static str,
    /// The builder account the TaskRun logs in as.
    pub builder_user: &'static str,
    /// The builder's home, for the Secret's `user-dir`.
    pub user_dir: &'static str,
    /// Where the key file is, for messages.
    pub key_path: &'static str,
    /// Prints the key file.
    pub read: RemoteCommand,
    /// Deletes the key file (no error when it is already gone).
    pub delete: RemoteCommand,
}

impl fmt::Debug for BuilderHandover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuilderHandover")
            .field("os", &self.os)
            .field("admin_user", &self.admin_user)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn command(line: &str) -> RemoteCommand {
    RemoteCommand {
        operation: Operation::Handover,
        command_line: line.to_owned(),
        stdin: Vec::new(),
    }
}

/// PowerShell without profiles or prompts, one fixed script.
fn powershell(script: &str) -> RemoteCommand {
    command(&format!(
        "powershell.exe -NoLogo -NoProfile -NonInteractive -Command \"{script}\""
    ))
}

impl BuilderHandover {
    /// The handover of `os`'s VMs; `None` for Linux, whose builds get a throwaway user.
    pub fn of(os: VmOs) -> Option<Self> {
        match os {
            VmOs::Linux => None,
            VmOs::Windows => Some(BuilderHandover {
                os,
                admin_user: "Administrator",
                builder_user: BUILDER_USER,
                user_dir: "C:\\Users\\konflux-builder",
                key_path: "C:\\Users\\Administrator\\konflux-builder",
                read: powershell(
                    "Get-Content -Raw -LiteralPath 'C:\\Users\\Administrator\\konflux-builder'",
                ),
                delete: powershell(
                    "Remove-Item -Force -ErrorAction SilentlyContinue -LiteralPath \
                     'C:\\Users\\Administrator\\konflux-builder'; exit 0",
                ),
            }),
            // The admin's home is /Users/ec2-user on a Mac; `$HOME` says so wherever it
            // is, and the command starts there anyway.
            VmOs::MacOs => Some(BuilderHandover {
                os,
                admin_user: crate::naming::CLOUD_ADMIN_USER,
                builder_user: BUILDER_USER,
                user_dir: "/Users/konflux-builder",
                key_path: "~ec2-user/konflux-builder",
                read: command(&format!("cat -- \"$HOME/{KEY_FILE}\"")),
                delete: command(&format!("rm -f -- \"$HOME/{KEY_FILE}\"")),
            }),
        }
    }
}

/// Why the key file's content cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// Reading the file failed: usually it is not there yet (the user data still runs).
    #[error(
        "could not read the builder key {path}: {detail}; the VM's user data must create the \
         konflux-builder account and leave its private key there"
    )]
    Unreadable {
        /// The key file.
        path: &'static str,
        /// What the command said (stderr or the exit status).
        detail: String,
    },
    /// The file holds something else than one private key.
    #[error(
        "the builder key {path} is not an OpenSSH or PEM private key ({bytes} bytes); fix the \
         VM's user data"
    )]
    NotAKey {
        /// The key file.
        path: &'static str,
        /// How much it held (never the content: it may be a key after all).
        bytes: usize,
    },
}

impl HandoverError {
    /// Whether waiting may help: the file may appear once the user data has run.
    pub fn may_appear(&self) -> bool {
        matches!(self, HandoverError::Unreadable { .. })
    }
}

/// Reads the key file's content from the read command's answer: one private key, line
/// endings normalised (PowerShell answers with CRLF), ending in a newline as OpenSSH wants.
pub fn parse_builder_key(
    handover: &BuilderHandover,
    output: &RawOutput,
) -> Result<Zeroizing<String>, HandoverError> {
    let path = handover.key_path;
    if output.exit_status != Some(0) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = match stderr.trim() {
            "" => match (&output.exit_status, &output.exit_signal) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!("killed by {signal}"),
                (None, None) => "no exit status".to_owned(),
            },
            text => text.chars().take(300).collect(),
        };
        return Err(HandoverError::Unreadable { path, detail });
    }
    let bytes = output.stdout.len();
    let not_a_key = || HandoverError::NotAKey { path, bytes };
    if bytes > MAX_KEY_BYTES {
        return Err(not_a_key());
    }
    let text = std::str::from_utf8(&output.stdout).map_err(|_| not_a_key())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| l.trim().is_empty())
        .collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .ok_or_else(not_a_key)?;
    let lines = &lines[..=end];
    let (first, last) = (lines[0].trim(), lines[end].trim());
    let armored = first.starts_with("-----BEGIN ")
        && first.ends_with(" PRIVATE KEY-----")
        && last.starts_with("-----END ")
        && last.ends_with(" PRIVATE KEY-----")
        && lines.len() > 2
        && lines[1..end]
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    if !armored {
        return Err(not_a_key());
    }
    let mut key = Zeroizing::new(String::with_capacity(bytes + 1));
    for line in lines {
        key.push_str(line.trim());
        key.push('\n');
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDRA==\n-----END OPENSSH PRIVATE KEY-----\n";

    fn answered(stdout: &str) -> RawOutput {
        RawOutput {
            exit_status: Some(0),
            exit_signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        }
    }

    fn windows() -> BuilderHandover {
        BuilderHandover::of(VmOs::Windows).unwrap()
    }

    #[test]
    fn linux_has_no_handover() {
        assert!(BuilderHandover::of(VmOs::Linux).is_none());
    }

    #[test]
    fn windows_runs_powershell_alone_as_administrator() {
        let w = windows();
        assert_eq!(w.admin_user, "Administrator");
        assert_eq!(w.user_dir, "C:\\Users\\konflux-builder");
        for c in [&w.read, &w.delete] {
            assert!(
                c.command_line
                    .starts_with("powershell.exe -NoLogo -NoProfile -NonInteractive"),
                "{}",
                c.command_line
            );
            // No POSIX shell syntax: one PowerShell script in double quotes.
            assert_eq!(c.command_line.matches('"').count(), 2, "{}", c.command_line);
            assert!(!c.command_line.contains("sh -c"));
            assert!(
                c.command_line
                    .contains("'C:\\Users\\Administrator\\konflux-builder'")
            );
        }
    }

    #[test]
    fn macos_reads_the_admins_key_file() {
        let m = BuilderHandover::of(VmOs::MacOs).unwrap();
        assert_eq!(
            (m.admin_user, m.builder_user),
            ("ec2-user", "konflux-builder")
        );
        assert_eq!(m.user_dir, "/Users/konflux-builder");
        assert_eq!(m.read.command_line, "cat -- \"$HOME/konflux-builder\"");
        assert_eq!(m.delete.command_line, "rm -f -- \"$HOME/konflux-builder\"");
    }

    #[test]
    fn a_key_is_read_with_crlf_and_a_byte_order_mark_normalised() {
        let w = windows();
        let crlf = format!("\u{feff}\r\n{}\r\n\r\n", KEY.replace('\n', "\r\n"));
        assert_eq!(
            parse_builder_key(&w, &answered(&crlf)).unwrap().as_str(),
            KEY
        );
        assert_eq!(
            parse_builder_key(&w, &answered(KEY.trim_end()))
                .unwrap()
                .as_str(),
            KEY
        );
        let pem = KEY.replace("OPENSSH", "RSA");
        assert_eq!(
            parse_builder_key(&w, &answered(&pem)).unwrap().as_str(),
            pem
        );
    }

    #[test]
    fn anything_but_one_private_key_is_refused_without_echoing_it() {
        let w = windows();
        for bad in [
            "",
            "\r\n",
            "ssh-ed25519 AAAAC3Nza secret-looking",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
        ] {
            let err = parse_builder_key(&w, &answered(bad)).unwrap_err();
            assert!(
                matches!(err, HandoverError::NotAKey { .. }),
                "{bad:?}: {err}"
            );
            assert!(!err.may_appear());
            assert!(!err.to_string().contains("AAAA"), "{err}");
        }
        let huge = "A".repeat(MAX_KEY_BYTES + 1);
        assert!(parse_builder_key(&w, &answered(&huge)).is_err());
    }

    #[test]
    fn a_missing_file_may_still_appear() {
        let m = BuilderHandover::of(VmOs::MacOs).unwrap();
        let missing = RawOutput {
            exit_status: Some(1),
            exit_signal: None,
            stdout: Vec::new(),
            stderr: b"cat: /Users/ec2-user/konflux-builder: No such file or directory\n".to_vec(),
        };
        let err = parse_builder_key(&m, &missing).unwrap_err();
        assert!(err.may_appear());
        assert!(err.to_string().contains("No such file"), "{err}");
        assert!(err.to_string().contains("user data"), "{err}");
    }
}
