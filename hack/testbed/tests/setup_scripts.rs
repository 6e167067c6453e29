//! The README's two commands share `hack/lib/setup.sh`: it must install exactly the
//! packages of the missing files (once each, without asking) and nothing when all are
//! there, and the scripts must pass shellcheck.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (this crate lives in `hack/testbed`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `script` in bash at the repository root with `path_front` first on PATH.
fn bash(script: &str, path_front: &Path) -> Output {
    let path = format!(
        "{}:{}",
        path_front.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("/bin/bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(repo())
        .env("PATH", path)
        .output()
        .expect("run bash")
}

/// A fake `apt-get` (and `sudo`, for non-root runs) that appends its arguments to
/// `calls` instead of installing anything.
fn fake_apt(dir: &Path) -> PathBuf {
    let calls = dir.join("calls");
    for tool in ["apt-get", "sudo"] {
        let body = if tool == "sudo" {
            "#!/bin/sh\nexec \"$@\"\n".to_owned()
        } else {
            format!("#!/bin/sh\necho \"apt-get $*\" >> '{}'\n", calls.display())
        };
        let file = dir.join(tool);
        std::fs::write(&file, body).expect("write fake tool");
        let status = Command::new("chmod")
            .args(["+x"])
            .arg(&file)
            .status()
            .expect("chmod");
        assert!(status.success());
    }
    calls
}

#[test]
fn install_missing_installs_each_missing_package_once_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let calls = fake_apt(dir.path());
    let out = bash(
        "source hack/lib/setup.sh; install_missing /bin/sh=dash /nonexistent/a=pkg-b /nonexistent/b=pkg-a /nonexistent/c=pkg-b",
        dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let recorded = std::fs::read_to_string(&calls).expect("apt-get was called");
    let lines: Vec<&str> = recorded.lines().collect();
    assert_eq!(lines.len(), 2, "{recorded}");
    assert_eq!(lines[0], "apt-get update -qq");
    assert_eq!(
        lines[1],
        "apt-get install -y -qq --no-install-recommends pkg-a pkg-b"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("installing system packages: pkg-a pkg-b"),
        "{stdout}"
    );
}

#[test]
fn install_missing_does_nothing_when_every_file_exists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let calls = fake_apt(dir.path());
    let out = bash(
        "source hack/lib/setup.sh; install_missing /bin/sh=dash /usr/bin/env=coreutils",
        dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!calls.exists(), "apt-get must not run");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn require_cargo_stops_with_what_to_do_when_cargo_is_missing() {
    let out = Command::new("/bin/bash")
        .args([
            "-c",
            "source hack/lib/setup.sh; require_cargo demo; echo not reached",
        ])
        .current_dir(repo())
        .env("PATH", "/nonexistent")
        .output()
        .expect("run bash");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("demo: cargo not found; install Rust"),
        "{stderr}"
    );
}

#[test]
fn hack_scripts_pass_shellcheck() {
    let scripts = [
        "hack/demo.sh",
        "hack/test.sh",
        "hack/lib/setup.sh",
        "hack/generate-remote-tasks.sh",
    ];
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(scripts)
        .current_dir(repo())
        .output()
        .expect("shellcheck not found: hack/test.sh installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs `hack/demo.sh ARGS` with a fake `cargo` and a fake Python whose `venv` records
/// the moto install, into a virtualenv of its own; returns (the script's output, what
/// cargo was asked, whether moto was installed).
fn demo_sh(args: &[&str]) -> (Output, String, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let calls = fake_apt(dir.path());
    let cargo_calls = dir.path().join("cargo-calls");
    let python_calls = dir.path().join("python-calls");
    let tools = [
        (
            "cargo",
            format!(
                "#!/bin/sh\necho \"cargo $*\" >> '{}'\n",
                cargo_calls.display()
            ),
        ),
        // `python -m venv DIR`: a virtualenv whose pip installs nothing.
        (
            "python",
            format!(
                "#!/bin/sh\necho \"python $*\" >> '{}'\nmkdir -p \"$3/bin\"\nprintf '#!/bin/sh\\n' > \"$3/bin/pip\"\nchmod +x \"$3/bin/pip\"\n",
                python_calls.display()
            ),
        ),
    ];
    for (tool, body) in tools {
        let file = dir.path().join(tool);
        std::fs::write(&file, body).expect("write fake tool");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&file)
            .status()
            .expect("chmod");
        assert!(status.success());
    }
    let venv = dir.path().join("venv");
    let mut script = format!(
        "MPC_MOTO_VENV='{}' MPC_MOTO_PYTHON='{}' hack/demo.sh",
        venv.display(),
        dir.path().join("python").display()
    );
    for arg in args {
        script.push(' ');
        script.push_str(arg);
    }
    let out = bash(&script, dir.path());
    assert!(!calls.exists(), "no system package should be missing here");
    let cargo = std::fs::read_to_string(&cargo_calls).unwrap_or_default();
    let installed = python_calls.exists();
    if installed {
        let stamp = std::fs::read_to_string(venv.join(".mpc-requirements")).unwrap_or_default();
        let requirements =
            std::fs::read_to_string(repo().join("hack/ec2-testbed/moto-requirements.txt"))
                .expect("moto-requirements.txt");
        assert_eq!(stamp, requirements, "a finished install leaves its stamp");
    }
    (out, cargo, installed)
}

#[test]
fn demo_sh_installs_moto_only_for_the_cloud_demo_and_passes_the_arguments_on() {
    let (out, cargo, installed) = demo_sh(&["--cloud", "--keep"]);
    assert!(out.status.success(), "{out:?}");
    assert!(installed, "--cloud installs moto: {out:?}");
    assert_eq!(
        cargo.trim(),
        "cargo run --release -p testbed --bin demo -- --cloud --keep"
    );

    let (out, cargo, installed) = demo_sh(&["--keep"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!installed, "the default demo needs no moto: {out:?}");
    assert_eq!(
        cargo.trim(),
        "cargo run --release -p testbed --bin demo -- --keep"
    );
}
