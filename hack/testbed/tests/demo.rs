//! The README's first command must keep working: run the demo binary and check what it
//! prints, that it never prints key material, and its exit status — also when a step
//! fails.

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

#[test]
fn the_demo_serves_a_taskrun_over_ssh_and_leaves_nothing_behind() {
    let out = run_demo(&[]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in 1..=10 {
        assert!(
            stdout.contains(&format!("[{step}/10] ")),
            "step {step} missing:\n{stdout}"
        );
    }
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
    assert!(stdout.contains(": gone from build-host-1"), "{stdout}");
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
