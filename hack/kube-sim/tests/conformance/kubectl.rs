//! The real kubectl against kube-sim (in-process through the test environment, and the
//! `kube-sim` binary) with its default client validation (no `--validate=false`): apply
//! the upstream TaskRun CRD, then create, list, explain, patch, apply and delete a TaskRun;
//! kubectl's server-side field validation refuses unknown fields.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube_sim::testenv::skip_on_real_cluster;

use crate::common::*;

/// kubectl's path; a missing kubectl fails the test with what to install.
fn kubectl_path() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "kubectl not found on PATH: install it (Debian: `apt-get install kubernetes-client`; hack/test.sh does this)"
        ),
    }
}

/// kubectl's client minor version (Debian 12's kubernetes-client is 1.20, newer images 1.3x).
fn kubectl_minor() -> u32 {
    let out = Command::new(kubectl_path())
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("kubectl version runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.pointer("/clientVersion/minor")
        .and_then(|m| m.as_str())
        .map(|m| m.trim_end_matches('+'))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Runs kubectl with a private discovery cache; returns (success, stdout, stderr).
fn run_kubectl(
    kubeconfig: &Path,
    cache: &Path,
    namespace: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--namespace")
        .arg(namespace)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl starts");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kubectl; returns stdout, panicking with stderr on failure.
fn kubectl(
    kubeconfig: &Path,
    cache: &Path,
    namespace: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let (ok, stdout, stderr) = run_kubectl(kubeconfig, cache, namespace, args, stdin);
    assert!(ok, "kubectl {args:?} failed: {stdout}{stderr}");
    stdout
}

const TASKRUN: &str = r#"
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: kubectl-run
  labels:
    origin: kubectl
spec:
  params:
    - name: PLATFORM
      value: linux/arm64
"#;

/// The upstream TaskRun CRD without its webhook conversion, written to `dir`.
fn crd_file(dir: &Path) -> PathBuf {
    let crds = kube_sim::crds::tekton_crds().unwrap_or_else(|e| panic!("{e}"));
    let taskrun = crds
        .iter()
        .find(|c| c["metadata"]["name"] == kube_sim::crds::TASKRUN_CRD_NAME)
        .expect("the TaskRun CRD");
    let path = dir.join("taskrun-crd.json");
    std::fs::write(&path, serde_json::to_vec(taskrun).unwrap()).unwrap();
    path
}

/// The TaskRun round trip every kubectl test does, with kubectl's default validation.
fn taskrun_round_trip(kubeconfig: &Path, namespace: &str) {
    let cache = tempfile::tempdir().unwrap();
    let k = |args: &[&str], stdin: Option<&str>| {
        kubectl(kubeconfig, cache.path(), namespace, args, stdin)
    };
    k(&["create", "-f", "-"], Some(TASKRUN));
    let table = k(&["get", "taskruns"], None);
    assert!(
        table.contains("kubectl-run") && table.contains("SUCCEEDED"),
        "{table}"
    );
    let short = k(&["get", "tr", "-l", "origin=kubectl", "-o", "name"], None);
    assert_eq!(short.trim(), "taskrun.tekton.dev/kubectl-run");
    let explained = k(&["explain", "taskrun.spec"], None);
    assert!(
        explained.contains("FIELDS")
            && explained.contains("params")
            && explained.contains("taskRef"),
        "{explained}"
    );
    // Server-side field validation: kubectl asks for Strict, the server names the field.
    let typo = TASKRUN
        .replace("kubectl-run", "kubectl-typo")
        .replace("  params:", "  parms:");
    let (ok, _, stderr) = run_kubectl(
        kubeconfig,
        cache.path(),
        namespace,
        &["create", "-f", "-"],
        Some(&typo),
    );
    assert!(!ok, "an unknown field is refused");
    assert!(
        stderr.contains("strict decoding error")
            && stderr.contains(r#"unknown field "spec.parms""#),
        "{stderr}"
    );
    k(
        &[
            "patch",
            "tr",
            "kubectl-run",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
        ],
        None,
    );
    let labels = k(
        &[
            "get",
            "tr",
            "kubectl-run",
            "-o",
            "jsonpath={.metadata.labels.patched}",
        ],
        None,
    );
    assert_eq!(labels, "yes");
    if kubectl_minor() >= 24 {
        k(
            &[
                "patch",
                "tr",
                "kubectl-run",
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                r#"{"status":{"podName":"kubectl-run-pod","conditions":[{"type":"Succeeded","status":"True","reason":"Done"}]}}"#,
            ],
            None,
        );
        let table = k(&["get", "tr", "kubectl-run"], None);
        assert!(table.contains("True") && table.contains("Done"), "{table}");
    } else {
        eprintln!("kubectl older than 1.24 has no --subresource: the status patch is not checked");
    }
    k(&["apply", "-f", "-"], Some(TASKRUN));
    k(&["delete", "tr", "kubectl-run"], None);
    let after = k(&["get", "tr", "-o", "name"], None);
    assert!(!after.contains("kubectl-run"), "{after}");
}

#[tokio::test]
async fn kubectl_drives_taskruns_through_the_test_environment() {
    let env = env("kubectl-env").await;
    let cache = tempfile::tempdir().unwrap();
    if env.is_kube_sim() {
        // kubectl blocks; the in-process server needs this runtime to answer it.
        let (path, ns, dir) = (
            env.kubeconfig_path().to_path_buf(),
            env.namespace().to_string(),
            cache.path().to_path_buf(),
        );
        tokio::task::spawn_blocking(move || {
            let file = crd_file(&dir);
            kubectl(
                &path,
                &dir,
                &ns,
                &["apply", "-f", file.to_str().unwrap()],
                None,
            )
        })
        .await
        .unwrap();
    }
    env.ensure_tekton_crds().await.unwrap();
    let (path, ns) = (
        env.kubeconfig_path().to_path_buf(),
        env.namespace().to_string(),
    );
    tokio::task::spawn_blocking(move || taskrun_round_trip(&path, &ns))
        .await
        .unwrap();
    // Built-in objects through kubectl: apply (client-side and server-side), get, delete.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: via-kubectl\ndata:\n  a: \"1\"\n";
    let (path, ns) = (
        env.kubeconfig_path().to_path_buf(),
        env.namespace().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&path, cache.path(), &ns, args, stdin);
        k(&["apply", "-f", "-"], Some(cm));
        k(&["apply", "-f", "-"], Some(&cm.replace("\"1\"", "\"2\"")));
        let explained = k(&["explain", "configmap.data"], None);
        assert!(explained.contains("data"), "{explained}");
        assert_eq!(
            k(
                &["get", "cm", "via-kubectl", "-o", "jsonpath={.data.a}"],
                None
            ),
            "2"
        );
        k(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "ssa-test",
                "-f",
                "-",
            ],
            Some(
                &cm.replace("\"1\"", "\"3\"")
                    .replace("via-kubectl", "via-ssa"),
            ),
        );
        assert_eq!(
            k(&["get", "cm", "via-ssa", "-o", "jsonpath={.data.a}"], None),
            "3"
        );
        k(&["delete", "cm", "via-kubectl", "via-ssa"], None);
        // Generator commands send protobuf bodies for built-in types.
        k(
            &["create", "configmap", "generated", "--from-literal=a=b"],
            None,
        );
        k(
            &[
                "create",
                "secret",
                "generic",
                "generated",
                "--from-literal=k=v",
            ],
            None,
        );
        assert_eq!(
            k(
                &["get", "cm", "generated", "-o", "jsonpath={.data.a}"],
                None
            ),
            "b"
        );
        assert_eq!(
            k(
                &["get", "secret", "generated", "-o", "jsonpath={.data.k}"],
                None
            ),
            "dg=="
        );
        k(&["delete", "cm/generated", "secret/generated"], None);
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[test]
fn kubectl_drives_taskruns_against_the_kube_sim_binary() {
    if std::env::var_os(kube_sim::testenv::REAL_CLUSTER_ENV).is_some_and(|v| !v.is_empty()) {
        skip_on_real_cluster(
            "kubectl against the binary",
            "it starts the kube-sim binary",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the kube-sim binary starts");
    // The binary prints the kubeconfig path once it serves.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("export KUBECONFIG=").map(str::to_string))
        .expect("the binary prints an export KUBECONFIG line");
    assert_eq!(Path::new(&printed), kubeconfig);
    let cache = tempfile::tempdir().unwrap();
    let file = crd_file(dir.path());
    kubectl(
        &kubeconfig,
        cache.path(),
        "default",
        &["apply", "-f", file.to_str().unwrap()],
        None,
    );
    let crds = kubectl(
        &kubeconfig,
        cache.path(),
        "default",
        &["get", "crd", "-o", "name"],
        None,
    );
    assert!(crds.contains("taskruns.tekton.dev"), "{crds}");
    taskrun_round_trip(&kubeconfig, "default");
    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(&pid)
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "kube-sim exits 0 on SIGTERM, got {exit:?}");
}
