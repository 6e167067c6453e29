//! The fixed remote scripts and the exact command lines and stdin sent to a host.
//!
//! A script is a constant: nothing is ever formatted into it. The only argument is a
//! [`UserName`], whose type guarantees `^u-[0-9a-f]{28}$` (and the scripts check it
//! again); every other piece of data travels on stdin (see [`super::request`]). Scripts
//! run as root: directly when the admin is root, through `sudo -n` otherwise.
//!
//! Exit statuses the scripts use (everything else is a failing system tool's own):
//! - [`EXIT_USAGE`]: bad argument or stdin (a bug on our side);
//! - [`EXIT_MISSING_TOOL`]: the host lacks a program we need;
//! - [`EXIT_SUDOERS_REJECTED`]: `visudo` refused the sudoers rule;
//! - [`EXIT_BUSY`]: `/etc/passwd` stayed locked, or the user's processes would not die;
//! - [`EXIT_VERIFY`]: after the work, the host is not in the state it should be in;
//! - [`EXIT_TOOL_FAILED`]: `useradd`/`userdel` failed for another reason.

use std::fmt;

use crate::host_work::request::ProvisionRequest;
use crate::naming::UserName;

/// Exit status: bad argument or stdin.
pub const EXIT_USAGE: u32 = 64;
/// Exit status: visudo rejected the sudoers rule.
pub const EXIT_SUDOERS_REJECTED: u32 = 65;
/// Exit status: a program the scripts need is not installed on the host.
pub const EXIT_MISSING_TOOL: u32 = 69;
/// Exit status: the host is not in the expected state afterwards.
pub const EXIT_VERIFY: u32 = 70;
/// Exit status: useradd/userdel failed (their message follows on stderr).
pub const EXIT_TOOL_FAILED: u32 = 71;
/// Exit status: account files stayed locked, or processes survived SIGKILL; retry later.
pub const EXIT_BUSY: u32 = 75;

/// Shared prologue: strict mode, a known PATH and locale (tool messages are matched in
/// English), private file modes, and the helpers every script uses.
const PROLOGUE: &str = r#"set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
umask 077
fail() { code=$1; shift; printf 'mpc: %s\n' "$*" >&2; exit "$code"; }
valid_user() {
  case $1 in u-*) ;; *) return 1 ;; esac
  [ "${#1}" -eq 30 ] || return 1
  case ${1#u-} in *[!0-9a-f]*) return 1 ;; esac
}
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail 69 "$tool is not installed on this host"
  done
}
lock_retries=0
# Runs an account tool, retrying while another process holds the account files
# (shadow-utils: "cannot lock ...; try again later", exit 10 for the group files).
# Leaves the tool's exit status in $rc and its output in $out.
with_lock_retry() {
  tries=0
  while :; do
    rc=0
    out=$("$@" 2>&1) || rc=$?
    case $rc:$out in
      10:*|*"cannot lock"*|*"try again later"*) ;;
      *) return 0 ;;
    esac
    tries=$((tries + 1))
    lock_retries=$((lock_retries + 1))
    [ "$tries" -lt 150 ] || fail 75 "account files stayed locked for 30 s: $out"
    sleep 0.2
  done
}
"#;

/// Creates the user (or re-keys an existing one). Argument: the user name. Stdin: the
/// `authorized_keys` line, then the sudoers file (possibly empty).
const PROVISION: &str = r#"[ "$#" -eq 1 ] && valid_user "$1" || fail 64 "expected one build user name"
user=$1
home=/home/$user
IFS= read -r key_line || fail 64 "missing the authorized_keys line on stdin"
sudoers=$(cat)
need useradd getent setpriv
created=0
if ! entry=$(getent passwd "$user"); then
  # A home left behind by an earlier user of this name must not be adopted.
  rm -rf -- "$home"
  shell=/bin/bash
  [ -x "$shell" ] || shell=/bin/sh
  # A group left behind by an earlier user of this name is reused, not an error.
  if getent group "$user" >/dev/null; then set -- --gid "$user"; else set -- --user-group; fi
  # Password `*`: no password login, but not locked (`!`), which sshd without PAM
  # would refuse even for key logins.
  with_lock_retry useradd --create-home --home-dir "$home" --shell "$shell" \
    --password '*' --comment "mpc created=$(date +%s)" "$@" "$user"
  case $rc in
    0) created=1 ;;
    9) ;; # created meanwhile by a concurrent run for the same user
    *) fail 71 "useradd failed (exit $rc): $out" ;;
  esac
  entry=$(getent passwd "$user") || fail 70 "$user does not exist after useradd"
fi
IFS=: read -r _ _ uid gid _ _ _ <<EOF
$entry
EOF
if [ ! -d "$home" ]; then
  mkdir -m 0700 -- "$home"
  chown -- "$uid:$gid" "$home"
fi
chmod 0700 -- "$home"
# The key is written as the user: if the user replaced ~/.ssh with a link, the write
# can only reach what the user may write anyway.
printf '%s\n' "$key_line" | setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
  /bin/sh -c 'umask 077 && cd "$1" && mkdir -p .ssh && cat > .ssh/authorized_keys.mpc-new && mv -f .ssh/authorized_keys.mpc-new .ssh/authorized_keys' \
  mpc-write-key "$home" || fail 70 "cannot write $home/.ssh/authorized_keys"
sudo_file=/etc/sudoers.d/$user
if [ -n "$sudoers" ]; then
  need visudo
  [ -d /etc/sudoers.d ] || fail 69 "/etc/sudoers.d does not exist"
  # sudo ignores names containing a dot, so the file is inert until it is renamed.
  tmp=$sudo_file.mpc-new
  printf '%s\n' "$sudoers" > "$tmp"
  chmod 0440 -- "$tmp"
  if ! check=$(visudo -cf "$tmp" 2>&1); then
    rm -f -- "$tmp"
    fail 65 "visudo rejected the sudoers rule: $check"
  fi
  mv -f -- "$tmp" "$sudo_file"
else
  rm -f -- "$sudo_file"
fi
printf 'mpc-result created=%s lock-retries=%s\n' "$created" "$lock_retries"
"#;

/// Removes the user and everything provisioning created. Argument: the user name.
const CLEANUP: &str = r#"[ "$#" -eq 1 ] && valid_user "$1" || fail 64 "expected one build user name"
user=$1
home=/home/$user
need userdel getent pkill pgrep
# No more sudo for the user from here on.
rm -f -- "/etc/sudoers.d/$user" "/etc/sudoers.d/$user.mpc-new"
existed=0
if getent passwd "$user" >/dev/null; then
  existed=1
  if command -v loginctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    timeout 20 loginctl terminate-user "$user" >/dev/null 2>&1 || true
  fi
  tries=0
  while :; do
    pkill -KILL -U "$user" >/dev/null 2>&1 || true
    pkill -KILL -u "$user" >/dev/null 2>&1 || true
    if ! pgrep -U "$user" >/dev/null 2>&1 && ! pgrep -u "$user" >/dev/null 2>&1; then
      with_lock_retry userdel --remove "$user"
      case $rc in
        0|6|12) break ;; # 6: deleted meanwhile; 12: home left over, removed below
        8) ;;            # a process started since the kill: kill again
        *) fail 71 "userdel failed (exit $rc): $out" ;;
      esac
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 400 ] || fail 75 "processes of $user survive SIGKILL: $(pgrep -d ' ' -u "$user" || true)"
    sleep 0.05
  done
fi
if getent group "$user" >/dev/null; then
  with_lock_retry groupdel "$user"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 6 ] || fail 71 "groupdel failed (exit $rc): $out"
fi
rm -rf -- "$home"
rm -f -- "/var/mail/$user" "/var/spool/mail/$user" "/etc/security/limits.d/$user.conf" \
  "/var/spool/cron/crontabs/$user" "/var/spool/cron/$user"
! getent passwd "$user" >/dev/null || fail 70 "$user still exists after userdel"
[ ! -e "$home" ] || fail 70 "$home still exists"
[ ! -e "/etc/sudoers.d/$user" ] || fail 70 "/etc/sudoers.d/$user still exists"
printf 'mpc-result existed=%s lock-retries=%s\n' "$existed" "$lock_retries"
"#;

/// Lists `u-*` users with their creation time (ours record it in the GECOS field; for
/// others the home's mtime stands in), and the host's clock.
const LIST_USERS: &str = r#"[ "$#" -eq 0 ] || fail 64 "expected no arguments"
need getent
printf 'now %s\n' "$(date +%s)"
getent passwd | while IFS=: read -r name _ _ _ gecos home _; do
  case $name in u-*) ;; *) continue ;; esac
  created=
  case $gecos in "mpc created="*) created=${gecos#mpc created=} ;; esac
  case $created in
    ''|*[!0-9]*) created=$(stat -c %Y -- "$home" 2>/dev/null || true) ;;
  esac
  printf 'user %s %s\n' "$name" "${created:--}"
done
"#;

/// Checks that the admin can act as root and that the tools the other scripts need are
/// installed.
const PROBE: &str = r#"[ "$#" -eq 0 ] || fail 64 "expected no arguments"
need useradd userdel groupdel getent setpriv pkill pgrep
printf 'mpc-result uid=%s\n' "$(id -u)"
"#;

/// What a remote command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create or re-key a build user.
    Provision,
    /// Delete a build user and everything created for it.
    Cleanup,
    /// List build users with their age.
    ListUsers,
    /// Check the host is usable.
    Probe,
    /// Hand a Windows or macOS VM's builder key over (fixed commands, no script; see
    /// [`super::handover`]).
    Handover,
}

impl Operation {
    /// Name used as the script's `$0`, in logs and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Provision => "mpc-provision",
            Operation::Cleanup => "mpc-cleanup",
            Operation::ListUsers => "mpc-list-users",
            Operation::Probe => "mpc-probe",
            Operation::Handover => "mpc-handover",
        }
    }

    /// The script body (without the shared prologue).
    pub fn body(self) -> &'static str {
        match self {
            Operation::Provision => PROVISION,
            Operation::Cleanup => CLEANUP,
            Operation::ListUsers => LIST_USERS,
            Operation::Probe => PROBE,
            // Not a POSIX script: the handover runs on Windows too.
            Operation::Handover => "",
        }
    }

    /// The complete script text.
    pub fn script(self) -> String {
        format!("{PROLOGUE}{}", self.body())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the admin user becomes root on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// The admin is root (uid 0).
    Root,
    /// The admin uses passwordless `sudo -n`.
    Sudo,
}

/// One remote invocation: an exec command line and the bytes for its stdin.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    /// What it does.
    pub operation: Operation,
    /// The SSH exec request, interpreted by the admin's login shell.
    pub command_line: String,
    /// Bytes written to the command's stdin before EOF.
    pub stdin: Vec<u8>,
}

impl fmt::Debug for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The stdin carries a public key and sudoers rule: harmless, but kept out of
        // logs all the same.
        f.debug_struct("RemoteCommand")
            .field("operation", &self.operation)
            .field("stdin_bytes", &self.stdin.len())
            .finish_non_exhaustive()
    }
}

/// `provision` for `request`.
pub fn provision(request: &ProvisionRequest, privilege: Privilege) -> RemoteCommand {
    build(
        Operation::Provision,
        Some(request.user()),
        request.stdin(),
        privilege,
    )
}

/// `cleanup` for `user`.
pub fn cleanup(user: &UserName, privilege: Privilege) -> RemoteCommand {
    build(Operation::Cleanup, Some(user), Vec::new(), privilege)
}

/// `list-users`.
pub fn list_users(privilege: Privilege) -> RemoteCommand {
    build(Operation::ListUsers, None, Vec::new(), privilege)
}

/// `probe`.
pub fn probe(privilege: Privilege) -> RemoteCommand {
    build(Operation::Probe, None, Vec::new(), privilege)
}

/// The command that tells root from non-root admins right after login.
pub const WHOAMI_COMMAND: &str = "id -u";

fn build(
    operation: Operation,
    user: Option<&UserName>,
    stdin: Vec<u8>,
    privilege: Privilege,
) -> RemoteCommand {
    let mut words = Vec::with_capacity(6);
    if privilege == Privilege::Sudo {
        words.extend(["sudo", "-n", "--"].map(str::to_owned));
    }
    words.extend([
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        shell_quote(&operation.script()),
        operation.name().to_owned(),
    ]);
    if let Some(user) = user {
        // Safe unquoted: `UserName` is `u-` and 28 hex digits by construction.
        words.push(user.as_str().to_owned());
    }
    RemoteCommand {
        operation,
        command_line: words.join(" "),
        stdin,
    }
}

/// Quotes `text` as one word for a POSIX shell: single quotes, with each `'` written
/// as `'\''`.
pub fn shell_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SudoCommand;
    use crate::test_keys::generate;
    use proptest::prelude::*;
    use std::process::Command;
    use std::time::{Duration, UNIX_EPOCH};

    fn user() -> UserName {
        UserName::parse("u-0123456789abcdef0123456789ab").unwrap()
    }

    const ALL: [Operation; 4] = [
        Operation::Provision,
        Operation::Cleanup,
        Operation::ListUsers,
        Operation::Probe,
    ];

    #[test]
    fn command_lines_are_the_quoted_script_plus_the_user_only() {
        let pair = generate().unwrap();
        let request = ProvisionRequest::new(
            user(),
            pair.public_key(),
            UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            &[SudoCommand::parse("/usr/bin/podman").unwrap()],
        )
        .unwrap();
        let root = provision(&request, Privilege::Root);
        let quoted = shell_quote(&Operation::Provision.script());
        assert_eq!(
            root.command_line,
            format!("/bin/sh -c {quoted} mpc-provision u-0123456789abcdef0123456789ab")
        );
        assert_eq!(root.stdin, request.stdin());
        let sudo = provision(&request, Privilege::Sudo);
        assert_eq!(
            sudo.command_line,
            format!("sudo -n -- {}", root.command_line)
        );
        // Nothing from the request is in the command line: it travels on stdin.
        assert!(!root.command_line.contains(&pair.public_key_line()));
        assert!(!root.command_line.contains("/usr/bin/podman"));
        assert!(!format!("{root:?}").contains("AAAA"));

        let cleanup = cleanup(&user(), Privilege::Root);
        assert!(
            cleanup
                .command_line
                .ends_with("' mpc-cleanup u-0123456789abcdef0123456789ab")
        );
        assert!(cleanup.stdin.is_empty());
        assert!(
            list_users(Privilege::Root)
                .command_line
                .ends_with("' mpc-list-users")
        );
        assert!(
            probe(Privilege::Sudo)
                .command_line
                .starts_with("sudo -n -- /bin/sh -c '")
        );
    }

    #[test]
    fn scripts_are_valid_posix_sh() {
        for op in ALL {
            let status = Command::new("/bin/sh")
                .args(["-n", "-c", &op.script()])
                .status()
                .unwrap();
            assert!(status.success(), "{op} does not parse");
        }
    }

    #[test]
    fn scripts_pass_shellcheck_when_it_is_installed() {
        // hack/test.sh installs shellcheck; a bare `cargo test` may not have it.
        let Ok(version) = Command::new("shellcheck").arg("--version").output() else {
            return;
        };
        assert!(version.status.success());
        for op in ALL {
            let out = Command::new("shellcheck")
                .args(["--shell=sh", "--severity=warning", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(op.script().as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            assert!(
                out.status.success(),
                "{op}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn scripts_refuse_a_bad_user_argument_before_doing_anything() {
        for op in [Operation::Provision, Operation::Cleanup] {
            for bad in [
                "",
                "root",
                "u-0123456789ABCDEF0123456789ab",
                "u-0123456789abcdef0123456789a",
                "u-0123456789abcdef0123456789abc",
                "u-0123456789abcdef012345678;ab",
                "u-../../etc/passwd0123456789a",
            ] {
                let out = Command::new("/bin/sh")
                    .args(["-c", &op.script(), op.name(), bad])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .unwrap();
                assert_eq!(
                    out.status.code(),
                    i32::try_from(EXIT_USAGE).ok(),
                    "{op} {bad:?}"
                );
            }
        }
    }

    #[test]
    fn scripts_never_interpolate_anything() {
        for op in ALL {
            let script = op.script();
            // The only placeholders are shell parameters; no Rust formatting slipped in.
            assert!(!script.contains("{}"), "{op}");
            assert!(!script.contains("u-0123"), "{op}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn shell_quote_round_trips_through_sh(text in "[^\\x00]{0,64}") {
            let out = Command::new("/bin/sh")
                .args(["-c", &format!("printf %s {}", shell_quote(&text))])
                .output()
                .unwrap();
            prop_assert!(out.status.success());
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), text);
        }
    }

    #[test]
    fn shell_quote_examples() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
