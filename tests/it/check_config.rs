//! `multi-platform-controller check-config` run as a binary, on the shipped example
//! and on broken manifests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_multi-platform-controller");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/host-config.yaml")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run multi-platform-controller")
}

fn run_on(yaml: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("host-config.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut args = vec!["check-config", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A valid manifest with two arm64 hosts, to break in the tests.
const BASE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: host-config
  labels:
    build.appstudio.redhat.com/multi-platform-config: hosts
data:
  local-platforms: "linux/x86_64,"
  host.arm-1.address: "10.0.0.1"
  host.arm-1.platform: "linux/arm64"
  host.arm-1.user: "root"
  host.arm-1.secret: "ssh-key"
  host.arm-1.concurrency: "4"
  host.arm-2.address: "10.0.0.2"
  host.arm-2.platform: "linux/arm64"
  host.arm-2.user: "root"
  host.arm-2.secret: "ssh-key"
  host.arm-2.concurrency: "2"
"#;

#[test]
fn the_shipped_example_is_clean() {
    let out = run(&["check-config", example().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("linux/arm64: static pool, 2 host(s), 8 slot(s) on active hosts"),
        "{text}"
    );
    assert!(
        text.contains("host s390x-1: root@s390x-1.build.example.com port 22, 2 slot(s), drain"),
        "{text}"
    );
    assert!(text.contains("linux/x86_64: local"), "{text}");
    assert!(
        text.contains("0 error(s), 0 warning(s), 0 unsupported"),
        "{text}"
    );
}

#[test]
fn a_valid_manifest_from_stdin() {
    let mut child = Command::new(BIN)
        .args(["check-config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(BASE.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .starts_with("<stdin>: 2 platform(s), 2 pool host(s) with 6 slot(s), 0 problem(s)")
    );
}

#[test]
fn a_bad_host_is_reported_and_the_others_still_listed() {
    let yaml = BASE
        .replace("  host.arm-2.concurrency: \"2\"\n", "")
        .replace("host.arm-1.user: \"root\"", "host.arm-1.user: \"root\"\n  host.arm-1.host-key: \"ssh-ed25519\"\n  host.arm-1.concurency: \"3\"");
    let out = run_on(&yaml, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "error       host.arm-1.host-key: has no base64 key data after \"ssh-ed25519\"",
        "warning     host.arm-1.concurency: unknown host field",
        "error       host.arm-2.concurrency: missing; expected an integer from 1 to 8",
        "host arm-1: excluded",
        "host arm-2: excluded",
        "2 error(s), 1 warning(s), 0 unsupported",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let only_arm2 = BASE.replace("  host.arm-2.concurrency: \"2\"\n", "");
    let text = stdout(&run_on(&only_arm2, &[]));
    assert!(
        text.contains("host arm-1: root@10.0.0.1 port 22, 4 slot(s), active"),
        "{text}"
    );
    assert!(text.contains("host arm-2: excluded"), "{text}");
}

#[test]
fn unquoted_numbers_are_a_problem() {
    let out = run_on(&BASE.replace("\"4\"", "4"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("data.host.arm-1.concurrency: the value 4 is a YAML number"));
}

/// An AWS platform with one VM per TaskRun, fully set.
const AWS: &str = "  dynamic-platforms: \"linux/amd64\"\n  instance-tag: prod-amd64\n  \
     dynamic.linux-amd64.type: aws\n  dynamic.linux-amd64.max-instances: \"500\"\n  \
     dynamic.linux-amd64.ssh-secret: aws-ssh\n  dynamic.linux-amd64.region: us-east-1\n  \
     dynamic.linux-amd64.ami: ami-1\n  dynamic.linux-amd64.instance-type: m7a.large\n  \
     dynamic.linux-amd64.key-name: kp\n  dynamic.linux-amd64.aws-secret: aws-account\n";

#[test]
fn cloud_platforms_are_checked_and_explained() {
    let out = run_on(&format!("{BASE}{AWS}"), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "linux/amd64: dynamic (valid): one m7a.large instance per TaskRun in us-east-1, \
             at most 500"
        ),
        "{text}"
    );
    // Where the Go controller falls back silently, check-config says so.
    let fallback = format!(
        "{BASE}{AWS}  dynamic.linux-amd64.disk: big\n  dynamic.linux-amd64.spot-price: \"0.1\"\n"
    );
    let text = stdout(&run_on(&fallback, &[]));
    assert!(
        text.contains("disk: \\\"big\\\" is not a whole number")
            || text.contains("is not a whole number"),
        "{text}"
    );
    assert!(text.contains("default of 40 GB"), "{text}");
    assert!(text.contains("spot-price: ignored"), "{text}");
    // A missing setting is an error.
    let broken = format!("{BASE}{AWS}").replace("  dynamic.linux-amd64.ami: ami-1\n", "");
    let out = run_on(&broken, &["--allow-unsupported"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("dynamic.linux-amd64.ami: missing"));
}

/// The settings of a dynamic platform `linux/ppc64le` apart from its list key.
fn ppc_settings(extra: &str) -> String {
    format!(
        "  dynamic.linux-ppc64le.type: aws\n  dynamic.linux-ppc64le.max-instances: \"5\"\n  \
         dynamic.linux-ppc64le.ssh-secret: k\n  dynamic.linux-ppc64le.region: us-east-1\n  \
         dynamic.linux-ppc64le.ami: ami-1\n  dynamic.linux-ppc64le.instance-type: m7g.large\n  \
         dynamic.linux-ppc64le.key-name: kp\n  dynamic.linux-ppc64le.aws-secret: aws-account\n{extra}"
    )
}

#[test]
fn dynamic_pools_and_windows_and_macos_vms_are_explained() {
    let pool = format!(
        "{BASE}  dynamic-pool-platforms: \"linux/ppc64le\"\n{}",
        ppc_settings(
            "  dynamic.linux-ppc64le.concurrency: \"2\"\n  dynamic.linux-ppc64le.max-age: \"60\"\n"
        )
    );
    let out = run_on(&pool, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "linux/ppc64le: dynamic-pool (valid): a pool of up to 5 m7g.large instance(s) in \
             us-east-1, 2 TaskRun(s) each"
        ),
        "{text}"
    );
    assert!(text.contains("older than 60 minute(s)"), "{text}");
    // A pool without its pool keys is an error naming them.
    let bare = format!(
        "{BASE}  dynamic-pool-platforms: \"linux/ppc64le\"\n{}",
        ppc_settings("")
    );
    let out = run_on(&bare, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("dynamic.linux-ppc64le.concurrency"),
        "{}",
        stdout(&out)
    );

    for (platform, login) in [
        ("windows/amd64", "logs in as Administrator (PowerShell)"),
        ("macos/arm64", "logs in as ec2-user"),
    ] {
        let label = platform.replace('/', "-");
        let yaml = format!(
            "{BASE}  dynamic-platforms: \"{platform}\"\n{}",
            ppc_settings("").replace("linux-ppc64le", &label)
        );
        let out = run_on(&yaml, &[]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!("{platform}: dynamic (valid): one")),
            "{text}"
        );
        assert!(text.contains(login), "{text}");
        assert!(text.contains("konflux-builder"), "{text}");
    }
}

#[test]
fn unsupported_cloud_platforms_fail_unless_allowed() {
    // A Windows pool: its VMs' builder account serves one TaskRun.
    let windows_pool = format!(
        "{BASE}  dynamic-pool-platforms: \"windows/amd64\"\n{}",
        ppc_settings(
            "  dynamic.linux-ppc64le.concurrency: \"2\"\n  dynamic.linux-ppc64le.max-age: \"60\"\n"
        )
        .replace("linux-ppc64le", "windows-amd64")
    );
    let out = run_on(&windows_pool, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("windows/amd64: dynamic-pool (valid; Windows and macOS VMs cannot be shared"),
        "{text}"
    );
    assert_eq!(
        run_on(&windows_pool, &["--allow-unsupported"])
            .status
            .code(),
        Some(0)
    );
    // IBM Cloud keeps its clear "not supported".
    let ibm = format!(
        "{BASE}  dynamic-platforms: \"linux/s390x\"\n  dynamic.linux-s390x.type: ibmz\n  \
         dynamic.linux-s390x.max-instances: \"5\"\n  dynamic.linux-s390x.ssh-secret: ibm-s390x-ssh\n"
    );
    let out = run_on(&ibm, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("IBM Cloud VMs (type: ibmz, ibmp) are not supported"),
        "{text}"
    );
}

#[test]
fn the_manifest_itself_is_checked() {
    let yaml = BASE.replace("name: host-config", "name: hosts");
    let out = run_on(&yaml, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("metadata.name: is \"hosts\""));
}

#[test]
fn unreadable_input_exits_3_with_a_message_on_stderr() {
    let out = run_on("data: [unclosed", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("not valid YAML"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let out = run_on("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("not a ConfigMap"));

    let out = run(&["check-config", "/nonexistent/host-config.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("cannot read"));
}

#[test]
fn usage_errors_are_claps() {
    assert_eq!(run(&["check-config"]).status.code(), Some(2));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn build_user_limits_are_shown_and_bad_ones_reported() {
    let yaml = BASE.replace(
        "host.arm-1.user: \"root\"",
        "host.arm-1.user: \"root\"\n  host.arm-1.memory-max: \"32G\"\n  host.arm-1.cpu-quota: \"50%\"\n  host.arm-2.max-processes: \"lots\"\n  max-processes: \"2048\"",
    );
    let out = run_on(&yaml, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "build-user limits: max-processes 2048, memory-max 90% of the host, cpu-quota 90% of the host",
        "host arm-1: root@10.0.0.1 port 22, 4 slot(s), active, build-user limits: max-processes 2048, memory-max 32G, cpu-quota 50% of the host",
        "error       host.arm-2.max-processes: \"lots\" is not a whole number; expected the most processes",
        "host arm-2: excluded",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
