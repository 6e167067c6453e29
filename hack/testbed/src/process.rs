//! The real `multi-platform-controller run` binary as a child process, for benchmarks
//! that measure the process itself (its memory, apart from kube-sim and the driver) and
//! for anything that must run the controller exactly as it is deployed.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// Memory figures of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
}

impl Memory {
    /// Reads the figures of process `pid`.
    pub fn of(pid: u32) -> Result<Memory, Error> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)
            .map_err(|e| Error::Other(format!("cannot read {path}: {e}")))?;
        Memory::parse(&status).ok_or_else(|| Error::Other(format!("{path} lacks VmHWM/VmRSS")))
    }

    /// The figures in the text of a `/proc/<pid>/status` file.
    pub fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
        };
        Some(Memory {
            peak_rss_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
        })
    }
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration, Error> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|e| Error::Other(format!("cannot read {path}: {e}")))?;
    parse_cpu_time(&stat).ok_or_else(|| Error::Other(format!("{path} has no CPU times")))
}

/// utime + stime (fields 14 and 15, in clock ticks of 1/100 s on Linux) of a
/// `/proc/<pid>/stat` line; the command name in parentheses may contain spaces.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name come field 3 (state) onwards: utime is field 14, stime field 15.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A running `multi-platform-controller run`; killed when dropped.
pub struct ControllerProcess {
    child: Child,
    metrics: SocketAddr,
    health: SocketAddr,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// A free port on 127.0.0.1 (free when asked; the controller binds it a moment later).
fn free_port() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Other(format!("no free loopback port: {e}")))?;
    listener
        .local_addr()
        .map_err(|e| Error::Other(format!("no free loopback port: {e}")))
}

impl ControllerProcess {
    /// Starts `binary run --namespace NAMESPACE [args…]` against the cluster of
    /// `kubeconfig`, with metrics and health on free loopback ports. Its log (`RUST_LOG`,
    /// default `info`) goes to a file, see [`ControllerProcess::log_tail`].
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
    ) -> Result<ControllerProcess, Error> {
        Self::start_with_env(binary, kubeconfig, namespace, args, &[])
    }

    /// [`ControllerProcess::start`] with more environment variables (for example
    /// `AWS_ENDPOINT_URL_EC2`, the EC2 endpoint of the cloud platforms).
    pub fn start_with_env(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ControllerProcess, Error> {
        let (metrics, health) = (free_port()?, free_port()?);
        let log_dir = tempfile::tempdir()
            .map_err(|e| Error::Other(format!("cannot create a log directory: {e}")))?;
        let log = log_dir.path().join("controller.log");
        let file = File::create(&log)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", log.display())))?;
        let stderr = file
            .try_clone()
            .map_err(|e| Error::Other(format!("cannot share {}: {e}", log.display())))?;
        let child = Command::new(binary)
            .arg("run")
            .args(["--namespace", namespace])
            .arg(format!("--metrics-bind-address={metrics}"))
            // Read with a plain GET; the secured endpoint has its own tests.
            .arg("--metrics-secure=false")
            .arg(format!("--health-probe-bind-address={health}"))
            .args(args)
            .envs(env.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::Other(format!("cannot start {}: {e}", binary.display())))?;
        Ok(ControllerProcess {
            child,
            metrics,
            health,
            log,
            _log_dir: log_dir,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200 (caches synced); fails at once if the process
    /// exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let health = self.health;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Other(format!(
                    "the controller exited ({status}) before it was ready; its log ends:\n{}",
                    self.log_tail(20)
                )));
            }
            if matches!(http_get(health, "/readyz").await, Ok((200, _))) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "the controller was not ready within {timeout:?}; its log ends:\n{}",
                    self.log_tail(20)
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Result<String, Error> {
        match http_get(self.metrics, "/metrics").await {
            Ok((200, body)) => Ok(body),
            Ok((code, _)) => Err(Error::Other(format!("/metrics answered {code}"))),
            Err(e) => Err(Error::Other(format!("/metrics: {e}"))),
        }
    }

    /// Its memory now (and its peak so far).
    pub fn memory(&self) -> Result<Memory, Error> {
        Memory::of(self.pid())
    }

    /// CPU time it has used so far.
    pub fn cpu_time(&self) -> Result<Duration, Error> {
        cpu_time(self.pid())
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops it as Kubernetes does: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<ExitStatus, Error> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = tokio::time::Instant::now() + grace;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                _ => {
                    let _ = self.child.kill();
                    return self
                        .child
                        .wait()
                        .map_err(|e| Error::Other(format!("waiting for the controller: {e}")));
                }
            }
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.0 GET: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await?;
    let text = String::from_utf8_lossy(&bytes);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_figures_come_from_the_status_file() {
        let status = "Name:\tmpc\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   39000 kB\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                peak_rss_kib: 41234,
                rss_kib: 39000
            })
        );
        assert_eq!(Memory::parse("Name:\tmpc\n"), None);
    }

    #[test]
    fn cpu_time_is_utime_plus_stime() {
        let stat = "4242 (multi platform) S 1 4242 4242 0 -1 4194560 900 0 0 0 123 45 0 0 20 0 5 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(1680)));
        assert_eq!(parse_cpu_time("garbage"), None);
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn this_process_has_memory_figures() {
        let me = Memory::of(std::process::id()).expect("own status");
        assert!(me.peak_rss_kib >= me.rss_kib && me.rss_kib > 0);
    }
}
