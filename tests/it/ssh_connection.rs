//! The connection side against real sshd hosts: host-key checking, admin keys,
//! timeouts and reconnects.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use multi_platform_controller::remote::{
    AdminKey, FailureClass, HostKeyPolicy, KnownHosts, MemoryKnownHosts, Phase, PoolConfig,
    RemoteError, SshPool, fingerprint, parse_host_key,
};
use test_hosts::TestHost;

fn host_fingerprint(host: &TestHost, index: usize) -> String {
    fingerprint(&parse_host_key(&host.host_keys()[index]).unwrap())
}

/// No line of the sshd log shows an authentication attempt.
fn no_authentication_attempted(host: &TestHost) -> bool {
    !host.sshd_log().contains("publickey")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_key_mismatch_is_refused_before_authentication() {
    let host = host();
    let other = key();
    let policy = HostKeyPolicy::Strict(other.public_key().clone());
    let target = target_as(&host, host.root(), policy);
    let error = pool().probe(&target).await.unwrap_err();
    let RemoteError::HostKeyMismatch {
        host: name,
        expected,
        actual,
    } = &error
    else {
        panic!("expected a host key mismatch, got {error}");
    };
    assert_eq!(name, host.name());
    assert_eq!(expected, other.fingerprint());
    assert_eq!(actual, &host_fingerprint(&host, 0));
    let message = error.to_string();
    assert!(
        message.contains(host.name()) && message.contains(expected) && message.contains(actual)
    );
    assert_eq!(error.class(), FailureClass::HostKeyMismatch);
    assert!(no_authentication_attempted(&host), "{}", host.sshd_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_key_mismatch_is_refused_and_the_memory_kept() {
    let host = host();
    let store = Arc::new(MemoryKnownHosts::new());
    let remembered = key();
    store.insert(host.name(), remembered.public_key().clone());
    let target = target_as(&host, host.root(), HostKeyPolicy::AcceptNew(store.clone()));
    let error = pool().probe(&target).await.unwrap_err();
    assert!(
        matches!(&error, RemoteError::HostKeyMismatch { expected, actual, .. }
            if expected == remembered.fingerprint() && actual == &host_fingerprint(&host, 0)),
        "{error}"
    );
    assert_eq!(
        store.lookup(host.name()).unwrap().key_data(),
        remembered.public_key().key_data(),
        "a mismatch must not overwrite the remembered key"
    );
    assert!(no_authentication_attempted(&host), "{}", host.sshd_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_remembers_the_first_key_and_trusts_it_later() {
    let host = host();
    let store = Arc::new(MemoryKnownHosts::new());
    let target = target_as(&host, host.root(), HostKeyPolicy::AcceptNew(store.clone()));
    let probe = pool().probe(&target).await.unwrap();
    let remembered = store
        .get(host.name())
        .await
        .unwrap()
        .expect("key remembered");
    assert_eq!(fingerprint(&remembered), host_fingerprint(&host, 0));
    assert_eq!(fingerprint(&probe.host_key), host_fingerprint(&host, 0));
    // A new pool (a restarted controller) trusts the remembered key.
    pool().probe(&target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_ecdsa_key_is_checked_although_ed25519_is_preferred() {
    let host = host();
    let ecdsa = parse_host_key(&host.host_keys()[1]).unwrap();
    let target = target_as(&host, host.root(), HostKeyPolicy::Strict(ecdsa));
    let probe = pool().probe(&target).await.unwrap();
    assert_eq!(fingerprint(&probe.host_key), host_fingerprint(&host, 1));

    // A different ECDSA key is a mismatch, not a silent fallback to ed25519.
    let other = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(host.dir().join("other_ecdsa"))
        .status()
        .unwrap();
    assert!(other.success());
    let other =
        parse_host_key(&std::fs::read_to_string(host.dir().join("other_ecdsa.pub")).unwrap())
            .unwrap();
    let target = target_as(&host, host.root(), HostKeyPolicy::Strict(other));
    let error = pool().probe(&target).await.unwrap_err();
    assert_eq!(error.class(), FailureClass::HostKeyMismatch, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_key_fails_authentication() {
    let host = host();
    let mut target = root_target(&host);
    let stranger = key();
    target.admin_key = AdminKey::parse(stranger.private_key_openssh().as_bytes()).unwrap();
    let error = pool().probe(&target).await.unwrap_err();
    assert!(
        matches!(&error, RemoteError::AuthenticationFailed { user, fingerprint, .. }
            if user == "root" && fingerprint == stranger.fingerprint()),
        "{error}"
    );
    assert_eq!(error.class(), FailureClass::Misconfigured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_ecdsa_admin_keys_log_in() {
    let host = host();
    for (kind, extra) in [
        ("rsa", &["-b", "2048"][..]),
        ("rsa", &["-b", "2048", "-m", "PEM"][..]),
        ("ecdsa", &["-b", "384"][..]),
    ] {
        let path = host.dir().join(format!("admin-{kind}-{}", extra.len()));
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "admin"])
            .args(extra)
            .arg("-f")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
        host.authorize_admin_key("root", &public).unwrap();
        let mut target = root_target(&host);
        target.admin_key = AdminKey::parse(&std::fs::read(&path).unwrap()).unwrap();
        let probe = pool().probe(&target).await;
        assert!(probe.is_ok(), "{kind} {extra:?}: {}", probe.unwrap_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_hung_sshd_fails_within_the_timeout() {
    let host = host();
    let target = root_target(&host);
    let connect_timeout = Duration::from_secs(2);
    let pool = SshPool::new(PoolConfig {
        connect_timeout,
        ..config()
    });
    let guard = connect_timeout * 5;

    host.stop_sshd().unwrap();
    let started = Instant::now();
    let error = tokio::time::timeout(guard, pool.probe(&target))
        .await
        .expect("no hang when sshd is down")
        .unwrap_err();
    assert!(matches!(error, RemoteError::Unreachable { .. }), "{error}");
    assert_eq!(error.class(), FailureClass::Unavailable);
    assert!(started.elapsed() < guard);

    // Listening but not answering: the kernel accepts the TCP connection, nobody speaks.
    host.start_sshd().unwrap();
    host.freeze_sshd().unwrap();
    let started = Instant::now();
    let error = tokio::time::timeout(guard, pool.probe(&target))
        .await
        .expect("no hang when sshd is hung")
        .unwrap_err();
    host.thaw_sshd().unwrap();
    assert!(
        matches!(error, RemoteError::Timeout { phase: Phase::Connect, after, .. } if after == connect_timeout),
        "{error}"
    );
    assert!(started.elapsed() >= connect_timeout);
    assert_eq!(error.class(), FailureClass::Unavailable);

    // And the host is usable again once sshd answers.
    pool.probe(&target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_a_hung_connection_times_out_and_recovers() {
    let host = host();
    let target = root_target(&host);
    let command_timeout = Duration::from_secs(2);
    let pool = SshPool::new(PoolConfig {
        command_timeout,
        ..config()
    });
    pool.probe(&target).await.unwrap();
    host.freeze_sshd().unwrap();
    let (u, k) = (user("hung"), key());
    let error = tokio::time::timeout(
        command_timeout * 5,
        pool.provision(&target, &request(&u, &k)),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    host.thaw_sshd().unwrap();
    assert!(
        matches!(
            error,
            RemoteError::Timeout {
                phase: Phase::Command(_),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.class(), FailureClass::Unavailable);
    assert!(
        pool.provision(&target, &request(&u, &k))
            .await
            .unwrap()
            .created
    );
    assert_eq!(
        accepted_logins(&host, "root"),
        2,
        "the timed-out connection is replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_reconnects_transparently_after_sshd_restarts() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("before"), key());
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    assert_eq!(accepted_logins(&host, "root"), 1);

    // Restarting kills every sshd, so the pooled connection is dead.
    host.restart_sshd().unwrap();
    let (v, l) = (user("after"), key());
    pool.provision(&target, &request(&v, &l)).await.unwrap();
    assert_eq!(accepted_logins(&host, "root"), 2, "exactly one reconnect");
    assert_eq!(login(&host, &v, &l).as_deref(), Some(v.as_str()));
    assert!(pool.cleanup(&target, &u).await.unwrap().existed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_target_gets_a_new_connection() {
    let host = host();
    let pool = pool();
    pool.probe(&root_target(&host)).await.unwrap();
    // Same host name, now configured with the sudo admin: the root connection must
    // not be reused for it.
    let probe = pool.probe(&sudo_target(&host)).await.unwrap();
    assert_eq!(
        probe.privilege,
        multi_platform_controller::remote::Privilege::Sudo
    );
    assert_eq!(accepted_logins(&host, "root"), 1);
    assert_eq!(accepted_logins(&host, "mpc-admin"), 1);
}
