//! The `taskgen` binary: flags, exit codes, `-`, `--check`.

use std::io::{ErrorKind, Write};
use std::process::{Command, Output, Stdio};

const INPUT: &str = "apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: buildah
spec:
  stepTemplate:
    volumeMounts:
    - name: shared
      mountPath: /shared
  steps:
  - name: build
    image: quay.io/example/builder:1
    script: make
  volumes:
  - name: shared
    emptyDir: {}
";

fn taskgen(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskgen"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run taskgen");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // taskgen may reject its flags and exit before it reads stdin; that is its answer,
    // not a failure of the test's plumbing.
    if let Err(e) = written {
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn missing_flags_exit_1_with_the_go_message() {
    for args in [
        &[][..],
        &["--buildah-task", "x.yaml"][..],
        &["--remote-task", "y.yaml"][..],
    ] {
        let out = taskgen(args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("Must specify both buildah-task and remote-task params")
        );
    }
}

#[test]
fn dash_reads_stdin_and_writes_stdout() {
    let out = taskgen(&["--buildah-task", "-", "--remote-task", "-"], INPUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = taskgen::generate(INPUT, "-", &taskgen::Options::default()).unwrap();
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn writes_the_file_creating_directories_and_check_compares_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("buildah.yaml");
    std::fs::write(&input, INPUT).unwrap();
    let output = dir.path().join("remote/buildah-remote/buildah-remote.yaml");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());

    let check = taskgen(&["--buildah-task", i, "--remote-task", o, "--check"], "");
    assert_eq!(
        check.status.code(),
        Some(1),
        "missing output must fail the check"
    );

    let out = taskgen(&["--buildah-task", i, "--remote-task", o], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.contains("name: buildah-remote"));

    let check = taskgen(&["--buildah-task", i, "--remote-task", o, "--check"], "");
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(check.stdout.is_empty());

    std::fs::write(
        &output,
        written.replace("name: buildah-remote", "name: edited"),
    )
    .unwrap();
    let check = taskgen(&["--buildah-task", i, "--remote-task", o, "--check"], "");
    assert_eq!(check.status.code(), Some(1));
    let diff = text(&check.stdout);
    assert!(
        diff.contains("-  name: edited") && diff.contains("+  name: buildah-remote"),
        "{diff}"
    );
    assert!(text(&check.stderr).contains("regenerate"));
    // --check never writes.
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("name: edited")
    );
}

#[test]
fn errors_exit_1_with_a_message() {
    let out = taskgen(
        &[
            "--buildah-task",
            "/nonexistent/task.yaml",
            "--remote-task",
            "-",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/task.yaml"));

    let out = taskgen(
        &[
            "--buildah-task",
            "-",
            "--remote-task",
            "-",
            "--task-version",
            "latest",
        ],
        INPUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--task-version \"latest\""));

    let out = taskgen(&["--buildah-task", "-", "--remote-task", "-"], "kind: [");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a valid Tekton Task"));

    let out = taskgen(
        &[
            "--buildah-task",
            "-",
            "--remote-task",
            "-",
            "--step",
            "nope",
        ],
        INPUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no step with that name"));
}

#[test]
fn task_version_and_step_flags_reach_the_generator() {
    let out = taskgen(
        &[
            "--buildah-task",
            "-",
            "--remote-task",
            "-",
            "--task-version",
            "0.1",
            "--step",
            "build",
        ],
        INPUT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("creationTimestamp: null"));
    assert!(!yaml.contains("IMAGE_APPEND_PLATFORM"));
}
