//! The fixture's promises: hosts are real sshd servers, isolated from each other and
//! from the machine, restartable, and gone without a trace when dropped.

use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use test_hosts::{CommandOutput, ExtraAdmin, HostOptions, SUDO_ADMIN_USER, TestHost, start_hosts};

#[test]
fn hosts_are_isolated_from_each_other_and_from_the_machine() {
    let hosts = start_hosts(2).unwrap();
    let (a, b) = (&hosts[0], &hosts[1]);
    assert_ne!(a.address(), b.address());
    for host in &hosts {
        assert!(host.address().is_loopback());
        assert_ne!(host.address().octets()[..2], [127, 0]);
    }
    let user = "u-00000000000000000000000000ff";
    a.shell(&format!("useradd -m {user}"))
        .unwrap()
        .ok("useradd")
        .unwrap();
    assert_eq!(a.build_users().unwrap(), vec![user.to_owned()]);
    assert!(b.build_users().unwrap().is_empty());
    let machine = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !machine.contains(user),
        "a host's user leaked into the machine"
    );

    // Processes, too, are per host.
    a.shell(&format!(
        "setpriv --reuid={user} --regid={user} --clear-groups sleep 1000 >/dev/null 2>&1 &"
    ))
    .unwrap()
    .ok("start a user process")
    .unwrap();
    // Backgrounded: setpriv may not have become `sleep` yet when the shell returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !a
        .run(&["pgrep", "-x", "-u", user, "sleep"])
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the user's sleep never ran on its host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!b.run(&["pgrep", "-f", "^sleep 1000$"]).unwrap().success());

    let names: Vec<String> = hosts
        .iter()
        .map(|h| h.run(&["hostname"]).unwrap().stdout.trim().to_owned())
        .collect();
    assert_eq!(names, vec![a.name().to_owned(), b.name().to_owned()]);
}

#[test]
fn admins_log_in_by_key_and_the_sudo_admin_becomes_root() {
    let host = TestHost::start().unwrap();
    let root = host.ssh("root", &host.root().private_key, "id -u").unwrap();
    assert_eq!(root.stdout.trim(), "0", "{}", root.stderr);
    let admin = host.sudo_admin();
    assert_eq!(admin.user, SUDO_ADMIN_USER);
    let sudo = host
        .ssh(&admin.user, &admin.private_key, "id -un && sudo -n id -u")
        .unwrap();
    assert_eq!(
        sudo.stdout,
        format!("{SUDO_ADMIN_USER}\n0\n"),
        "{}",
        sudo.stderr
    );
    // Keys are per user: the admin's key does not open root.
    assert!(
        !host
            .ssh("root", &admin.private_key, "true")
            .unwrap()
            .success()
    );
    // The known_hosts file pins this host's keys: a login checks them.
    let known = std::fs::read_to_string(host.known_hosts_path()).unwrap();
    assert!(known.contains(host.host_key()));
}

#[test]
fn restarting_sshd_drops_connections_and_keeps_the_disk() {
    let host = TestHost::start().unwrap();
    host.shell("useradd -m u-0000000000000000000000000001")
        .unwrap()
        .ok("useradd")
        .unwrap();
    let mut session = host.ssh_command("root", &host.root().private_key_path, "sleep 600");
    session.stdout(Stdio::null()).stderr(Stdio::null());
    let mut session = session.spawn().unwrap();
    // Wait until the session's sshd exists, then restart under it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !host.run(&["pgrep", "-f", "^sleep 600$"]).unwrap().success() {
        assert!(
            std::time::Instant::now() < deadline,
            "session never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    host.restart_sshd().unwrap();
    let status = session.wait().unwrap();
    assert!(!status.success(), "the open session must be cut");
    assert_eq!(
        host.build_users().unwrap(),
        vec!["u-0000000000000000000000000001".to_owned()]
    );
    let again = host.ssh("root", &host.root().private_key, "true").unwrap();
    assert!(again.success(), "{}", again.stderr);
}

#[test]
fn dropping_a_host_removes_its_server_and_directory() {
    let host = TestHost::start().unwrap();
    let (address, dir) = (host.address(), host.dir().to_owned());
    assert!(TcpStream::connect((address, 22)).is_ok());
    drop(host);
    assert!(!dir.exists(), "host directory left behind");
    assert!(
        TcpStream::connect_timeout(&(address, 22).into(), Duration::from_secs(5)).is_err(),
        "sshd still listening after drop"
    );
}

#[test]
fn a_host_starts_on_a_given_address_with_a_cloud_style_admin() {
    let address = std::net::Ipv4Addr::new(
        127,
        rand::random_range(1..=254),
        rand::random_range(0..=255),
        rand::random_range(1..=254),
    );
    let dir = std::env::temp_dir().join(format!(
        "test-hosts-extra-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ec2-user@test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let public = std::fs::read_to_string(dir.join("id.pub")).unwrap();
    let private = std::fs::read_to_string(&key).unwrap();
    let options = HostOptions {
        address: Some(address),
        extra_admin: Some(ExtraAdmin {
            user: "ec2-user".into(),
            authorized_key: public.trim().into(),
        }),
        ..HostOptions::default()
    };
    let host = TestHost::start_with(&options).unwrap();
    assert_eq!(host.address(), address);
    let out = host
        .ssh(
            "ec2-user",
            &private,
            "id -un && sudo -n true && echo sudo-ok",
        )
        .unwrap();
    assert_eq!(out.stdout, "ec2-user\nsudo-ok\n", "{}", out.stderr);
    // The key is the user's own, in ~/.ssh/authorized_keys, as cloud-init puts it.
    let keys = host
        .run(&["cat", "/home/ec2-user/.ssh/authorized_keys"])
        .unwrap()
        .ok("read authorized_keys")
        .unwrap();
    assert_eq!(keys.trim(), public.trim());
    // The extra admin exists on this host only, and its key opens nothing else.
    assert!(!host.ssh("root", &private, "true").unwrap().success());
    let machine = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !machine.contains("ec2-user:"),
        "ec2-user leaked to the machine"
    );

    // The same address twice: the second host cannot have it.
    match TestHost::start_with(&options) {
        Err(test_hosts::Error::AddressInUse(a)) => assert_eq!(a, address),
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    drop(host);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_loopback_addresses_other_than_127_0_0_1_are_accepted() {
    for address in [
        std::net::Ipv4Addr::LOCALHOST,
        std::net::Ipv4Addr::new(10, 0, 0, 1),
    ] {
        let options = HostOptions {
            address: Some(address),
            ..HostOptions::default()
        };
        let err = TestHost::start_with(&options).unwrap_err();
        assert!(err.to_string().contains("127.0.0.0/8"), "{err}");
    }
    let options = HostOptions {
        address: None,
        extra_admin: Some(ExtraAdmin {
            user: "../root".into(),
            authorized_key: "ssh-ed25519 AAAA".into(),
        }),
        ..HostOptions::default()
    };
    assert!(TestHost::start_with(&options).is_err());
}

#[test]
fn a_realistic_host_has_pam_many_accounts_and_devices_for_rootless_podman() {
    let machine_before = machine_modes();
    let host = TestHost::start_with(&HostOptions::realistic()).unwrap();
    let passwd = host
        .run(&["getent", "passwd"])
        .unwrap()
        .ok("passwd")
        .unwrap();
    assert!(
        passwd.lines().count() >= 2000,
        "{} lines",
        passwd.lines().count()
    );
    assert!(
        host.run(&["getent", "group", "filler-1999"])
            .unwrap()
            .success()
    );
    // pam_limits applies limits.d at login: the proof that sshd runs with PAM.
    let out = hard_nproc_at_login(&host, "u-00000000000000000000000000aa");
    assert_eq!(out.stdout.trim(), "77", "{}", out.stderr);
    // Devices usable by everyone inside the host, the machine's left as they were.
    let modes = host
        .shell("stat -c %a /dev/fuse /dev/net/tun")
        .unwrap()
        .ok("stat")
        .unwrap();
    assert_eq!(modes, "666\n666\n");
    assert_eq!(
        machine_modes(),
        machine_before,
        "the machine's devices changed"
    );
}

/// Creates `user` with a limits.d entry of `hard nproc 77` and root's key, logs in as
/// them over SSH and asks for the hard process limit: 77 only when sshd applies PAM
/// limits.
fn hard_nproc_at_login(host: &TestHost, user: &str) -> CommandOutput {
    host.shell(&format!(
        "useradd -m -s /bin/bash -p '*' {user} && echo '{user} hard nproc 77' > /etc/security/limits.d/{user}.conf \
         && mkdir -m 700 /home/{user}/.ssh && cp /etc/ssh/test-admin-keys/root /home/{user}/.ssh/authorized_keys \
         && chown -R {user}: /home/{user}/.ssh"
    ))
    .unwrap()
    .ok("user with a limit")
    .unwrap();
    host.ssh(user, &host.root().private_key, "ulimit -Hu")
        .unwrap()
}

/// The machine's own modes of the devices a host makes usable.
fn machine_modes() -> Vec<u32> {
    use std::os::unix::fs::PermissionsExt;
    ["/dev/fuse", "/dev/net/tun"]
        .iter()
        .map(|d| std::fs::metadata(d).unwrap().permissions().mode() & 0o777)
        .collect()
}

#[test]
fn a_default_host_runs_sshd_without_pam() {
    let host = TestHost::start().unwrap();
    let out = hard_nproc_at_login(&host, "u-00000000000000000000000000ab");
    assert!(out.success(), "{}", out.stderr);
    assert_ne!(out.stdout.trim(), "77", "no PAM, so no limits.d");
}

#[test]
fn a_host_has_no_cgroup_v2_controllers_beside_v1_ones() {
    let host = TestHost::start().unwrap();
    // What crun checks before it runs a container: on a v1 (tmpfs) /sys/fs/cgroup, a
    // cgroup2 hierarchy at `unified` must have no controllers ("hybrid mode").
    let out = host
        .shell(
            "if [ \"$(stat -fc %T /sys/fs/cgroup)\" = tmpfs ] \
               && [ \"$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)\" = cgroup2fs ]; then \
               cat /sys/fs/cgroup/unified/cgroup.controllers; fi",
        )
        .unwrap()
        .ok("cgroup check")
        .unwrap();
    assert_eq!(
        out.trim(),
        "",
        "controllers in a hybrid cgroup v2 hierarchy"
    );
}
