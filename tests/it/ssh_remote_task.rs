//! The remote Task of our catalog, run for real: the step script of
//! `tasks/run-script-remote` runs as Tekton would run it (its volumes at `/ssh`,
//! `/shared`, `/tekton/results`, the workspace at `/workspace/source`) against a test
//! host, with the build user and key the controller provisions: rsync there, ssh +
//! rootless podman, rsync back.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::ssh_build_users::{TEST_IMAGE, import_test_image};

/// The step's script with Tekton's substitutions made.
fn step_script() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tasks/run-script-remote/run-script-remote.yaml");
    let task: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let script = task["spec"]["steps"][0]["script"].as_str().unwrap();
    assert!(
        !script.contains("$(params."),
        "a param the test does not substitute"
    );
    script.replace("$(workspaces.source.path)", "/workspace/source")
}

/// Runs `script` with bash the way a step container would: in a private mount
/// namespace, chrooted into an overlay of this machine's root (so the step sees its
/// volumes at their absolute paths, and nothing reaches the machine), as root with
/// root's own home: Tekton 0.50 (the Task's minimum) leaves the image's `HOME` as it
/// is, and OpenSSH looks for `~/.ssh/id_rsa` in the passwd home whatever `HOME` says.
fn run_step(sandbox: &Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::fs::write(sandbox.join("step.sh"), script).unwrap();
    let exports: String = env
        .iter()
        .map(|(k, v)| format!(" {k}={}", mpc_core::host_work::script::shell_quote(v)))
        .collect();
    let setup = format!(
        r#"set -e
s={sandbox}
mount --make-rprivate /
mount -t tmpfs tmpfs "$s/layer"
mkdir "$s/layer/upper" "$s/layer/work" "$s/layer/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$s/layer/upper,workdir=$s/layer/work" "$s/layer/root"
r=$s/layer/root
for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
mount -t tmpfs tmpfs "$r/tmp"
mount -t tmpfs -o mode=0700 tmpfs "$r/root"
for v in ssh shared tekton/results workspace/source; do
  mkdir -p "$r/$v" "$s/$v"
  mount --bind "$s/$v" "$r/$v"
done
mkdir -p "$r/stub" "$r/root/.docker"
printf '#!/bin/sh\necho "buildah $*"\n' > "$r/stub/buildah"
chmod 755 "$r/stub/buildah"
cp "$s/step.sh" "$r/step.sh"
cd "$r/workspace/source"
exec chroot "$r" /usr/bin/env -i PATH=/stub:/usr/local/bin:/usr/bin:/bin HOME=/root{exports} \
  /bin/sh -c 'cd /workspace/source && exec /bin/bash /step.sh'
"#,
        sandbox = sandbox.display()
    );
    std::fs::create_dir_all(sandbox.join("layer")).unwrap();
    Command::new("unshare")
        .args(["--mount", "--fork", "--", "/bin/sh", "-c", &setup])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_the_remote_run_script_task_runs_its_step_on_the_host_with_podman() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("remote-task"), key());
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    // The Task would pull RUNNER_IMAGE; no registry is reachable, so it is local.
    import_test_image(&host, &u, &k);

    let sandbox = tempfile::tempdir().unwrap();
    let s = sandbox.path();
    for dir in ["ssh", "shared", "tekton/results", "workspace/source"] {
        std::fs::create_dir_all(s.join(dir)).unwrap();
    }
    // The Secret the controller writes, mounted at /ssh.
    std::fs::write(s.join("ssh/id_rsa"), k.private_key_openssh()).unwrap();
    std::fs::write(s.join("ssh/host"), format!("{u}@{}", host.address())).unwrap();
    std::fs::write(s.join("ssh/user-dir"), format!("/home/{u}")).unwrap();
    std::fs::write(s.join("workspace/source/input.txt"), "from the workspace\n").unwrap();

    let script =
        "cat input.txt > /shared/out.txt; echo \"uid $(id -u) in $(pwd)\" >> /shared/out.txt";
    let out = run_step(
        s,
        &step_script(),
        &[
            ("SCRIPT", script),
            ("BUILDER_IMAGE", TEST_IMAGE),
            ("PLATFORM", "linux/arm64"),
            ("IMAGE_APPEND_PLATFORM", "false"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "step failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The script ran in the container (as its root) on the host, and /shared came back.
    assert_eq!(
        std::fs::read_to_string(s.join("shared/out.txt")).unwrap(),
        "from the workspace\nuid 0 in /workspace/source\n"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Build on remote host {u}@{}", host.address())),
        "{stdout}"
    );
    // The build ran as the build user, in its home.
    assert!(holds(
        &host,
        &format!("test -f /home/{u}/workspaces/source/input.txt")
    ));

    pool.cleanup(&target, &u).await.unwrap();
    assert!(host.build_users().unwrap().is_empty());
}
