//! What a build and a cluster admin see of the controller's work: Events, the
//! controller's metrics, a login made exactly the way the Task makes it, and the
//! retries a test driver needs when kube-sim injects faults into its own writes.

use std::fs;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_sim::{wait_for, wait_until};
use mpc_core::naming::{HOST_CONFIG_NAME, secret_keys};

use crate::{Error, Testbed, text};

/// An Event as `kubectl events` shows it to an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Machine-readable reason (`Allocated`, `Waiting`, …).
    pub reason: String,
    /// The human-readable note.
    pub note: String,
    /// How often it happened (a repeated Event is counted in its series).
    pub count: i32,
}

impl Testbed {
    /// Events (events.k8s.io/v1) about `kind`/`name` in the test namespace, oldest first.
    pub async fn events_about(&self, kind: &str, name: &str) -> Result<Vec<SeenEvent>, Error> {
        let api = Api::<Event>::namespaced(self.client(), self.namespace());
        let mut events: Vec<Event> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .collect();
        events.sort_by(|a, b| a.event_time.cmp(&b.event_time));
        Ok(events
            .into_iter()
            .map(|e| SeenEvent {
                type_: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                note: e.note.unwrap_or_default(),
                count: e.series.map_or(1, |s| s.count),
            })
            .collect())
    }

    /// Events about the TaskRun `name`, oldest first.
    pub async fn events_for(&self, name: &str) -> Result<Vec<SeenEvent>, Error> {
        self.events_about("TaskRun", name).await
    }

    /// Events about the host-config ConfigMap (configuration problems, hosts taken out
    /// of service), oldest first.
    pub async fn host_config_events(&self) -> Result<Vec<SeenEvent>, Error> {
        self.events_about("ConfigMap", HOST_CONFIG_NAME).await
    }

    /// Waits for an Event with `reason` on the TaskRun `name` and returns it.
    pub async fn wait_event(&self, name: &str, reason: &str) -> Result<SeenEvent, Error> {
        let what = format!("a {reason} Event on TaskRun {name}");
        Ok(wait_for(self.wait, &what, || async {
            self.events_for(name)
                .await
                .ok()?
                .into_iter()
                .find(|e| e.reason == reason)
        })
        .await?)
    }

    /// The value of a sample of controller `index`'s metric `name` (full name, e.g.
    /// `multi_platform_controller_host_up`) whose labels include every `labels` pair.
    pub fn metric(&self, index: usize, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.controller(index).metrics.encode();
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_part, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.trim().parse().ok())
                .flatten()
        })
    }

    /// Waits until controller `index` counts `host` as up: probed, rid of leftover users
    /// and taking TaskRuns (its `host_up` gauge, refreshed every second, is 1).
    pub async fn wait_host_up(&self, index: usize, host: &str) -> Result<(), Error> {
        self.wait_host_health(index, host, true).await
    }

    /// Waits until controller `index` has taken `host` out of service.
    pub async fn wait_host_down(&self, index: usize, host: &str) -> Result<(), Error> {
        self.wait_host_health(index, host, false).await
    }

    async fn wait_host_health(&self, index: usize, host: &str, up: bool) -> Result<(), Error> {
        let what = format!(
            "controller {index} counts host {host} as {}",
            if up { "up" } else { "down" }
        );
        let want = if up { 1.0 } else { 0.0 };
        wait_until(self.wait, &what, || async {
            self.metric(
                index,
                "multi_platform_controller_host_up",
                &[("host", host)],
            ) == Some(want)
        })
        .await?;
        Ok(())
    }

    /// Logs in exactly as a build Task does with the TaskRun's Secret: `id_rsa` as the
    /// key, `host` as `user@address`, and the Secret's `known_hosts` line as the only
    /// trusted host key (so a wrong line fails the login). Runs `command` there.
    pub async fn ssh_as_task(
        &self,
        name: &str,
        command: &str,
    ) -> Result<test_hosts::CommandOutput, Error> {
        let secret = self
            .secret(name)
            .await?
            .ok_or_else(|| Error::Other(format!("TaskRun {name} has no Secret")))?;
        let field = |key: &str| {
            text(&secret, key)
                .ok_or_else(|| Error::Other(format!("the Secret of {name} has no {key}")))
        };
        let (login, key, known_hosts) = (
            field(secret_keys::HOST)?,
            field(secret_keys::ID_RSA)?,
            field(secret_keys::KNOWN_HOSTS)?,
        );
        let command = command.to_owned();
        tokio::task::spawn_blocking(move || run_ssh(&login, &key, &known_hosts, &command))
            .await
            .map_err(|e| Error::Other(format!("ssh thread: {e}")))?
    }

    /// Whether `path` exists on build host `host` (as its root sees it).
    pub fn exists_on(&self, host: &str, path: &str) -> Result<bool, Error> {
        Ok(self.host(host).host.run(&["test", "-e", path])?.success())
    }

    /// Runs a Kubernetes request until it gets through, as a kube client would: kube-sim's
    /// fault injection fails writes with 500 or 409 *without carrying them out*, and an API
    /// server at its in-flight limit answers 429 (kube's client has already retried those,
    /// honouring `Retry-After`, when one gets here). The test driver (playing Tekton or a
    /// user) sends them again: exponential backoff from 20 ms with full jitter, at least the
    /// second a 429 asks for, at most 40 attempts and the bed's wait. Other errors end the
    /// retries.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut request: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        const ATTEMPTS: u32 = 40;
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut pause = Duration::from_millis(20);
        let mut attempt = 1;
        loop {
            let err = match request().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) => e,
                Err(e) => return Err(e),
            };
            let wait = retry_pause(&err, pause);
            if attempt >= ATTEMPTS || tokio::time::Instant::now() + wait > deadline {
                return Err(Error::Other(format!(
                    "{what}: gave up after {attempt} attempts; last error: {err}"
                )));
            }
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }
}

/// How long to wait before sending a refused request again: a random share of `pause`
/// (full jitter, so a burst of clients does not come back at once), and for 429 at least
/// the `Retry-After` the API server sends (1 s; a `Status` may carry its own).
fn retry_pause(err: &Error, pause: Duration) -> Duration {
    let jitter = pause.mul_f64(rand::random::<f64>());
    match err {
        Error::Kube(kube::Error::Api(s)) if s.code == 429 => {
            let asked = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .unwrap_or(1);
            jitter.max(Duration::from_secs(u64::from(asked)))
        }
        _ => jitter,
    }
}

/// A failure worth sending the request again for.
fn is_transient(err: &Error) -> bool {
    match err {
        // A 409 AlreadyExists is an answer, not a refusal.
        Error::Kube(kube::Error::Api(status)) => {
            matches!(status.code, 409 | 429 | 500 | 503) && status.reason != "AlreadyExists"
        }
        Error::Kube(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
        _ => false,
    }
}

fn run_ssh(
    login: &str,
    key: &str,
    known_hosts: &str,
    command: &str,
) -> Result<test_hosts::CommandOutput, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Other(format!("temp dir: {e}")))?;
    let write = |file: &str, content: &str| -> Result<std::path::PathBuf, Error> {
        let path = dir.path().join(file);
        fs::write(&path, content).map_err(|e| Error::Other(format!("write {file}: {e}")))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::Other(format!("chmod {file}: {e}")))?;
        Ok(path)
    };
    let key_path = write("id_rsa", key)?;
    let known_hosts_path = write("known_hosts", known_hosts)?;
    let output = Command::new("ssh")
        .args(["-F", "/dev/null", "-T", "-i"])
        .arg(&key_path)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts_path.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"])
        .arg(login)
        .arg("--")
        .arg(command)
        .output()
        .map_err(|e| Error::Other(format!("running ssh: {e}")))?;
    Ok(test_hosts::CommandOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
