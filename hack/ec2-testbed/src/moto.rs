//! moto's server: a local EC2 (and IAM) API on 127.0.0.1, one per test.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::http;

/// The pinned moto version (`hack/ec2-testbed/moto-requirements.txt`).
pub const MOTO_VERSION: &str = "5.2.6";

/// Where `hack/lib/setup.sh` installs moto unless `MPC_MOTO_VENV` says otherwise.
pub const DEFAULT_MOTO_VENV: &str = "/opt/mpc-moto-venv";

/// The exact Python packages of the moto install; `install_moto` copies this file into
/// the virtualenv once the install succeeded, so a stale or partial install is noticed.
pub const MOTO_REQUIREMENTS: &str = include_str!("../moto-requirements.txt");

/// The file in the virtualenv that records what was installed.
const STAMP: &str = ".mpc-requirements";

/// How long moto may take to answer after its start (it imports every AWS backend).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How many free ports to try when another process takes the one picked.
const PORT_TRIES: usize = 5;

/// Runs moto as the child of a shell that kills it when its stdin (a pipe from this
/// process) closes: on drop, and also when this process dies without dropping it.
const WRAPPER: &str = r#"exec 3<&0
"$1" -H 127.0.0.1 -p "$2" </dev/null 3<&- &
moto=$!
(read -r _ <&3; kill "$moto" 2>/dev/null) &
exec 3<&-
wait "$moto"
"#;

/// The `moto_server` program: `MPC_MOTO_SERVER`, else the one in the virtualenv
/// (`MPC_MOTO_VENV`, default [`DEFAULT_MOTO_VENV`]) installed from
/// [`MOTO_REQUIREMENTS`].
pub fn moto_server_path() -> Result<PathBuf, Error> {
    find_moto_server(|name| std::env::var_os(name))
}

fn find_moto_server(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, Error> {
    if let Some(path) = env("MPC_MOTO_SERVER") {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(Error::MotoMissing { path })
        };
    }
    let venv = env("MPC_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MOTO_VENV));
    let server = venv.join("bin/moto_server");
    if !server.exists() {
        return Err(Error::MotoMissing { path: server });
    }
    let installed = std::fs::read_to_string(venv.join(STAMP)).unwrap_or_default();
    if installed != MOTO_REQUIREMENTS {
        return Err(Error::MotoStale {
            venv,
            wanted: MOTO_VERSION,
        });
    }
    Ok(server)
}

/// A running moto server on `127.0.0.1:<free port>`; killed on drop. Each test starts
/// its own, so tests never see each other's instances.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Result<Moto, Error> {
        let server = moto_server_path()?;
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_port()?;
            match Self::start_on(&server, port).await {
                Ok(moto) => return Ok(moto),
                Err(Started::PortTaken(log)) => last = log,
                Err(Started::Failed(e)) => return Err(e),
            }
        }
        Err(Error::MotoStart(format!(
            "every port tried was taken; last log: {last}"
        )))
    }

    async fn start_on(server: &Path, port: u16) -> Result<Moto, Started> {
        let dir = tempfile::Builder::new()
            .prefix("mpc-moto-")
            .tempdir()
            .map_err(|e| Started::Failed(Error::io("create moto's directory")(e)))?;
        let log = dir.path().join("moto.log");
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| Started::Failed(Error::io("open moto's log")(e)))
        };
        let mut child = Command::new("/bin/sh")
            .args(["-c", WRAPPER, "moto-wrapper"])
            .arg(server)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .spawn()
            .map_err(|e| Started::Failed(Error::io(format!("run {}", server.display()))(e)))?;
        let stdin = child.stdin.take();
        let mut moto = Moto {
            child,
            stdin,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if moto.answers().await {
                tracing::debug!(addr = %moto.addr, "moto is up");
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                let log = moto.log();
                return Err(if log.contains("Address already in use") {
                    Started::PortTaken(log)
                } else {
                    Started::Failed(Error::MotoStart(format!("it exited ({status}): {log}")))
                });
            }
            if Instant::now() > deadline {
                return Err(Started::Failed(Error::MotoStart(format!(
                    "no answer within {START_DEADLINE:?}: {}",
                    moto.log()
                ))));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answers(&self) -> bool {
        let request = http::plain_request(self.addr, hyper::Method::GET, "/moto-api/");
        matches!(http::send(self.addr, request).await, Ok(r) if r.status().is_success())
    }

    /// `http://127.0.0.1:<port>`, for an SDK client's endpoint URL.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address moto listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forgets every resource (moto's `/moto-api/reset`).
    pub async fn reset(&self) -> Result<(), Error> {
        let request = http::plain_request(self.addr, hyper::Method::POST, "/moto-api/reset");
        let response = http::send(self.addr, request)
            .await
            .map_err(|e| Error::api("reset moto", e))?;
        if !response.status().is_success() {
            return Err(Error::api("reset moto", response.status()));
        }
        Ok(())
    }

    /// What moto logged (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper kill moto; the shell then exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

enum Started {
    PortTaken(String),
    Failed(Error),
}

/// A port nothing listens on right now (the kernel's pick); someone may take it before
/// moto binds, which [`Moto::start`] notices and retries.
fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(Error::io("find a free port on 127.0.0.1"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("find a free port on 127.0.0.1")(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirements_pin_moto_server_at_the_documented_version() {
        let pin = format!("moto[server]=={MOTO_VERSION}");
        assert!(
            MOTO_REQUIREMENTS.lines().any(|l| l.trim() == pin),
            "moto-requirements.txt must pin {pin}"
        );
        for line in MOTO_REQUIREMENTS.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(line.contains("=="), "unpinned requirement: {line}");
        }
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&format!("moto {MOTO_VERSION}")),
            "README names the version"
        );
    }

    #[test]
    fn the_server_is_found_only_in_a_venv_installed_from_the_requirements() {
        let venv = tempfile::tempdir().unwrap();
        let env_with = |vars: Vec<(&'static str, std::ffi::OsString)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let at_venv = || env_with(vec![("MPC_MOTO_VENV", venv.path().into())]);
        let err = find_moto_server(at_venv()).unwrap_err();
        assert!(matches!(err, Error::MotoMissing { .. }), "{err}");
        assert!(err.to_string().contains("hack/test.sh"), "{err}");

        std::fs::create_dir(venv.path().join("bin")).unwrap();
        std::fs::write(venv.path().join("bin/moto_server"), "").unwrap();
        let err = find_moto_server(at_venv()).unwrap_err();
        assert!(matches!(err, Error::MotoStale { .. }), "no stamp: {err}");
        std::fs::write(venv.path().join(STAMP), "moto[server]==1.0\n").unwrap();
        let err = find_moto_server(at_venv()).unwrap_err();
        assert!(matches!(err, Error::MotoStale { .. }), "other pins: {err}");
        assert!(err.to_string().contains("install_moto"), "{err}");

        std::fs::write(venv.path().join(STAMP), MOTO_REQUIREMENTS).unwrap();
        assert_eq!(
            find_moto_server(at_venv()).unwrap(),
            venv.path().join("bin/moto_server")
        );

        // MPC_MOTO_SERVER wins, and must exist.
        let direct = env_with(vec![
            ("MPC_MOTO_SERVER", "/nonexistent/moto_server".into()),
            ("MPC_MOTO_VENV", venv.path().into()),
        ]);
        assert!(matches!(
            find_moto_server(direct),
            Err(Error::MotoMissing { .. })
        ));
    }
}
