//! Build users as the builds use them: rootless podman with subordinate ids, per-user
//! limits, and nothing left behind — against real sshd hosts, with the issued key.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;
use mpc_core::config::{CpuQuota, MaxProcesses, MemoryMax, UserLimits};
use mpc_core::naming::UserName;
use multi_platform_controller::remote::UserKeyPair;
use test_hosts::{HostOptions, TestHost};

/// The local image the podman tests run: a busybox rootfs, made on this machine
/// (no registry is reachable).
pub const TEST_IMAGE: &str = "localhost/mpc-test-busybox:latest";

/// A tarball of a root filesystem: this machine's busybox with all its applets, and its
/// bash (the remote Tasks' scripts are bash), each with the libraries `ldd` names at
/// the same paths (Debian's `busybox-static` needs none; its dynamic `busybox` does).
pub fn busybox_rootfs_tar() -> Vec<u8> {
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (hack/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    let applets = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    let _ = std::fs::remove_file(bin.join("bash"));
    std::fs::copy("/bin/bash", bin.join("bash")).unwrap();
    for binary in ["/bin/busybox", "/bin/bash"] {
        // A static binary: ldd says so (and fails); no paths to copy.
        let libs = std::process::Command::new("ldd")
            .arg(binary)
            .output()
            .unwrap();
        for path in String::from_utf8_lossy(&libs.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let target = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(path, &target).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Runs `command` as `user` over the OpenSSH client with `stdin`.
pub fn ssh_with_stdin(
    host: &TestHost,
    user: &UserName,
    key: &UserKeyPair,
    command: &str,
    stdin: &[u8],
) -> std::process::Output {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), key.private_key_openssh()).unwrap();
    let mut child = host
        .ssh_command(user.as_str(), key_file.path(), command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Imports [`TEST_IMAGE`] into `user`'s podman storage.
pub fn import_test_image(host: &TestHost, user: &UserName, key: &UserKeyPair) {
    let out = ssh_with_stdin(
        host,
        user,
        key,
        &format!("podman import -q - {TEST_IMAGE}"),
        &busybox_rootfs_tar(),
    );
    assert!(
        out.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `user`'s ranges in `file` (`/etc/subuid` or `/etc/subgid`) as (start, count).
fn ranges(host: &TestHost, file: &str, user: &str) -> Vec<(u64, u64)> {
    on_host(host, &format!("cat {file}"))
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, start, count) = (f.next()?, f.next()?, f.next()?);
            (name == user).then(|| (start.parse().unwrap(), count.parse().unwrap()))
        })
        .collect()
}

/// Every range in `file` of someone other than `user`.
fn others(host: &TestHost, file: &str, user: &str) -> Vec<(u64, u64)> {
    on_host(host, &format!("cat {file}"))
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, start, count) = (f.next()?, f.next()?, f.next()?);
            (name != user).then(|| (start.parse().unwrap(), count.parse().unwrap()))
        })
        .collect()
}

fn disjoint(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0
}

/// Everything provisioning made for `user` (uid `uid`) is gone from the host.
fn assert_nothing_left(host: &TestHost, user: &UserName, uid: &str) {
    assert!(!holds(host, &format!("getent passwd {user}")));
    assert!(!holds(host, &format!("test -e /home/{user}")), "home left");
    assert!(
        !holds(host, &format!("grep -q '^{user}:' /etc/subuid /etc/subgid")),
        "subordinate ids left"
    );
    assert!(!holds(
        host,
        &format!("test -e /etc/security/limits.d/{user}.conf")
    ));
    assert!(
        !holds(host, "ls /etc/systemd/system | grep -q '^user-'"),
        "slice drop-ins left: {}",
        on_host(host, "ls -R /etc/systemd/system")
    );
    assert!(!holds(host, &format!("test -e /run/user/{uid}")));
    assert_eq!(
        on_host(
            host,
            &format!("find /tmp /var/tmp /dev/shm -mindepth 1 -maxdepth 1 -uid {uid}")
        ),
        "",
        "files of the uid left where the next user would find them"
    );
    assert_eq!(
        on_host(host, &format!("ps -o pid= -U {uid} -u {uid} || true")),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_a_build_user_runs_rootless_podman_and_cleanup_leaves_nothing() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("podman"), key());
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    let uid = on_host(&host, &format!("id -u {u}")).trim().to_owned();

    // Subordinate ids of its own, clear of every other entry.
    let (subuids, subgids) = (
        ranges(&host, "/etc/subuid", u.as_str()),
        ranges(&host, "/etc/subgid", u.as_str()),
    );
    assert_eq!(subuids.len(), 1, "{subuids:?}");
    assert_eq!(subuids[0].1, 65536);
    assert_eq!(subgids.len(), 1, "{subgids:?}");
    for (file, mine) in [("/etc/subuid", subuids[0]), ("/etc/subgid", subgids[0])] {
        for other in others(&host, file, u.as_str()) {
            assert!(disjoint(mine, other), "{file}: {mine:?} overlaps {other:?}");
        }
    }
    assert_eq!(
        on_host(&host, &format!("cat /etc/security/limits.d/{u}.conf")),
        format!(
            "# Build user {u} of multi-platform-controller; removed with the user.\n\
             {u} soft nproc 4096\n{u} hard nproc 4096\n"
        )
    );

    // The user's namespace maps the range, as podman sees it.
    let map = host
        .ssh(
            u.as_str(),
            k.private_key_openssh(),
            "podman unshare cat /proc/self/uid_map",
        )
        .unwrap();
    assert!(map.success(), "{}", map.stderr);
    let lines: Vec<Vec<u64>> = map
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![0, uid.parse().unwrap(), 1],
            vec![1, subuids[0].0, subuids[0].1]
        ]
    );

    // A container runs; its storage is in the home.
    import_test_image(&host, &u, &k);
    let run = host
        .ssh(
            u.as_str(),
            k.private_key_openssh(),
            &format!("podman run --rm {TEST_IMAGE} /bin/sh -c 'echo built; id -u'"),
        )
        .unwrap();
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(run.stdout, "built\n0\n");
    assert!(holds(
        &host,
        &format!("test -d /home/{u}/.local/share/containers/storage")
    ));
    // Leave a container running as a subordinate uid, and podman's pause process.
    let detached = host
        .ssh(
            u.as_str(),
            k.private_key_openssh(),
            &format!("podman run -d --user 1000 {TEST_IMAGE} sleep 1000"),
        )
        .unwrap();
    assert!(detached.success(), "{}", detached.stderr);
    let container_uid = subuids[0].0 + 999;
    assert!(
        wait_until(std::time::Duration::from_secs(20), || holds(
            &host,
            &format!("pgrep -U {container_uid} -x sleep")
        )),
        "the container's process runs as a subordinate uid"
    );

    assert!(pool.cleanup(&target, &u).await.unwrap().existed);
    assert_nothing_left(&host, &u, &uid);
    assert!(
        !holds(&host, &format!("pgrep -U {container_uid}")),
        "a container process survived cleanup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_two_build_users_get_disjoint_ranges_and_their_own_process_limit() {
    // pam_limits applies limits.d to logins, so this host runs sshd with PAM.
    let host = TestHost::start_with(&HostOptions {
        pam: true,
        ..HostOptions::default()
    })
    .unwrap();
    // The kernel counts a uid's processes for `nproc` across all test hosts (they share
    // it; only /etc is private), and every host hands out the same uids from the
    // machine's /etc. This host's users get uids no other live host uses (its loopback
    // address is unique), so the count below is the bomb's alone.
    let block = 1_000_000_000 + (u32::from(host.address()) & 0x00ff_ffff) * 16;
    on_host(
        &host,
        &format!(
            "sed -i '/^UID_M\\(IN\\|AX\\)[[:space:]]/d' /etc/login.defs && \
             printf 'UID_MIN %s\\nUID_MAX %s\\n' {block} {} >> /etc/login.defs",
            block + 15
        ),
    );
    let target = root_target(&host);
    let pool = pool();
    let limits = UserLimits {
        max_processes: MaxProcesses::Limit(40),
        ..UserLimits::default()
    };
    let (a, ka) = (user("bomb"), key());
    let (b, kb) = (user("bystander"), key());
    let (ra, rb) = (
        request(&a, &ka).with_limits(limits),
        request(&b, &kb).with_limits(limits),
    );
    let (pa, pb) = tokio::join!(pool.provision(&target, &ra), pool.provision(&target, &rb));
    pa.unwrap();
    pb.unwrap();
    for file in ["/etc/subuid", "/etc/subgid"] {
        let (ra, rb) = (
            ranges(&host, file, a.as_str()),
            ranges(&host, file, b.as_str()),
        );
        assert_eq!((ra.len(), rb.len()), (1, 1), "{file}");
        assert!(disjoint(ra[0], rb[0]), "{file}: {ra:?} and {rb:?} overlap");
    }

    let uid_a = on_host(&host, &format!("id -u {a}")).trim().to_owned();
    assert!(
        (block..block + 16).contains(&uid_a.parse::<u32>().unwrap()),
        "{a} has uid {uid_a}, outside this host's block {block}"
    );

    // A bounded fork bomb: dash gives up at the first fork the limit refuses. The
    // sleeps leave the session's output, or the client would wait for them to end.
    let bomb = host
        .ssh(
            a.as_str(),
            ka.private_key_openssh(),
            // bash would retry a refused fork for seconds; dash stops at once.
            "ulimit -u; exec /bin/sh -c 'i=0; while [ $i -lt 300 ]; do sleep 120 >/dev/null 2>&1 & i=$((i + 1)); done; echo all started'",
        )
        .unwrap();
    assert!(bomb.stdout.starts_with("40\n"), "{bomb:?}");
    assert!(!bomb.stdout.contains("all started"), "{bomb:?}");
    assert!(bomb.stderr.contains("Cannot fork"), "{bomb:?}");
    // When the fork was refused the uid had its 40 processes: the sleeps, and the
    // session's sshd and shell, which may be gone by now.
    let running: usize = on_host(&host, &format!("pgrep -c -U {uid_a} || true"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        (37..=40).contains(&running),
        "{running} processes of the bomb: {}",
        on_host(&host, &format!("ps -o pid=,args= -U {uid_a} || true"))
    );

    // The other user is not affected.
    let other = host
        .ssh(
            b.as_str(),
            kb.private_key_openssh(),
            "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo fine",
        )
        .unwrap();
    assert_eq!(other.stdout, "fine\n", "{}", other.stderr);

    for u in [&a, &b] {
        pool.cleanup(&target, u).await.unwrap();
    }
    assert_eq!(
        on_host(&host, &format!("pgrep -c -U {uid_a} || true")).trim(),
        "0"
    );
}

/// Replaces `systemctl` and `loginctl` on `host` with recorders and makes the host look
/// booted by systemd (`/run/systemd/system`), inside the host's own namespaces.
fn fake_systemd(host: &TestHost) {
    on_host(
        host,
        r#"set -e
mount -t tmpfs -o mode=0755 tmpfs /usr/local/sbin
mkdir -p /run/systemd/system
cat > /usr/local/sbin/systemctl <<'EOF'
#!/bin/sh
echo "systemctl $*" >> /run/fake-systemd.log
case "$*" in *NeedDaemonReload*) echo yes ;; esac
EOF
cat > /usr/local/sbin/loginctl <<'EOF'
#!/bin/sh
echo "loginctl $*" >> /run/fake-systemd.log
case $1 in
  enable-linger) mkdir -p /var/lib/systemd/linger && touch "/var/lib/systemd/linger/$2" ;;
  disable-linger) rm -f "/var/lib/systemd/linger/$2" ;;
esac
EOF
chmod 755 /usr/local/sbin/systemctl /usr/local/sbin/loginctl"#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_slice_limits_and_lingering_come_and_go_where_systemd_runs() {
    let host = host();
    fake_systemd(&host);
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("systemd"), key());
    let limits = UserLimits {
        max_processes: MaxProcesses::Limit(100),
        memory_max: MemoryMax::Bytes(8 << 30),
        cpu_quota: CpuQuota::PercentOfHost(50),
    };
    pool.provision(&target, &request(&u, &k).with_limits(limits))
        .await
        .unwrap();
    let uid = on_host(&host, &format!("id -u {u}")).trim().to_owned();
    let cpus: u64 = on_host(&host, "getconf _NPROCESSORS_ONLN")
        .trim()
        .parse()
        .unwrap();
    let dropin = format!("/etc/systemd/system/user-{uid}.slice.d/50-mpc-build-user.conf");
    assert_eq!(
        on_host(&host, &format!("cat {dropin}")),
        format!(
            "# mpc-build-user {u}\n\
             # Limits of a build user of multi-platform-controller; removed with the user.\n\
             [Slice]\nMemoryMax=8589934592\nCPUQuota={}%\n",
            50 * cpus
        )
    );
    assert_eq!(
        on_host(&host, &format!("stat -c '%a %U' {dropin}")).trim(),
        "644 root"
    );
    assert!(
        on_host(&host, &format!("cat /etc/security/limits.d/{u}.conf"))
            .contains(&format!("{u} hard nproc 100\n"))
    );
    assert!(holds(
        &host,
        &format!("test -e /var/lib/systemd/linger/{u}")
    ));
    let log = on_host(&host, "cat /run/fake-systemd.log");
    assert!(
        log.contains(&format!(
            "systemctl show --property=NeedDaemonReload --value user-{uid}.slice\n\
             systemctl daemon-reload\nloginctl enable-linger {u}\n"
        )),
        "{log}"
    );
    // Logind makes the runtime directory where systemd runs; the script does not.
    assert!(!holds(&host, &format!("test -e /run/user/{uid}")));

    assert!(pool.cleanup(&target, &u).await.unwrap().existed);
    let log = on_host(&host, "cat /run/fake-systemd.log");
    assert!(
        log.contains(&format!("loginctl disable-linger {u}\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!("loginctl terminate-user {u}\n")),
        "{log}"
    );
    assert!(!holds(
        &host,
        &format!("test -e /var/lib/systemd/linger/{u}")
    ));
    assert_nothing_left(&host, &u, &uid);

    // Unlimited memory and CPU: no drop-in at all.
    let (v, kv) = (user("systemd-unlimited"), key());
    pool.provision(
        &target,
        &request(&v, &kv).with_limits(UserLimits::UNLIMITED),
    )
    .await
    .unwrap();
    assert!(!holds(&host, "ls /etc/systemd/system | grep -q '^user-'"));
    assert!(!holds(
        &host,
        &format!("test -e /etc/security/limits.d/{v}.conf")
    ));
    pool.cleanup(&target, &v).await.unwrap();
}
