//! `multi-platform-controller doctor` run as a binary against kube-sim (or the cluster
//! named by `MPC_TEST_KUBECONFIG`) and real sshd hosts on loopback: healthy root and
//! sudo hosts, and broken ones (stopped sshd, hung sshd, wrong pinned host key, missing
//! admin Secret).

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube_sim::testenv::TestEnv;
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, CONFIG_LABEL, HOST_CONFIG_NAME, KNOWN_HOSTS_CONFIG_NAME, SECRET_LABEL,
};
use multi_platform_controller::remote::{fingerprint, parse_host_key};
use serde_json::{Value, json};
use test_hosts::{SUDO_ADMIN_USER, TestHost};

const BIN: &str = env!("CARGO_BIN_EXE_multi-platform-controller");

/// Runs `doctor --namespace <test namespace> args…` with the environment's kubeconfig.
async fn doctor(env: &TestEnv, args: &[&str]) -> Output {
    doctor_with(env.kubeconfig_path(), env.namespace(), args).await
}

async fn doctor_with(kubeconfig: &std::path::Path, namespace: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["doctor", "--namespace", namespace])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("POD_NAMESPACE")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    // A deadline, not a measurement: a hanging doctor fails here instead of hanging CI.
    tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("doctor finishes within 3 minutes")
        .expect("run doctor")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The cells of `host`'s table row (cells are separated by two or more spaces).
fn row(table: &str, host: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{host} ")))
        .unwrap_or_else(|| panic!("no row for {host} in:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The problem lines printed under `host`'s row.
fn problems(table: &str, host: &str) -> Vec<String> {
    table
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{host} ")))
        .skip(1)
        .take_while(|l| l.starts_with("  FAIL ") || l.starts_with("  warn "))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The last five characters of the namespace: keeps host names unique on a shared
/// cluster, where TaskRuns of other tests may carry `assigned-host` labels.
fn suffix(env: &TestEnv) -> String {
    let ns = env.namespace();
    ns[ns.len() - 5..].to_owned()
}

async fn admin_secret(env: &TestEnv, name: &str, private_key: &str) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                SECRET_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "id_rsa".to_owned(),
            ByteString(private_key.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    env.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("create admin Secret");
}

async fn config_map(
    env: &TestEnv,
    name: &str,
    labels: &[(&str, &str)],
    data: BTreeMap<String, String>,
) {
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
}

async fn host_config(env: &TestEnv, data: BTreeMap<String, String>) {
    config_map(env, HOST_CONFIG_NAME, &[(CONFIG_LABEL, "hosts")], data).await;
}

/// A TaskRun holding a slot on `host` (its Task does not exist, so on a real cluster
/// Tekton fails it at once; doctor counts labels, whatever the status).
async fn taskrun(env: &TestEnv, name: &str, host: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client(),
        env.namespace(),
        &kube_sim::crds::taskrun_api_resource(),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "labels": {ASSIGNED_HOST_LABEL: host}},
        "spec": {"taskRef": {"name": "mpc-doctor-test-absent"}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .expect("create TaskRun");
}

/// `host.<name>.*` entries for a test host.
fn entries(
    name: &str,
    host: &TestHost,
    user: &str,
    secret: &str,
    concurrency: u32,
    pin: Option<&str>,
) -> Vec<(String, String)> {
    let mut e = vec![
        (format!("host.{name}.address"), host.address().to_string()),
        (format!("host.{name}.platform"), "linux/arm64".to_owned()),
        (format!("host.{name}.user"), user.to_owned()),
        (format!("host.{name}.secret"), secret.to_owned()),
        (format!("host.{name}.concurrency"), concurrency.to_string()),
    ];
    if let Some(pin) = pin {
        e.push((format!("host.{name}.host-key"), pin.to_owned()));
    }
    e
}

fn host_fingerprint(host: &TestHost) -> String {
    fingerprint(&parse_host_key(host.host_key()).unwrap())
}

async fn start_hosts(n: usize) -> Vec<TestHost> {
    tokio::task::spawn_blocking(move || test_hosts::start_hosts(n))
        .await
        .unwrap()
        .expect("start test hosts")
}

fn doctor_logins(host: &TestHost) -> usize {
    host.sshd_log()
        .lines()
        .filter(|l| l.contains("Accepted publickey for u-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_tells_healthy_hosts_from_broken_ones() {
    let env = TestEnv::start("doctor-broken").await.unwrap();
    env.ensure_tekton_crds().await.unwrap();
    let hosts = start_hosts(4).await;
    let [root_host, sudo_host, stopped, frozen] = &hosts[..] else {
        unreachable!()
    };
    stopped.stop_sshd().unwrap();
    frozen.freeze_sshd().unwrap();
    let s = suffix(&env);
    let (root, sudo, down, badkey, nosecret, hung) = (
        format!("root-{s}"),
        format!("sudo-{s}"),
        format!("down-{s}"),
        format!("badkey-{s}"),
        format!("nosecret-{s}"),
        format!("hung-{s}"),
    );
    let missing_secret = format!("missing-{s}");

    admin_secret(&env, "root-key", &root_host.root().private_key).await;
    admin_secret(&env, "sudo-key", &sudo_host.sudo_admin().private_key).await;
    admin_secret(&env, "down-key", &stopped.root().private_key).await;
    admin_secret(&env, "hung-key", &frozen.root().private_key).await;
    let data: BTreeMap<String, String> = [
        entries(
            &root,
            root_host,
            "root",
            "root-key",
            2,
            Some(root_host.host_key()),
        ),
        entries(&sudo, sudo_host, SUDO_ADMIN_USER, "sudo-key", 3, None),
        entries(
            &down,
            stopped,
            "root",
            "down-key",
            1,
            Some(stopped.host_key()),
        ),
        // The root host again, pinned to another host's key.
        entries(
            &badkey,
            root_host,
            "root",
            "root-key",
            1,
            Some(sudo_host.host_key()),
        ),
        // The root host again, with an admin Secret that does not exist.
        entries(
            &nosecret,
            root_host,
            "root",
            &missing_secret,
            1,
            Some(root_host.host_key()),
        ),
        entries(&hung, frozen, "root", "hung-key", 1, None),
    ]
    .concat()
    .into_iter()
    .collect();
    host_config(&env, data).await;
    let remembered = BTreeMap::from([(sudo.clone(), sudo_host.host_key().to_owned())]);
    config_map(&env, KNOWN_HOSTS_CONFIG_NAME, &[], remembered.clone()).await;
    taskrun(&env, "build-1", &root).await;
    taskrun(&env, "local-1", "localhost").await;

    let out = doctor(&env, &["--timeout", "15"]).await;
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{table}\n{}", stderr(&out));

    let root_row = row(&table, &root);
    assert_eq!(
        root_row[1..3],
        ["linux/arm64", &format!("{}:22", root_host.address())]
    );
    assert!(root_row[3].ends_with(" ms"), "{root_row:?}");
    assert_eq!(root_row[4..], ["pinned", "root", "honoured", "1/2", "ok"]);
    assert!(problems(&table, &root).is_empty(), "{table}");

    let sudo_row = row(&table, &sudo);
    assert_eq!(
        sudo_row[4..],
        ["remembered", "sudo", "honoured", "0/3", "ok"]
    );

    let down_row = row(&table, &down);
    assert_eq!(down_row[3..], ["no", "-", "-", "-", "0/1", "FAIL"]);
    let down_problems = problems(&table, &down);
    assert_eq!(down_problems.len(), 1, "{table}");
    assert!(
        down_problems[0].starts_with(&format!(
            "FAIL reachable: cannot connect to {}:22",
            stopped.address()
        )),
        "{table}"
    );

    let badkey_row = row(&table, &badkey);
    assert_eq!(
        badkey_row[3..],
        ["yes", "MISMATCH", "-", "-", "0/1", "FAIL"]
    );
    let badkey_problems = problems(&table, &badkey);
    assert!(
        badkey_problems[0].contains(&format!(
            "the host presented {}, but host.{badkey}.host-key pins {}",
            host_fingerprint(root_host),
            host_fingerprint(sudo_host)
        )),
        "{table}"
    );

    let nosecret_row = row(&table, &nosecret);
    assert!(nosecret_row[3].ends_with(" ms"), "{nosecret_row:?}");
    assert_eq!(nosecret_row[4..], ["pinned", "no key", "-", "0/1", "FAIL"]);
    assert!(
        problems(&table, &nosecret)[0].starts_with(&format!(
            "FAIL admin-key: Secret {missing_secret} (host.{nosecret}.secret) does not exist"
        )),
        "{table}"
    );

    let hung_row = row(&table, &hung);
    assert_eq!(hung_row[3..], ["timeout", "-", "-", "-", "0/1", "FAIL"]);
    assert!(
        problems(&table, &hung)[0].contains("no SSH answer"),
        "{table}"
    );

    assert!(
        table.contains(&format!(
            "{}  matches host.{root}.host-key",
            host_fingerprint(root_host)
        )),
        "{table}"
    );
    assert!(
        table.ends_with("\n4 of 6 host(s) with problems\n"),
        "{table}"
    );

    // The throwaway users logged in once each (the valid key) and are gone.
    assert_eq!(doctor_logins(root_host), 1, "{}", root_host.sshd_log());
    assert_eq!(doctor_logins(sudo_host), 1, "{}", sudo_host.sshd_log());
    assert_eq!(root_host.build_users().unwrap(), Vec::<String>::new());
    assert_eq!(sudo_host.build_users().unwrap(), Vec::<String>::new());
    // Doctor never writes the remembered keys.
    let known = env
        .api::<ConfigMap>()
        .get(KNOWN_HOSTS_CONFIG_NAME)
        .await
        .unwrap();
    assert_eq!(known.data, Some(remembered));

    frozen.thaw_sshd().unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pool_exits_0_and_json_reports_every_check() {
    let env = TestEnv::start("doctor-healthy").await.unwrap();
    env.ensure_tekton_crds().await.unwrap();
    let hosts = start_hosts(2).await;
    let [root_host, sudo_host] = &hosts[..] else {
        unreachable!()
    };
    let s = suffix(&env);
    let (root, sudo) = (format!("root-{s}"), format!("sudo-{s}"));
    admin_secret(&env, "root-key", &root_host.root().private_key).await;
    admin_secret(&env, "sudo-key", &sudo_host.sudo_admin().private_key).await;
    let mut data: BTreeMap<String, String> = [
        entries(
            &root,
            root_host,
            "root",
            "root-key",
            2,
            Some(root_host.host_key()),
        ),
        entries(&sudo, sudo_host, SUDO_ADMIN_USER, "sudo-key", 1, None),
    ]
    .concat()
    .into_iter()
    .collect();
    data.insert(format!("host.{sudo}.state"), "drain".into());
    data.insert(format!("host.{sudo}.sudo-commands"), "/usr/bin/id".into());
    host_config(&env, data).await;
    taskrun(&env, "build-1", &root).await;
    taskrun(&env, "build-2", &root).await;

    let out = doctor(&env, &["--output", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["healthy"], true);
    assert_eq!(report["namespace"], env.namespace());
    assert_eq!(report["configProblems"], json!([]));
    assert_eq!(report["clusterProblems"], json!([]));
    let by_name = |name: &str| -> Value {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no host {name} in {report:#}"))
    };
    let r = by_name(&root);
    assert_eq!(r["reachable"]["status"], "pass");
    assert!(r["roundTripMs"].as_u64().is_some());
    assert_eq!(r["hostKey"]["text"], "pinned");
    assert_eq!(r["hostKeyFingerprint"], host_fingerprint(root_host));
    assert_eq!(r["expectedHostKey"], host_fingerprint(root_host));
    assert_eq!(r["admin"]["text"], "root");
    assert_eq!(r["expiryTime"]["text"], "honoured");
    assert_eq!(
        (r["slotsUsed"].as_u64(), r["slotsTotal"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["verdict"], "ok");
    let u = by_name(&sudo);
    assert_eq!(u["hostKey"]["text"], "new");
    assert_eq!(u["hostKey"]["status"], "info");
    assert_eq!(u["hostKeyFingerprint"], host_fingerprint(sudo_host));
    assert_eq!(u["expectedHostKey"], Value::Null);
    assert_eq!(u["admin"]["text"], "sudo");
    assert_eq!(u["expiryTime"]["text"], "honoured");
    assert_eq!(u["state"], "drain");
    assert_eq!(u["verdict"], "ok");

    // "Not remembered yet" stays so: doctor never writes the known-hosts ConfigMap.
    assert!(
        env.api::<ConfigMap>()
            .get_opt(KNOWN_HOSTS_CONFIG_NAME)
            .await
            .unwrap()
            .is_none()
    );

    let out = doctor(&env, &["--host", &sudo]).await;
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{table}\n{}", stderr(&out));
    assert_eq!(
        row(&table, &sudo)[4..],
        ["new", "sudo", "honoured", "0/1", "ok (drain)"]
    );
    assert!(!table.contains(&root), "{table}");
    assert!(table.ends_with("\nall 1 host(s) ok\n"), "{table}");

    assert_eq!(root_host.build_users().unwrap(), Vec::<String>::new());
    assert_eq!(sudo_host.build_users().unwrap(), Vec::<String>::new());
    assert!(
        !sudo_host
            .shell("ls /etc/sudoers.d")
            .unwrap()
            .stdout
            .contains("u-"),
        "the throwaway user's sudoers rule is removed"
    );
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlabelled_or_invalid_host_config_is_reported() {
    let env = TestEnv::start("doctor-config").await.unwrap();
    env.ensure_tekton_crds().await.unwrap();
    let bad = format!("bad-{}", suffix(&env));
    let data = BTreeMap::from([
        (format!("host.{bad}.address"), "127.0.0.1".to_owned()),
        (format!("host.{bad}.platform"), "linux/arm64".to_owned()),
        (format!("host.{bad}.user"), "root".to_owned()),
        (format!("host.{bad}.secret"), "root-key".to_owned()),
    ]);
    config_map(&env, HOST_CONFIG_NAME, &[], data).await;

    let out = doctor(&env, &[]).await;
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{table}\n{}", stderr(&out));
    assert!(
        table.contains(&format!(
            "configuration problems:\n  FAIL config: ConfigMap host-config in namespace {ns} \
             lacks the label {CONFIG_LABEL}, so the controller ignores it; label it: kubectl \
             label configmap host-config -n {ns} {CONFIG_LABEL}=hosts",
            ns = env.namespace()
        )),
        "{table}"
    );
    assert_eq!(
        row(&table, &bad)[1..],
        ["linux/arm64", "-", "-", "-", "-", "-", "-", "excluded"]
    );
    assert!(
        problems(&table, &bad)[0].starts_with(&format!(
            "FAIL host.{bad}.concurrency: missing; expected an integer from 1 to 8"
        )),
        "{table}"
    );
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_cannot_run_without_host_config_or_api_server() {
    let env = TestEnv::start("doctor-fatal").await.unwrap();
    env.ensure_tekton_crds().await.unwrap();

    let out = doctor(&env, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains(&format!(
            "no ConfigMap host-config in namespace {}",
            env.namespace()
        )),
        "{}",
        stderr(&out)
    );

    host_config(&env, BTreeMap::new()).await;
    let out = doctor(&env, &["--host", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("host-config has no host nope; its hosts are: (none)"),
        "{}",
        stderr(&out)
    );
    let out = doctor(&env, &["--output", "yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "a usage error");
    // An empty but labelled host-config is healthy: nothing to check.
    let out = doctor(&env, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // An API server that does not answer: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: http://127.0.0.1:{port}
contexts:
- name: dead
  context:
    cluster: dead
    user: nobody
current-context: dead
users:
- name: nobody
  user: {{}}
"
        ),
    )
    .unwrap();
    let out = doctor_with(
        &kubeconfig,
        "multi-platform-controller",
        &["--timeout", "5"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the API server"),
        "{}",
        stderr(&out)
    );
    env.cleanup().await.unwrap();
}
