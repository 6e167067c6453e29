//! The provisioning floor shared by the SSH and controller benchmarks: the OpenSSH client
//! over a ControlMaster connection (no handshake per user) running a bare `useradd` +
//! `authorized_keys`, then `userdel` — the least any provisioner has to do per user.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpc_core::naming::UserName;
use test_hosts::TestHost;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An OpenSSH client master connection to a host's root; commands reuse it through its
/// socket.
pub struct ControlMaster {
    socket: std::path::PathBuf,
    destination: String,
    key: std::path::PathBuf,
    known_hosts: std::path::PathBuf,
}

impl ControlMaster {
    /// Opens the master connection.
    pub fn start(host: &TestHost) -> Result<Self, BoxError> {
        let master = ControlMaster {
            socket: host.dir().join("bench.ctl"),
            destination: format!("root@{}", host.address()),
            key: host.root().private_key_path.clone(),
            known_hosts: host.known_hosts_path(),
        };
        let status = master
            .ssh()
            .args(["-M", "-N", "-f", "-o", "ControlPersist=yes"])
            .arg(&master.destination)
            .status()?;
        if !status.success() {
            return Err("cannot start the ssh ControlMaster".into());
        }
        Ok(master)
    }

    fn ssh(&self) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-i"])
            .arg(&self.key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-S")
            .arg(&self.socket);
        ssh
    }

    /// The floor's provisioning: useradd + authorized_keys, one ssh exec.
    pub fn provision(&self, user: &UserName, authorized_key: &str) -> Result<Duration, BoxError> {
        let started = Instant::now();
        let create = format!(
            "useradd --create-home --user-group --shell /bin/bash --password '*' {user} \
             && chmod 700 /home/{user} && mkdir -m 700 /home/{user}/.ssh \
             && cat > /home/{user}/.ssh/authorized_keys \
             && chmod 600 /home/{user}/.ssh/authorized_keys \
             && chown -R {user}: /home/{user}/.ssh"
        );
        self.run(&create, authorized_key)?;
        Ok(started.elapsed())
    }

    /// The floor's cleanup: userdel, one ssh exec.
    pub fn delete(&self, user: &UserName) -> Result<Duration, BoxError> {
        let started = Instant::now();
        self.run(&format!("userdel --remove {user}"), "")?;
        Ok(started.elapsed())
    }

    fn run(&self, command: &str, stdin: &str) -> Result<(), BoxError> {
        use std::io::Write;
        let mut child = self
            .ssh()
            .arg(&self.destination)
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            writeln!(pipe, "{stdin}")?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!(
                "floor command failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for ControlMaster {
    fn drop(&mut self) {
        let _ = self
            .ssh()
            .args(["-O", "exit"])
            .arg(&self.destination)
            .stderr(Stdio::null())
            .status();
    }
}

/// OpenSSH's version line (`OpenSSH_9.2p1 …`).
pub fn openssh_version() -> String {
    Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default()
}
