//! `install_moto` (hack/lib/setup.sh) installs moto from the pinned requirements into
//! the virtualenv when it is missing or stale, and does nothing when it is current.
//! Python is faked: these tests check what the script asks for, not pip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fake python whose `-m venv DIR` makes DIR/bin/pip, a fake that appends its
/// arguments to `calls`.
fn fake_python(dir: &Path) -> (PathBuf, PathBuf) {
    let calls = dir.join("calls");
    let python = dir.join("python3");
    let script = format!(
        r#"#!/bin/sh
echo "python3 $*" >> '{calls}'
[ "$1 $2" = "-m venv" ] || exit 1
mkdir -p "$3/bin"
printf '#!/bin/sh\necho "pip $*" >> "{calls}"\n' > "$3/bin/pip"
chmod +x "$3/bin/pip"
"#,
        calls = calls.display()
    );
    std::fs::write(&python, script).unwrap();
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&python)
        .status()
        .unwrap();
    assert!(status.success());
    (python, calls)
}

fn install_moto(venv: &Path, python: &Path) -> Output {
    Command::new("/bin/bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            "source hack/lib/setup.sh; install_moto",
        ])
        .current_dir(repo())
        .env("MPC_MOTO_VENV", venv)
        .env("MPC_MOTO_PYTHON", python)
        .output()
        .expect("run bash")
}

#[test]
fn a_missing_or_stale_venv_is_installed_from_the_pinned_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let (python, calls) = fake_python(dir.path());
    let venv = dir.path().join("venv");
    std::fs::create_dir_all(&venv).unwrap();
    std::fs::write(venv.join(".mpc-requirements"), "moto[server]==1.0\n").unwrap();
    std::fs::write(venv.join("leftover"), "").unwrap();

    let out = install_moto(&venv, &python);
    assert!(out.status.success(), "{out:?}");
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        vec![
            format!("python3 -m venv {}", venv.display()),
            "pip install --quiet --disable-pip-version-check --no-input -r \
             hack/ec2-testbed/moto-requirements.txt"
                .to_owned(),
        ]
    );
    assert!(!venv.join("leftover").exists(), "a stale venv is recreated");
    assert_eq!(
        std::fs::read_to_string(venv.join(".mpc-requirements")).unwrap(),
        ec2_testbed::MOTO_REQUIREMENTS,
        "the stamp records what was installed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("installing moto into"), "{stdout}");
}

#[test]
fn a_current_venv_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (python, calls) = fake_python(dir.path());
    let venv = dir.path().join("venv");
    std::fs::create_dir_all(&venv).unwrap();
    std::fs::write(
        venv.join(".mpc-requirements"),
        ec2_testbed::MOTO_REQUIREMENTS,
    )
    .unwrap();
    let out = install_moto(&venv, &python);
    assert!(out.status.success(), "{out:?}");
    assert!(!calls.exists(), "python must not run");
    assert!(out.stdout.is_empty(), "{out:?}");
}
