//! The host's sshd: its configuration and its lifecycle inside the namespace.

use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::namespace::Namespace;

/// Where the admin users' authorized keys live (inside the host's private `/etc`), so
/// the fixture never writes to the machine's `/root`.
pub(crate) const ADMIN_KEYS_DIR: &str = "etc/ssh/test-admin-keys";

/// How long sshd may take to start listening or to die; generous because the machine
/// is shared by several builds.
const SSHD_DEADLINE: Duration = Duration::from_secs(20);

/// sshd_config for a host listening on `address:22`. The admin users' keys come from
/// the private `/etc`; build users use the stock `~/.ssh/authorized_keys`, as on a real
/// build host. Without `pam`: no PAM, like many minimal hosts, and the strictest case
/// for locked accounts (sshd then refuses users whose password field starts with `!`).
/// With it: Debian's PAM stack (`pam_limits`, `pam_loginuid`, `pam_env`, …), as most
/// distributions ship sshd.
pub(crate) fn config(address: Ipv4Addr, admins: &[&str], pam: bool) -> String {
    let use_pam = if pam { "yes" } else { "no" };
    format!(
        "# Written by the test-hosts fixture.
ListenAddress {address}:22
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM {use_pam}
StrictModes yes
MaxSessions 10
MaxStartups 200
LoginGraceTime 30
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
X11Forwarding no
Subsystem sftp internal-sftp
Match User {admins}
    AuthorizedKeysFile /etc/ssh/test-admin-keys/%u
",
        admins = admins.join(",")
    )
}

/// Why an sshd start did not produce a listening server.
pub(crate) enum StartFailure {
    /// Another process holds the address.
    AddressInUse,
    /// Anything else.
    Other(Error),
}

/// Starts `/usr/sbin/sshd -D` in `namespace`, logging to `log`, and waits until it
/// listens.
pub(crate) fn start(namespace: &Namespace, log: &Path) -> Result<Child, StartFailure> {
    let log_file = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| StartFailure::Other(Error::io("open", log)(e)))
    };
    let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut command = namespace.command("/usr/sbin/sshd");
    command
        .args(["-D", "-e"])
        .stdin(Stdio::null())
        .stdout(log_file()?)
        .stderr(log_file()?);
    let mut child = command.spawn().map_err(|source| {
        StartFailure::Other(Error::Spawn {
            program: "nsenter sshd".into(),
            source,
        })
    })?;
    let deadline = Instant::now() + SSHD_DEADLINE;
    loop {
        let text = read_from(log, offset);
        if text.contains("Server listening on") {
            return Ok(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            let text = read_from(log, offset);
            return Err(if text.contains("Address already in use") {
                StartFailure::AddressInUse
            } else {
                StartFailure::Other(Error::Setup(format!("sshd exited: {}", text.trim())))
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartFailure::Other(Error::Timeout(format!(
                "sshd did not listen within {SSHD_DEADLINE:?}: {}",
                text.trim()
            ))));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills every sshd of the namespace (listener and per-connection processes, so open
/// connections drop) and waits until none is left.
pub(crate) fn stop(namespace: &Namespace, listener: Option<Child>) -> Result<(), Error> {
    namespace.run(&["pkill", "-KILL", "-x", "sshd"], b"")?;
    if let Some(mut listener) = listener {
        let _ = listener.wait();
    }
    let deadline = Instant::now() + SSHD_DEADLINE;
    loop {
        if !namespace.run(&["pgrep", "-x", "sshd"], b"")?.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "sshd processes still alive after {SSHD_DEADLINE:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The part of the log written after byte `offset`.
fn read_from(log: &Path, offset: u64) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The sshd log of a host directory.
pub(crate) fn log_path(dir: &Path) -> PathBuf {
    dir.join("sshd.log")
}
