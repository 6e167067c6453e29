//! What a cluster admin relies on, tested on the real binary (`multi-platform-controller
//! run` as a child process) against kube-sim (or the cluster named by
//! `MPC_TEST_KUBECONFIG`) and real sshd build hosts: graceful shutdown on SIGTERM,
//! metrics and health over HTTP, structured logs without key material, and Events on
//! the host-config ConfigMap.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_sim::FaultConfig;
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{wait_for, wait_until};
use mpc_core::naming::{ASSIGNED_HOST_LABEL, HOST_CONFIG_NAME, UserName};
use multi_platform_controller::remote::AdminKey;
use serde_json::Value;
use testbed::{HostSpec, Issued, Testbed, init_test_logging};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_multi-platform-controller");
const PLATFORM: &str = "linux/arm64";
/// Deadline of the waits in this file: generous for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(40);

// ----- the binary as a child process -----

/// `multi-platform-controller run` for the test namespace, its stderr collected.
struct Controller {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    metrics: SocketAddr,
    health: SocketAddr,
}

impl Controller {
    fn start(bed: &Testbed, extra: &[&str]) -> Controller {
        let (metrics, health) = (crate::common::free_addr(), crate::common::free_addr());
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["run", "--namespace", bed.namespace()])
            .args(["--taskrun-namespace", bed.namespace()])
            .arg("--metrics-bind-address")
            .arg(metrics.to_string())
            // Scraped with a plain GET here; tests/it/metrics_endpoint.rs covers HTTPS.
            .arg("--metrics-secure=false")
            .arg("--health-probe-bind-address")
            .arg(health.to_string())
            .args(extra)
            .env("KUBECONFIG", bed.env().kubeconfig_path())
            .env("RUST_LOG", "info")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the controller binary");
        let log = crate::common::capture_stderr(&mut child);
        Controller {
            child,
            log,
            metrics,
            health,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, needle: &str) {
        let what = format!("the controller logs {needle:?}");
        if wait_until(WAIT, &what, || async { self.log().contains(needle) })
            .await
            .is_err()
        {
            panic!("{what}; log:\n{}", self.log());
        }
    }

    async fn healthz(&self) -> Option<(u16, String)> {
        http_get(self.health, "/healthz").await
    }

    async fn readyz(&self) -> Option<(u16, String)> {
        http_get(self.health, "/readyz").await
    }

    async fn scrape(&self) -> String {
        let (status, body) = http_get(self.metrics, "/metrics")
            .await
            .expect("metrics endpoint answers");
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn wait_ready(&self, body: &str) {
        let what = format!("/readyz answers 200 {body:?}");
        if wait_until(WAIT, &what, || async {
            self.readyz().await == Some((200, body.to_owned()))
        })
        .await
        .is_err()
        {
            panic!("{what}; log:\n{}", self.log());
        }
    }

    /// Waits until `series` (e.g. `name{label="v"}`) has a value for which `check` holds.
    async fn wait_metric(&self, series: &str, check: impl Fn(f64) -> bool) -> f64 {
        let what = format!("metric {series} reaches the expected value");
        let found = wait_for(WAIT, &what, || async {
            value(&self.scrape().await, series).filter(|v| check(*v))
        })
        .await;
        match found {
            Ok(v) => v,
            Err(e) => panic!(
                "{e}; now {:?}\n{}",
                value(&self.scrape().await, series),
                self.log()
            ),
        }
    }

    fn sigterm(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (a deadline, not a measurement).
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!(
                "the controller did not exit within {within:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// A plain HTTP/1.0 GET: (status, body), or `None` while nothing listens.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of one series in a Prometheus text exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn arm(name: &str) -> String {
    format!("multi_platform_controller_{name}{{platform=\"{PLATFORM}\"}}")
}

fn on_host(name: &str, host: &str) -> String {
    format!("multi_platform_controller_{name}{{host=\"{host}\",platform=\"{PLATFORM}\"}}")
}

// ----- helpers on the test bed -----

async fn wait_assigned(bed: &Testbed, name: &str) -> String {
    wait_for(WAIT, &format!("{name} assigned a host"), || async {
        bed.taskrun(name)
            .await
            .ok()
            .flatten()
            .and_then(|tr| tr.metadata.labels.clone())
            .and_then(|l| l.get(ASSIGNED_HOST_LABEL).cloned())
    })
    .await
    .expect("assigned")
}

fn private_key(access: &Issued) -> String {
    match access {
        Issued::Access { private_key, .. } => private_key.clone(),
        other => panic!("expected SSH access, got {other:?}"),
    }
}

/// The lines of base64 between the PEM markers of a private key.
fn key_body_lines(key: &str) -> Vec<String> {
    key.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

/// Serves `name` with a fresh in-process controller, completes it, and checks that
/// nothing is left anywhere.
async fn serve_to_the_end(bed: &mut Testbed, name: &str) {
    let access = bed.wait_for_secret(name).await.expect("Secret");
    let out = bed.ssh(&access, "id -un").expect("ssh");
    assert!(out.success(), "{name}: login failed: {}", out.stderr);
    bed.complete(name, true).await.expect("complete");
    bed.wait_released(name).await.expect("released");
    for host in &bed.hosts {
        assert!(bed.users_on(&host.spec.name).unwrap().is_empty());
    }
}

/// The reasons of the Events about TaskRun `name`.
async fn event_reasons(bed: &Testbed, name: &str) -> BTreeSet<String> {
    Api::<Event>::namespaced(bed.client(), bed.namespace())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

// ----- graceful shutdown -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_provisioning_in_flight_and_hands_the_lease_over() {
    init_test_logging();
    let bed = Testbed::start("ops-sigterm", vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let leader_args = [
        "--leader-elect",
        "--identity",
        "bin-a",
        "--shutdown-grace",
        "20",
    ];
    let mut leader = Controller::start(&bed, &leader_args);
    leader.wait_ready("ready (leader)").await;
    let standby_args = ["--leader-elect", "--identity", "bin-b"];
    let mut standby = Controller::start(&bed, &standby_args);
    standby.wait_ready("ready (standby)").await;
    assert_eq!(
        standby.healthz().await,
        Some((200, "ok".to_owned())),
        "a standby is alive"
    );
    leader
        .wait_metric(&on_host("host_up", "h1"), |v| v == 1.0)
        .await;

    // The host hangs while the TaskRun is being provisioned on it.
    let h1 = &bed.host("h1").host;
    h1.freeze_sshd().expect("freeze");
    bed.submit("in-flight", PLATFORM).await.expect("TaskRun");
    assert_eq!(wait_assigned(&bed, "in-flight").await, "h1");
    leader.sigterm();
    leader
        .wait_log("shutting down: finishing operations in flight")
        .await;
    assert_eq!(leader.healthz().await.map(|r| r.0), Some(200));
    h1.thaw_sshd().expect("thaw");

    let status = leader.wait_exit(Duration::from_secs(40)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", leader.log());
    // The operation in flight was finished, not cut off: the Secret grants a login.
    let access = bed.wait_for_secret("in-flight").await.expect("Secret");
    assert!(bed.ssh(&access, "true").expect("ssh").success());
    assert!(leader.log().contains("Lease released"), "{}", leader.log());
    assert_ne!(bed.lease_holder().await.unwrap().as_deref(), Some("bin-a"));

    // The standby takes the released Lease and adopts the TaskRun from its labels.
    standby.wait_ready("ready (leader)").await;
    assert_eq!(bed.lease_holder().await.unwrap().as_deref(), Some("bin-b"));
    bed.complete("in-flight", true).await.expect("complete");
    bed.wait_released("in-flight").await.expect("released");
    assert!(bed.users_on("h1").unwrap().is_empty());
    standby.sigterm();
    let status = standby.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", standby.log());
    assert_eq!(bed.lease_holder().await.unwrap(), None);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_work_that_outlives_the_deadline_without_leaving_a_mess() {
    init_test_logging();
    let mut bed = Testbed::start("ops-deadline", vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let mut ctl = Controller::start(&bed, &["--shutdown-grace", "1"]);
    ctl.wait_ready("ready (leader)").await;
    ctl.wait_metric(&on_host("host_up", "h1"), |v| v == 1.0)
        .await;
    let h1 = &bed.host("h1").host;
    h1.freeze_sshd().expect("freeze");
    bed.submit("stuck", PLATFORM).await.expect("TaskRun");
    wait_assigned(&bed, "stuck").await;
    ctl.sigterm();
    let status = ctl.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", ctl.log());
    assert!(
        ctl.log().contains("shutdown deadline reached"),
        "{}",
        ctl.log()
    );
    h1.thaw_sshd().expect("thaw");

    // Consistent leftovers: the TaskRun keeps its host label and finalizer (so the
    // next leader counts the slot), and has no Secret granting a half-made user.
    assert!(bed.has_finalizer("stuck").await.unwrap());
    assert!(bed.secret("stuck").await.unwrap().is_none());
    let settings = bed.settings();
    bed.start_controller(settings).await.expect("controller");
    serve_to_the_end(&mut bed, "stuck").await;
    bed.cleanup().await;
}

// ----- metrics and health -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http_follow_a_run() {
    init_test_logging();
    let specs = vec![
        HostSpec::new("h1", PLATFORM, 1),
        HostSpec::new("h2", PLATFORM, 1),
    ];
    let bed = Testbed::start("ops-metrics", specs)
        .await
        .expect("test bed");
    // Slow TaskRun lists, so the controller is alive before its caches are synced.
    let faults = bed.env().faults();
    if let Some(faults) = faults {
        faults.set(FaultConfig {
            latency: Duration::from_secs(2),
            resources: vec!["taskruns".to_owned()],
            ..FaultConfig::default()
        });
    }
    let mut ctl = Controller::start(&bed, &["--reap-interval", "1", "--reap-min-age", "0"]);
    wait_until(WAIT, "/healthz answers", || async {
        ctl.healthz().await.is_some()
    })
    .await
    .expect("healthz");
    assert_eq!(ctl.healthz().await, Some((200, "ok".to_owned())));
    match faults {
        Some(faults) => {
            assert_eq!(
                ctl.readyz().await,
                Some((503, "caches not synced".to_owned()))
            );
            faults.clear();
        }
        None => skip_on_real_cluster(
            "metrics_and_health_over_http_follow_a_run: /readyz 503 before the caches sync",
            "a slow API needs kube-sim's fault injection",
        ),
    }
    ctl.wait_ready("ready (leader)").await;
    for host in ["h1", "h2"] {
        ctl.wait_metric(&on_host("host_up", host), |v| v == 1.0)
            .await;
    }
    let text = ctl.scrape().await;
    assert_eq!(
        value(&text, &arm("platform_pool_size")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, &on_host("slots_total", "h1")), Some(1.0));

    // A leftover build user that no TaskRun owns is reaped.
    let leftover = UserName::for_taskrun("gone-long-ago", bed.namespace()).to_string();
    let h1 = &bed.host("h1").host;
    h1.run(&["useradd", "--create-home", &leftover])
        .expect("useradd")
        .ok("useradd")
        .expect("leftover user");
    ctl.wait_metric("multi_platform_controller_reaped_users{host=\"h1\"}", |v| {
        v == 1.0
    })
    .await;
    assert!(!bed.users_on("h1").unwrap().contains(&leftover));

    // A success on h1; then h2 fails to provision, and the TaskRun waits for h1.
    bed.submit("ok-1", PLATFORM).await.expect("TaskRun");
    let first = bed.wait_for_secret("ok-1").await.expect("Secret");
    assert!(matches!(first, Issued::Access { .. }), "{first:?}");
    let h2 = &bed.host("h2").host;
    h2.stop_sshd().expect("stop sshd");
    bed.submit("ok-2", PLATFORM).await.expect("TaskRun");
    ctl.wait_metric(&arm("provisioning_failures"), |v| v == 1.0)
        .await;
    bed.wait_waiting("ok-2").await.expect("waiting");
    ctl.wait_metric(&arm("waiting_tasks"), |v| v == 1.0).await;
    let text = ctl.scrape().await;
    assert_eq!(value(&text, &arm("running_tasks")), Some(1.0), "{text}");
    assert_eq!(value(&text, &on_host("slots_used", "h1")), Some(1.0));
    assert_eq!(value(&text, &on_host("host_up", "h2")), Some(0.0));
    assert_eq!(value(&text, &arm("provisioning_successes")), Some(1.0));
    h2.start_sshd().expect("start sshd");
    ctl.wait_metric(&on_host("host_up", "h2"), |v| v == 1.0)
        .await;

    // A TaskRun for a platform without hosts gets an error Secret.
    bed.submit("no-host", "linux/s390x").await.expect("TaskRun");
    let error = bed.wait_for_secret("no-host").await.expect("Secret");
    assert!(matches!(error, Issued::Error(_)), "{error:?}");

    // ok-1 ends; the waiter gets h1.
    bed.complete("ok-1", true).await.expect("complete");
    bed.wait_released("ok-1").await.expect("released");
    let second = bed.wait_for_secret("ok-2").await.expect("Secret");
    assert!(matches!(second, Issued::Access { .. }), "{second:?}");

    // Cleaning h1 after ok-2 fails once (sshd down), then succeeds.
    h1.stop_sshd().expect("stop sshd");
    bed.complete("ok-2", true).await.expect("complete");
    ctl.wait_metric(&arm("cleanup_failures"), |v| v >= 1.0)
        .await;
    h1.start_sshd().expect("start sshd");
    bed.wait_released("ok-2").await.expect("released");
    bed.complete("no-host", false).await.expect("complete");
    bed.wait_released("no-host").await.expect("released");

    // ok-2's story in Events on the TaskRun.
    let story = [
        "Allocated",
        "ProvisioningFailed",
        "Waiting",
        "Provisioned",
        "CleanupFailed",
        "Released",
    ];
    let told = wait_until(WAIT, "ok-2's Events", || async {
        let reasons = event_reasons(&bed, "ok-2").await;
        story.iter().all(|r| reasons.contains(*r))
    })
    .await;
    if told.is_err() {
        let reasons = event_reasons(&bed, "ok-2").await;
        panic!("ok-2's Events: {reasons:?}, expected {story:?}");
    }

    // Gauges drop back to zero once everything is released.
    ctl.wait_metric(&arm("running_tasks"), |v| v == 0.0).await;
    for host in ["h1", "h2"] {
        ctl.wait_metric(&on_host("host_up", host), |v| v == 1.0)
            .await;
    }
    let text = ctl.scrape().await;
    let expect = |series: &str, want: f64| {
        assert_eq!(value(&text, series), Some(want), "{series} in:\n{text}");
    };
    expect(&arm("waiting_tasks"), 0.0);
    expect(&on_host("slots_used", "h1"), 0.0);
    expect(&on_host("slots_used", "h2"), 0.0);
    expect(&on_host("slots_total", "h2"), 1.0);
    expect(&arm("platform_pool_size"), 2.0);
    // Counted once each, successes never on a failure.
    expect(&arm("provisioning_successes"), 2.0);
    expect(&arm("provisioning_failures"), 1.0);
    expect(
        "multi_platform_controller_host_allocation_failures{platform=\"linux/s390x\"}",
        1.0,
    );
    assert_eq!(
        value(
            &text,
            "multi_platform_controller_provisioning_successes{platform=\"linux/s390x\"}"
        ),
        None
    );
    let cleanup_failures = value(&text, &arm("cleanup_failures")).unwrap();
    expect(
        "multi_platform_controller_host_cleanup_failures{host=\"h1\"}",
        cleanup_failures,
    );
    expect("multi_platform_controller_reaped_users{host=\"h1\"}", 1.0);
    expect(
        &format!(
            "{}_count{{platform=\"{PLATFORM}\"}}",
            "multi_platform_controller_host_allocation_time"
        ),
        2.0,
    );
    expect(
        &format!(
            "{}_count{{platform=\"{PLATFORM}\"}}",
            "multi_platform_controller_task_run_time"
        ),
        2.0,
    );
    let waited = value(
        &text,
        &format!("multi_platform_controller_wait_time_count{{platform=\"{PLATFORM}\"}}"),
    );
    assert!(waited.is_some_and(|n| n >= 1.0), "wait_time in:\n{text}");

    // The Go controller's names and types, counters without `_total`.
    for (name, kind) in [
        ("host_allocation_time", "histogram"),
        ("wait_time", "histogram"),
        ("task_run_time", "histogram"),
        ("provisioning_successes", "counter"),
        ("provisioning_failures", "counter"),
        ("cleanup_failures", "counter"),
        ("host_allocation_failures", "counter"),
        ("platform_pool_size", "gauge"),
        ("running_tasks", "gauge"),
        ("waiting_tasks", "gauge"),
        ("slots_used", "gauge"),
        ("slots_total", "gauge"),
        ("host_up", "gauge"),
        ("reaped_users", "counter"),
        ("host_cleanup_failures", "counter"),
    ] {
        let line = format!("# TYPE multi_platform_controller_{name} {kind}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
        assert!(
            !text.contains(&format!("multi_platform_controller_{name}_total")),
            "{name} must not have a _total suffix:\n{text}"
        );
    }

    ctl.sigterm();
    let status = ctl.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}");
    bed.cleanup().await;
}

// ----- logs -----

/// Runs one TaskRun through allocation and release under `--log-format format` and
/// returns the log, the issued private key, the build user and the TaskRun name.
async fn logged_run(bed: &Testbed, format: &str) -> (String, String, String) {
    let mut ctl = Controller::start(bed, &["--log-format", format]);
    ctl.wait_ready("ready (leader)").await;
    bed.submit("logged", PLATFORM).await.expect("TaskRun");
    let access = bed.wait_for_secret("logged").await.expect("Secret");
    let key = private_key(&access);
    bed.complete("logged", true).await.expect("complete");
    bed.wait_released("logged").await.expect("released");
    ctl.wait_log("released").await;
    ctl.sigterm();
    let status = ctl.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}");
    let user = UserName::for_taskrun("logged", bed.namespace()).to_string();
    (ctl.log(), key, user)
}

/// No private key text: no PEM marker, no line of the issued or the admin key's
/// base64 body, not the Secret's base64 encoding of the issued key.
fn assert_no_key_material(log: &str, issued: &str, admin: &str) {
    assert!(
        !log.contains("PRIVATE KEY"),
        "PEM marker in the log:\n{log}"
    );
    for (what, key) in [("issued", issued), ("admin", admin)] {
        let body = key_body_lines(key);
        assert!(!body.is_empty(), "{what} key has no body");
        for line in body {
            assert!(
                !log.contains(&line),
                "a line of the {what} private key is in the log"
            );
        }
    }
    let encoded = k8s_openapi::ByteString(issued.as_bytes().to_vec());
    let encoded = serde_json::to_value(&encoded).unwrap();
    let encoded = encoded.as_str().unwrap();
    assert!(
        !log.contains(&encoded[..40]),
        "the Secret's id_rsa is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_each_allocation_and_release_and_never_key_material() {
    init_test_logging();
    let bed = Testbed::start("ops-log-json", vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let (log, key, user) = logged_run(&bed, "json").await;
    let fingerprint = AdminKey::parse(key.as_bytes()).unwrap().fingerprint();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let about = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .filter(|l| l["taskrun"] == "logged")
            .collect()
    };
    for message in ["allocated", "released"] {
        let found = about(message);
        assert_eq!(found.len(), 1, "one {message} line:\n{log}");
        let line = found[0];
        assert_eq!(line["namespace"], bed.namespace(), "{line}");
        assert_eq!(line["host"], "h1", "{line}");
        assert_eq!(line["user"], user.as_str(), "{line}");
        assert_eq!(line["key_fingerprint"], fingerprint.as_str(), "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
    assert_no_key_material(&log, &key, &bed.host("h1").host.root().private_key);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_name_each_allocation_and_release_and_never_key_material() {
    init_test_logging();
    let bed = Testbed::start("ops-log-text", vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let (log, key, user) = logged_run(&bed, "text").await;
    let fingerprint = AdminKey::parse(key.as_bytes()).unwrap().fingerprint();
    assert!(
        !log.contains('\u{1b}'),
        "terminal colours in a log file:\n{log}"
    );
    for message in ["allocated", "released"] {
        let found: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!(" {message}")) && l.contains("taskrun=logged"))
            .collect();
        assert_eq!(found.len(), 1, "one {message} line:\n{log}");
        for field in [
            format!("namespace={}", bed.namespace()),
            "host=h1".to_owned(),
            format!("user={user}"),
            format!("key_fingerprint={fingerprint}"),
        ] {
            assert!(found[0].contains(&field), "{field} missing: {}", found[0]);
        }
    }
    assert_no_key_material(&log, &key, &bed.host("h1").host.root().private_key);
    bed.cleanup().await;
}

// ----- Events on host-config -----

/// Warning Events on the host-config ConfigMap: (reason, note).
async fn config_events(bed: &Testbed) -> Vec<(String, String)> {
    Api::<Event>::namespaced(bed.client(), bed.namespace())
        .list(&ListParams::default())
        .await
        .expect("Events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ConfigMap")
                    && r.name.as_deref() == Some(HOST_CONFIG_NAME)
            }) && e.type_.as_deref() == Some("Warning")
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_config_events_name_invalid_entries_and_hosts_out_of_service() {
    init_test_logging();
    let specs = vec![
        HostSpec::new("h1", PLATFORM, 1),
        HostSpec::new("h2", PLATFORM, 1),
    ];
    let mut bed = Testbed::start("ops-events", specs).await.expect("test bed");
    let settings = bed.settings();
    let ctl = bed.start_controller(settings).await.expect("controller");

    // A bad entry is reported once, by key; the good hosts keep working.
    let mut data = bed.host_config_data();
    data.insert("host.bad.address".into(), "10.0.0.9".into());
    data.insert("host.bad.platform".into(), PLATFORM.into());
    data.insert("host.bad.user".into(), "root".into());
    data.insert("host.bad.secret".into(), "h1-admin-key".into());
    data.insert("host.bad.concurrency".into(), "lots".into());
    bed.apply_host_config(data.clone())
        .await
        .expect("host-config");
    let invalid = wait_for(WAIT, "an InvalidHostConfig Event", || async {
        config_events(&bed)
            .await
            .into_iter()
            .find(|(reason, _)| reason == "InvalidHostConfig")
    })
    .await
    .expect("Event");
    assert!(invalid.1.contains("host.bad.concurrency"), "{invalid:?}");
    bed.submit("good", PLATFORM).await.expect("TaskRun");
    let access = bed.wait_for_secret("good").await.expect("Secret");
    assert!(bed.ssh(&access, "true").expect("ssh").success());

    // A host that stops answering is taken out of service, with an Event naming it.
    let good_host = wait_assigned(&bed, "good").await;
    let other = if good_host == "h1" { "h2" } else { "h1" };
    bed.host(other).host.stop_sshd().expect("stop sshd");
    bed.submit("unlucky", PLATFORM).await.expect("TaskRun");
    let down = wait_for(WAIT, "a HostUnavailable Event", || async {
        config_events(&bed)
            .await
            .into_iter()
            .find(|(reason, _)| reason == "HostUnavailable")
    })
    .await
    .expect("Event");
    assert!(down.1.contains(&format!("host {other} ")), "{down:?}");
    let host_down =
        format!("multi_platform_controller_host_up{{host=\"{other}\",platform=\"{PLATFORM}\"}} 0");
    wait_until(WAIT, "host_up 0 for the host out of service", || async {
        bed.controller(ctl).metrics.encode().contains(&host_down)
    })
    .await
    .expect("host_up");
    // Reapplying the same bad entry publishes nothing new.
    bed.apply_host_config(data).await.expect("host-config");
    bed.host(other).host.start_sshd().expect("start sshd");
    bed.complete("good", true).await.expect("complete");
    bed.wait_released("good").await.expect("released");
    let unlucky = bed.wait_for_secret("unlucky").await.expect("Secret");
    assert!(bed.ssh(&unlucky, "true").expect("ssh").success());
    bed.complete("unlucky", true).await.expect("complete");
    bed.wait_released("unlucky").await.expect("released");
    let invalid_events = config_events(&bed)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "InvalidHostConfig")
        .count();
    assert_eq!(invalid_events, 1, "the bad entry is reported once");
    bed.cleanup().await;
}
