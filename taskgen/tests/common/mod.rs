//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The upstream fixture folder: `$TASKGEN_FIXTURES`, else `../shared/fixtures/taskgen`
/// beside the workspace (unmodified upstream files, provenance in its README.txt). They
/// are not copied into this repository; every development machine and CI has them there.
/// Panics with the path it looked at when the folder is missing.
pub fn fixtures_dir() -> PathBuf {
    let dir = match std::env::var_os("TASKGEN_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/fixtures/taskgen"),
    };
    assert!(
        dir.join("README.txt").is_file(),
        "the upstream taskgen fixtures are missing: expected them in {} (the shared \
         fixtures beside the repository, ../shared/fixtures/taskgen), or set TASKGEN_FIXTURES \
         to a copy",
        dir.display()
    );
    dir
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Parses YAML into a generic tree for semantic comparison.
pub fn parse_yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

/// The `script` of the step named `name`, from a parsed Task.
pub fn step_script(task: &serde_json::Value, name: &str) -> Option<String> {
    task["spec"]["steps"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?
        .get("script")?
        .as_str()
        .map(str::to_owned)
}

/// Runs `bash -n` on a script; panics with bash's message when it does not parse.
pub fn assert_bash_syntax(script: &str, what: &str) {
    let out = run_with_stdin(Command::new("bash").arg("-n"), script);
    assert!(
        out.status.success(),
        "{what}: bash -n failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs shellcheck (bash dialect) excluding `excluded` codes, on top of the
/// `# shellcheck disable=…` lines inside the script itself.
pub fn assert_shellcheck(script: &str, excluded: &[&str], what: &str) {
    let mut cmd = Command::new("shellcheck");
    cmd.args(["--shell=bash", "--format=gcc"]);
    if !excluded.is_empty() {
        cmd.arg(format!("--exclude={}", excluded.join(",")));
    }
    cmd.arg("-");
    let out = run_with_stdin(&mut cmd, script);
    assert!(
        out.status.success(),
        "{what}: shellcheck reported:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (hack/test.sh installs it): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}
