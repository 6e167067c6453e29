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
# Whether systemd runs the host (sd_booted) with logind's and the manager's tools.
systemd_running() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
    command -v loginctl >/dev/null 2>&1
}
# The limits.d file for user $1 with at most $2 processes (an integer).
limits_conf() {
  printf '# Build user %s of multi-platform-controller; removed with the user.\n' "$1"
  printf '%s soft nproc %s\n%s hard nproc %s\n' "$1" "$2" "$1" "$2"
}
# The drop-in of the slice of user $1: MemoryMax $2 (90%, bytes or unlimited) and
# CPUQuota $3 (a share of the whole host such as 90%, or unlimited) on $4 CPUs.
slice_dropin() {
  printf '# mpc-build-user %s\n' "$1"
  printf '# Limits of a build user of multi-platform-controller; removed with the user.\n'
  printf '[Slice]\n'
  [ "$2" = unlimited ] || printf 'MemoryMax=%s\n' "$2"
  [ "$3" = unlimited ] || printf 'CPUQuota=%s%%\n' "$(( ${3%\%} * $4 ))"
}
# Writes stdin to $1 (mode $2) through a temporary name, so readers never see half a file.
write_file() {
  cat > "$1.mpc-new"
  chmod "$2" -- "$1.mpc-new"
  mv -f -- "$1.mpc-new" "$1"
}
# The first start of 65536 subordinate ids from 100000 on that no line of /etc/subuid
# or /etc/subgid overlaps.
free_subids() {
  awk -F: '
    NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { n++; lo[n] = $2 + 0; hi[n] = $2 + $3 }
    END {
      for (s = 100000; s + 65536 <= 4294967295; s += 65536) {
        free = 1
        for (i = 1; i <= n; i++) if (s < hi[i] && lo[i] < s + 65536) { free = 0; break }
        if (free) { printf "%.0f\n", s; exit 0 }
      }
      exit 1
    }' /etc/subuid /etc/subgid
}
# Whether a range of user $1 overlaps a range of anyone else, in either file.
subids_overlap() {
  for f in /etc/subuid /etc/subgid; do
    awk -F: -v user="$1" '
      NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {
        n++; who[n] = $1; lo[n] = $2 + 0; hi[n] = $2 + $3
      }
      END {
        for (i = 1; i <= n; i++) if (who[i] == user)
          for (j = 1; j <= n; j++)
            if (who[j] != user && lo[i] < hi[j] && lo[j] < hi[i]) exit 0
        exit 1
      }' "$f" && return 0
  done
  return 1
}
"#;

/// Creates the user (or re-keys an existing one). Arguments: the user name, then its
/// limits as [`crate::config::UserLimits`] renders them (`max-processes`, `memory-max`,
/// `cpu-quota`: digits with an optional `%`, or `unlimited`). Stdin: the
/// `authorized_keys` line, then the sudoers file (possibly empty).
const PROVISION: &str = r#"[ "$#" -eq 4 ] && valid_user "$1" ||
  fail 64 "expected a build user name and its three limits"
user=$1 max_processes=$2 memory_max=$3 cpu_quota=$4
case $max_processes in unlimited) ;; ''|*[!0-9]*) fail 64 "bad max-processes" ;; esac
case $memory_max in
  unlimited) ;;
  *%) case ${memory_max%\%} in ''|*[!0-9]*) fail 64 "bad memory-max" ;; esac ;;
  ''|*[!0-9]*) fail 64 "bad memory-max" ;;
esac
case $cpu_quota in
  unlimited) ;;
  *%) case ${cpu_quota%\%} in ''|*[!0-9]*) fail 64 "bad cpu-quota" ;; esac ;;
  *) fail 64 "bad cpu-quota" ;;
esac
home=/home/$user
IFS= read -r key_line || fail 64 "missing the authorized_keys line on stdin"
sudoers=$(cat)
need useradd getent setpriv
# useradd gives new users subordinate ids only when these files exist.
for f in /etc/subuid /etc/subgid; do
  [ -e "$f" ] || { : > "$f"; chmod 0644 -- "$f"; }
done
created=0
if ! entry=$(getent passwd "$user"); then
  # A home left behind by an earlier user of this name must not be adopted.
  rm -rf -- "$home"
  shell=/bin/bash
  [ -x "$shell" ] || shell=/bin/sh
  # A group left behind by an earlier user of this name is reused, not an error.
  if getent group "$user" >/dev/null; then set -- --gid "$user"; else set -- --user-group; fi
  # Password `*`: no password login, but not locked (`!`), which sshd without PAM
  # would refuse even for key logins. useradd also picks 65536 subordinate uids and
  # gids that overlap no other entry, under the account files' lock, so concurrent
  # runs never pick the same range.
  with_lock_retry useradd --create-home --home-dir "$home" --shell "$shell" \
    --password '*' --comment "mpc created=$(date +%s)" \
    -K SUB_UID_COUNT=65536 -K SUB_GID_COUNT=65536 "$@" "$user"
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
[ "$uid" -gt 0 ] || fail 70 "$user has uid 0"
# A user without a range (it existed before, or this useradd cannot pick one) gets
# the first free one; a concurrent useradd may take the same, so it is checked.
tries=0
while ! grep -q "^$user:" /etc/subuid || ! grep -q "^$user:" /etc/subgid; do
  need usermod awk
  first=$(free_subids) || fail 70 "no free range of 65536 subordinate ids left"
  range=$first-$((first + 65535))
  grep -q "^$user:" /etc/subuid || usermod --add-subuids "$range" "$user"
  grep -q "^$user:" /etc/subgid || usermod --add-subgids "$range" "$user"
  if subids_overlap "$user"; then
    usermod --del-subuids "$range" --del-subgids "$range" "$user" || true
  fi
  tries=$((tries + 1))
  [ "$tries" -lt 20 ] || fail 75 "cannot give $user a free range of subordinate ids"
done
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
# The process limit, which pam_limits applies to every login of the user.
limits_file=/etc/security/limits.d/$user.conf
if [ "$max_processes" = unlimited ]; then
  rm -f -- "$limits_file"
else
  mkdir -p /etc/security/limits.d
  limits_conf "$user" "$max_processes" | write_file "$limits_file" 0644
fi
if systemd_running; then
  # The slice limits are read when logind starts the user's slice; a slice that is
  # already loaded with other settings is reloaded.
  dropin_dir=/etc/systemd/system/user-$uid.slice.d
  if [ "$memory_max" = unlimited ] && [ "$cpu_quota" = unlimited ]; then
    rm -f -- "$dropin_dir/50-mpc-build-user.conf"
  else
    cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
    [ -d "$dropin_dir" ] || mkdir -m 0755 -- "$dropin_dir"
    slice_dropin "$user" "$memory_max" "$cpu_quota" "$cpus" |
      write_file "$dropin_dir/50-mpc-build-user.conf" 0644
  fi
  if [ "$(systemctl show --property=NeedDaemonReload --value "user-$uid.slice" 2>/dev/null)" = yes ]; then
    systemctl daemon-reload
  fi
  # Lingering keeps /run/user/<uid> and the user's manager between the build's SSH
  # sessions, as rootless podman needs.
  loginctl enable-linger "$user" || fail 71 "loginctl enable-linger $user failed"
else
  # Without logind the runtime directory podman looks for is made here.
  [ -d /run/user ] || mkdir -m 0755 /run/user
  if [ ! -d "/run/user/$uid" ]; then
    mkdir -m 0700 -- "/run/user/$uid"
    chown -- "$uid:$gid" "/run/user/$uid"
  fi
fi
printf 'mpc-result created=%s lock-retries=%s\n' "$created" "$lock_retries"
"#;

/// Removes the user and everything provisioning created. Argument: the user name.
const CLEANUP: &str = r##"[ "$#" -eq 1 ] && valid_user "$1" || fail 64 "expected one build user name"
user=$1
home=/home/$user
need userdel getent ps awk
# No more sudo for the user from here on.
rm -f -- "/etc/sudoers.d/$user" "/etc/sudoers.d/$user.mpc-new"
existed=0
uid=
if entry=$(getent passwd "$user"); then
  existed=1
  IFS=: read -r _ _ uid _ _ _ _ <<EOF
$entry
EOF
  [ "$uid" -gt 0 ] || fail 70 "$user has uid 0"
  # Processes of the user's containers run as its subordinate uids, which go to the
  # next user: they die too (ranges below 65536 would be other users', never ours).
  ranges=$(awk -F: -v user="$user" -v uid="$uid" \
    '($1 == user || $1 == uid) && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $2 >= 65536 {
       printf "%s %.0f ", $2, $2 + $3 }' /etc/subuid 2>/dev/null || true)
  if systemd_running; then
    loginctl disable-linger "$user" >/dev/null 2>&1 || true
    timeout 20 loginctl terminate-user "$user" >/dev/null 2>&1 || true
  fi
  tries=0
  while :; do
    # One pass over the process table: real, effective or saved uid is the user's or
    # in its subordinate ranges (zombies included: userdel counts them).
    pids=$(ps -e -o pid= -o ruid= -o euid= -o suid= | awk -v uid="$uid" -v ranges="$ranges" '
      BEGIN { n = split(ranges, r, " ") }
      {
        for (f = 2; f <= 4; f++) {
          if ($f == uid) { print $1; next }
          for (i = 1; i < n; i += 2) if ($f >= r[i] + 0 && $f < r[i + 1] + 0) { print $1; next }
        }
      }')
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL $pids 2>/dev/null || true
    else
      with_lock_retry userdel --remove "$user"
      case $rc in
        0|6|12) break ;; # 6: deleted meanwhile; 12: home left over, removed below
        8) ;;            # a process started since the last look: kill again
        *) fail 71 "userdel failed (exit $rc): $out" ;;
      esac
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 2000 ] || fail 75 "processes of $user survive SIGKILL: $pids"
    # Killed processes take a moment to be reaped; look again soon.
    sleep 0.01
  done
fi
if getent group "$user" >/dev/null; then
  with_lock_retry groupdel "$user"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 6 ] || fail 71 "groupdel failed (exit $rc): $out"
fi
rm -rf -- "$home"
rm -f -- "/var/mail/$user" "/var/spool/mail/$user" "/etc/security/limits.d/$user.conf" \
  "/etc/security/limits.d/$user.conf.mpc-new" "/var/spool/cron/crontabs/$user" \
  "/var/spool/cron/$user" "/var/lib/systemd/linger/$user"
# Slice drop-ins are named by uid; ours say whose they are.
for dropin in /etc/systemd/system/user-*.slice.d/50-mpc-build-user.conf; do
  [ -f "$dropin" ] && grep -qxF "# mpc-build-user $user" "$dropin" || continue
  rm -f -- "$dropin"
  rmdir -- "${dropin%/*}" 2>/dev/null || true
done
if [ -n "$uid" ]; then
  # What the user left where any user may write, podman's runtime files included:
  # the uid goes to the next user, who must not find them.
  for dir in /tmp /var/tmp /dev/shm; do
    [ -d "$dir" ] && find "$dir" -xdev -mindepth 1 -maxdepth 1 -uid "$uid" \
      -exec rm -rf -- {} + 2>/dev/null || true
  done
  # logind removes the runtime directory it made (a mount) itself.
  systemd_running || rm -rf -- "/run/user/$uid"
fi
! getent passwd "$user" >/dev/null || fail 70 "$user still exists after userdel"
[ ! -e "$home" ] || fail 70 "$home still exists"
[ ! -e "/etc/sudoers.d/$user" ] || fail 70 "/etc/sudoers.d/$user still exists"
[ ! -e "/etc/security/limits.d/$user.conf" ] || fail 70 "the limits file of $user still exists"
! grep -q "^$user:" /etc/subuid /etc/subgid 2>/dev/null ||
  fail 70 "subordinate ids of $user are still in /etc/subuid or /etc/subgid"
printf 'mpc-result existed=%s lock-retries=%s\n' "$existed" "$lock_retries"
"##;

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
/// installed; also reports what rootless podman needs of the host (the build users run
/// their builds with it) and whether systemd runs it.
const PROBE: &str = r#"[ "$#" -eq 0 ] || fail 64 "expected no arguments"
need useradd userdel groupdel getent setpriv ps awk
missing=
for tool in newuidmap newgidmap podman; do
  command -v "$tool" >/dev/null 2>&1 || missing=$missing${missing:+,}$tool
done
command -v slirp4netns >/dev/null 2>&1 || command -v pasta >/dev/null 2>&1 ||
  missing=$missing${missing:+,}slirp4netns
userns=1
[ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" -gt 0 ] || userns=0
# Debian kernels before 5.10 have their own switch for unprivileged user namespaces.
[ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 1 ] || userns=0
systemd=0
systemd_running && systemd=1
printf 'mpc-result uid=%s missing=%s userns=%s systemd=%s\n' \
  "$(id -u)" "${missing:--}" "$userns" "$systemd"
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

/// `provision` for `request`: the user name and its limits are the arguments.
pub fn provision(request: &ProvisionRequest, privilege: Privilege) -> RemoteCommand {
    let limits = request.limits();
    build(
        Operation::Provision,
        Some(request.user()),
        &[
            limits.max_processes.arg(),
            limits.memory_max.arg(),
            limits.cpu_quota.arg(),
        ],
        request.stdin(),
        privilege,
    )
}

/// `cleanup` for `user`.
pub fn cleanup(user: &UserName, privilege: Privilege) -> RemoteCommand {
    build(Operation::Cleanup, Some(user), &[], Vec::new(), privilege)
}

/// `list-users`.
pub fn list_users(privilege: Privilege) -> RemoteCommand {
    build(Operation::ListUsers, None, &[], Vec::new(), privilege)
}

/// `probe`.
pub fn probe(privilege: Privilege) -> RemoteCommand {
    build(Operation::Probe, None, &[], Vec::new(), privilege)
}

/// The command that tells root from non-root admins right after login.
pub const WHOAMI_COMMAND: &str = "id -u";

/// `limits` are the fixed-format words of [`crate::config::UserLimits`]: digits with
/// an optional `%`, or `unlimited`; anything else is left out and the script refuses
/// to run with fewer arguments.
fn build(
    operation: Operation,
    user: Option<&UserName>,
    limits: &[String],
    stdin: Vec<u8>,
    privilege: Privilege,
) -> RemoteCommand {
    let mut words = Vec::with_capacity(9);
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
    words.extend(
        limits
            .iter()
            .filter(|word| is_limit_word(word))
            .map(String::clone),
    );
    RemoteCommand {
        operation,
        command_line: words.join(" "),
        stdin,
    }
}

/// Digits with an optional trailing `%`, or `unlimited`: safe unquoted in any shell.
fn is_limit_word(word: &str) -> bool {
    let digits = word.strip_suffix('%').unwrap_or(word);
    word == "unlimited" || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
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
    use crate::config::{CpuQuota, MaxProcesses, MemoryMax, SudoCommand, UserLimits};
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
            format!(
                "/bin/sh -c {quoted} mpc-provision u-0123456789abcdef0123456789ab 4096 90% 90%"
            )
        );
        let limited = request.clone().with_limits(UserLimits {
            max_processes: MaxProcesses::Unlimited,
            memory_max: MemoryMax::Bytes(8 << 30),
            cpu_quota: CpuQuota::PercentOfHost(50),
        });
        assert!(
            provision(&limited, Privilege::Root).command_line.ends_with(
                "' mpc-provision u-0123456789abcdef0123456789ab unlimited 8589934592 50%"
            )
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

    /// Runs `call` after the shared prologue's helpers and returns its stdout.
    fn helper_output(call: &str) -> String {
        let out = Command::new("/bin/sh")
            .args(["-c", &format!("{PROLOGUE}{call}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{call}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_limits_file_caps_processes_soft_and_hard() {
        assert_eq!(
            helper_output("limits_conf u-0123456789abcdef0123456789ab 4096"),
            "# Build user u-0123456789abcdef0123456789ab of multi-platform-controller; \
             removed with the user.\n\
             u-0123456789abcdef0123456789ab soft nproc 4096\n\
             u-0123456789abcdef0123456789ab hard nproc 4096\n"
        );
    }

    #[test]
    fn the_slice_dropin_sets_memory_and_cpu_of_the_whole_host() {
        let user = "u-0123456789abcdef0123456789ab";
        let header = format!(
            "# mpc-build-user {user}\n# Limits of a build user of multi-platform-controller; \
             removed with the user.\n[Slice]\n"
        );
        // 90 % of 8 CPUs is 720 % of one, systemd's unit for CPUQuota.
        assert_eq!(
            helper_output(&format!("slice_dropin {user} 90% 90% 8")),
            format!("{header}MemoryMax=90%\nCPUQuota=720%\n")
        );
        assert_eq!(
            helper_output(&format!("slice_dropin {user} 8589934592 unlimited 2")),
            format!("{header}MemoryMax=8589934592\n")
        );
        assert_eq!(
            helper_output(&format!("slice_dropin {user} unlimited 50% 1")),
            format!("{header}CPUQuota=50%\n")
        );
    }

    #[test]
    fn provision_refuses_limits_that_are_not_plain_words() {
        let user = "u-0123456789abcdef0123456789ab";
        for limits in [
            ["4096", "90%", "90"],
            ["40 96", "90%", "90%"],
            ["4096", "9G", "90%"],
            ["4096", "%", "90%"],
            ["4096", "90%", "$(id)%"],
            ["-1", "90%", "90%"],
        ] {
            let out = Command::new("/bin/sh")
                .args(["-c", &Operation::Provision.script(), "mpc-provision", user])
                .args(limits)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(64), "{limits:?}");
        }
        // Missing limits are refused too.
        let out = Command::new("/bin/sh")
            .args(["-c", &Operation::Provision.script(), "mpc-provision", user])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
    }

    #[test]
    fn only_plain_limit_words_reach_the_command_line() {
        for ok in ["4096", "90%", "unlimited", "8589934592"] {
            assert!(is_limit_word(ok), "{ok}");
        }
        for bad in ["", "%", "9 0%", "90%%", "$(id)", "1;id", "unlimited ", "-1"] {
            assert!(!is_limit_word(bad), "{bad:?}");
        }
    }

    #[test]
    fn scripts_never_interpolate_anything() {
        for op in ALL {
            let script = op.script();
            // The only placeholders are shell parameters (and find's own); no Rust
            // formatting slipped in.
            let script = script.replace("-exec rm -rf -- {} +", "");
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
