//! The README's first command must keep working: run the demo binary (the default, and
//! `--cloud` on the local EC2) and check what it prints, that it never prints key
//! material, and its exit status — also when a step fails.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The demo's own step deadlines are shorter; this only stops a hung run.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs the demo binary with `args`, killing it after [`RUN_LIMIT`].
fn run_demo(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("demo status") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("the demo ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread of its own, so the child never blocks on it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut text).expect("read the demo's output");
        }
        text
    })
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The base64 of `openssh-key-v1`, which opens the body of every OpenSSH private key.
const PRIVATE_KEY_BODY: &str = "b3BlbnNzaC1rZXktdjE";

/// Checks what every successful run prints: each step numbered, `uname -m` over ssh
/// answering this machine's architecture, the Secret's key shown only as a fingerprint,
/// the Released Event, no key material anywhere, no `--keep` hint.
fn assert_served_over_ssh(out: &Output, steps: usize) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in 1..=steps {
        assert!(
            stdout.contains(&format!("[{step}/{steps}] ")),
            "step {step} missing:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&format!("[{}/{steps}] ", steps + 1)),
        "{stdout}"
    );
    let machine = Command::new("uname").arg("-m").output().expect("uname -m");
    let machine = String::from_utf8_lossy(&machine.stdout).trim().to_owned();
    let ssh_line = stdout
        .lines()
        .position(|l| l.trim_start().starts_with("$ ssh -i "))
        .expect("the ssh command is shown");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[ssh_line].ends_with(" uname -m"),
        "{}",
        lines[ssh_line]
    );
    assert_eq!(
        lines[ssh_line + 1].trim(),
        machine,
        "uname -m over ssh:\n{stdout}"
    );
    assert!(stdout.contains("  host:        u-"), "{stdout}");
    assert!(
        stdout.contains("id_rsa:      -----BEGIN OPENSSH PRIVATE KEY----- … (ssh-ed25519 SHA256:"),
        "{stdout}"
    );
    assert!(stdout.contains("Released ("), "{stdout}");
    assert!(stdout.contains("demo finished in"), "{stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    assert!(
        !stdout.contains(PRIVATE_KEY_BODY) && !stderr.contains(PRIVATE_KEY_BODY),
        "the demo printed a private key"
    );
    assert!(
        !stdout.contains("export KUBECONFIG"),
        "the kubectl hint is only for --keep"
    );
    stdout
}

#[test]
fn the_demo_serves_a_taskrun_over_ssh_and_leaves_nothing_behind() {
    let out = run_demo(&[]);
    let stdout = assert_served_over_ssh(&out, 10);
    assert!(stdout.contains(": gone from build-host-1"), "{stdout}");
}

/// The value after `label` on the first line that has it, up to the next space or comma.
fn value_after<'a>(stdout: &'a str, label: &str) -> &'a str {
    let at = stdout
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not shown:\n{stdout}"));
    stdout[at + label.len()..]
        .split([' ', ',', '\n', ';'])
        .next()
        .unwrap_or_default()
}

/// The rest of the first line that has `label`, after it.
fn value_line<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{label:?} not shown:\n{stdout}"))
}

#[test]
fn the_cloud_demo_launches_a_vm_serves_the_taskrun_on_it_and_terminates_it() {
    let out = run_demo(&["--cloud"]);
    let stdout = assert_served_over_ssh(&out, 12);
    // The launch, as the Go controller sends it, plus a client token.
    let instance = value_after(&stdout, "; instance ");
    assert!(instance.starts_with("i-"), "{stdout}");
    for shown in [
        "InstanceType m6",
        "MinCount 1 MaxCount 1",
        "root volume /dev/sda1: 40 GB gp3",
        "InstanceInitiatedShutdownBehavior terminate",
        "MultiPlatformManaged=true",
        "multi-platform-instance=demo-cloud",
        "Name=multi-platform-builder-sample-build",
        ":sample-build",
        "ClientToken mpc-",
        "build.appstudio.redhat.com/cloud-dynamic-platform=linux-",
    ] {
        assert!(stdout.contains(shown), "{shown:?} not shown:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "build.appstudio.redhat.com/assigned-host={instance}"
        )),
        "{stdout}"
    );
    // The VM: its address, its sshd, the build user on it.
    let address = value_after(&stdout, "sshd listening on ");
    assert!(address.starts_with("127."), "{stdout}");
    let login = value_after(&stdout, "  host:        ");
    assert!(
        login.starts_with("u-")
            && login.ends_with(&format!("@{}", address.trim_end_matches(":22"))),
        "the Secret names the VM: {login} vs {address}\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("exists on the VM {instance}")),
        "{stdout}"
    );
    // Termination, and nothing left.
    assert!(
        stdout.contains(&format!("TerminateInstances InstanceId.1={instance}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("EC2 says: {instance} terminated")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "finalizer gone; assigned-host, cloud-dynamic-platform, cloud-instance-id and \
             cloud-address gone"
        ),
        "{stdout}"
    );
    let record = value_line(&stdout, "kept as a record: ");
    for mark in [
        "assigned-host=",
        "cloud-dynamic-platform=",
        "cloud-instance-id=",
        "cloud-address=",
    ] {
        assert!(!record.contains(mark), "{mark} left: {record}");
    }
    assert!(stdout.contains("local EC2 stopped"), "{stdout}");
}

#[test]
fn a_failing_step_is_named_and_everything_is_still_cleaned_up() {
    // No host serves s390x, so the controller answers with an error Secret at step 6.
    let out = run_demo(&["--platform", "linux/s390x"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("demo FAILED at step 6/10")
            && stderr.contains("error Secret")
            && stderr.contains("linux/s390x"),
        "{stderr}"
    );
    assert!(
        stdout.contains("cleaning up") && stdout.contains("build host stopped"),
        "{stdout}"
    );
    assert!(!stdout.contains("[7/10]"), "{stdout}");
}

#[test]
fn a_cloud_demo_whose_taskrun_gets_no_vm_fails_at_the_launch_and_cleans_up() {
    // The dynamic platform is this machine's; s390x is no platform, so no launch.
    let out = run_demo(&["--cloud", "--platform", "linux/s390x"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("demo FAILED at step 6/12")
            && stderr.contains("error Secret instead of launching")
            && stderr.contains("linux/s390x"),
        "{stderr}"
    );
    assert!(
        stdout.contains("cleaning up") && stdout.contains("local EC2 stopped"),
        "{stdout}"
    );
    assert!(!stdout.contains("[7/12]"), "{stdout}");
    assert!(
        !stdout.contains(PRIVATE_KEY_BODY) && !stderr.contains(PRIVATE_KEY_BODY),
        "the demo printed a private key"
    );
}
