//! The fixture's promises: hosts are real sshd servers, isolated from each other and
//! from the machine, restartable, and gone without a trace when dropped.

use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use test_hosts::{SUDO_ADMIN_USER, TestHost, start_hosts};

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
    assert!(
        a.run(&["pgrep", "-x", "-u", user, "sleep"])
            .unwrap()
            .success()
    );
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
