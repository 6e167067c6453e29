//! Provisioning and cleanup of build users against real OpenSSH sshd hosts, checked the
//! way a build sees them: through the OpenSSH client with the issued key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::*;
use multi_platform_controller::remote::{
    AdminKey, FailureClass, LoginOutcome, Privilege, RemoteError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_key_logs_in_to_a_private_home() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (alice, alice_key) = (user("alice"), key());
    let (bob, bob_key) = (user("bob"), key());

    let done = pool
        .provision(&target, &request(&alice, &alice_key))
        .await
        .unwrap();
    assert!(done.created);
    assert_eq!(
        multi_platform_controller::remote::fingerprint(&done.host_key),
        on_host(
            &host,
            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2"
        )
        .trim()
    );
    pool.provision(&target, &request(&bob, &bob_key))
        .await
        .unwrap();

    assert_eq!(
        login(&host, &alice, &alice_key).as_deref(),
        Some(alice.as_str())
    );
    let out = host
        .ssh(
            alice.as_str(),
            alice_key.private_key_openssh(),
            "echo built > ~/artifact && cat ~/artifact && stat -c '%a %U' ~ ~/.ssh/authorized_keys",
        )
        .unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("built\n700 {alice}\n600 {alice}\n"),
        "home and key must be the user's own and private"
    );
    // Not locked (`!`), no usable password either.
    assert_eq!(
        on_host(&host, &format!("getent shadow {alice} | cut -d: -f2")).trim(),
        "*"
    );
    // Another build user cannot look into the home.
    let snoop = host
        .ssh(
            bob.as_str(),
            bob_key.private_key_openssh(),
            &format!("ls /home/{alice} || cat /home/{alice}/artifact"),
        )
        .unwrap();
    assert!(!snoop.success());
    assert!(
        snoop.stderr.contains("Permission denied"),
        "{}",
        snoop.stderr
    );
    // Nor use its key.
    assert_eq!(login(&host, &alice, &bob_key), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_the_user_its_home_and_its_processes() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("cleanup"), key());
    pool.provision(&target, &request(&u, &k)).await.unwrap();

    let left_behind = host
        .ssh(
            u.as_str(),
            k.private_key_openssh(),
            "nohup sleep 1000 >/dev/null 2>&1 & echo started",
        )
        .unwrap();
    assert_eq!(
        left_behind.stdout.trim(),
        "started",
        "{}",
        left_behind.stderr
    );
    let uid = on_host(&host, &format!("id -u {u}")).trim().to_owned();
    // The session may end before its child has become `sleep` (fork, nohup, exec).
    assert!(
        wait_until(std::time::Duration::from_secs(20), || holds(
            &host,
            &format!("pgrep -U {uid} -x sleep")
        )),
        "the build left a process running"
    );

    let cleaned = pool.cleanup(&target, &u).await.unwrap();
    assert!(cleaned.existed);

    assert_eq!(
        login(&host, &u, &k),
        None,
        "login must be refused after cleanup"
    );
    assert!(!holds(&host, &format!("getent passwd {u}")));
    assert!(!holds(&host, &format!("getent group {u}")));
    assert!(!holds(&host, &format!("test -e /home/{u}")));
    assert!(
        !holds(&host, &format!("pgrep -U {uid}")),
        "processes of the user survived"
    );
    assert!(
        !on_host(&host, "ps -eo args")
            .lines()
            .any(|l| l == "sleep 1000")
    );

    // Idempotent: an absent user is success.
    assert!(!pool.cleanup(&target, &u).await.unwrap().existed);
    assert!(
        !pool
            .cleanup(&target, &user("never-created"))
            .await
            .unwrap()
            .existed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_refuses_a_key_past_its_expiry_time() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("expired"), key());
    let past = SystemTime::now() - Duration::from_secs(120);
    pool.provision(&target, &request_until(&u, &k, past, &[]))
        .await
        .unwrap();
    let line = on_host(&host, &format!("cat /home/{u}/.ssh/authorized_keys"));
    assert!(
        line.starts_with("expiry-time=\"") && line.contains("Z\" ssh-ed25519 "),
        "{line}"
    );
    assert_eq!(login(&host, &u, &k), None, "an expired key must be refused");

    // The same user with a future expiry gets in: the expiry is what refused it.
    let future = SystemTime::now() + Duration::from_secs(600);
    pool.provision(&target, &request_until(&u, &k, future, &[]))
        .await
        .unwrap();
    assert_eq!(login(&host, &u, &k).as_deref(), Some(u.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_login_tells_an_accepted_key_from_a_refused_one() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("try-login"), key());
    let as_login_key = |pair: &multi_platform_controller::remote::UserKeyPair| {
        AdminKey::parse(pair.private_key_openssh().as_bytes()).unwrap()
    };
    // No such user yet: refused, like any unknown key.
    assert_eq!(
        pool.try_login(&target, u.as_str(), &as_login_key(&k)).await,
        Ok(LoginOutcome::Refused)
    );
    let past = SystemTime::now() - Duration::from_secs(120);
    pool.provision(&target, &request_until(&u, &k, past, &[]))
        .await
        .unwrap();
    assert_eq!(
        pool.try_login(&target, u.as_str(), &as_login_key(&k)).await,
        Ok(LoginOutcome::Refused),
        "an expired key must be refused"
    );
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    assert_eq!(
        pool.try_login(&target, u.as_str(), &as_login_key(&k)).await,
        Ok(LoginOutcome::Accepted)
    );
    assert_eq!(
        pool.try_login(&target, u.as_str(), &as_login_key(&key()))
            .await,
        Ok(LoginOutcome::Refused),
        "another key of the same user must be refused"
    );
    assert_eq!(accepted_logins(&host, u.as_str()), 1, "{}", host.sshd_log());
    // The host key is checked as for the admin: a wrong pin is an error, never a login.
    let other = crate::common::host();
    let wrong_pin = target_as(&host, host.root(), pinned(&other));
    let err = pool
        .try_login(&wrong_pin, u.as_str(), &as_login_key(&k))
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClass::HostKeyMismatch, "{err}");
    assert_eq!(accepted_logins(&host, u.as_str()), 1);
    pool.cleanup(&target, &u).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_again_replaces_the_key() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let u = user("rekey");
    let (first, second) = (key(), key());
    assert!(
        pool.provision(&target, &request(&u, &first))
            .await
            .unwrap()
            .created
    );
    let again = pool
        .provision(&target, &request(&u, &second))
        .await
        .unwrap();
    assert!(!again.created, "the user existed already");
    assert_eq!(login(&host, &u, &first), None, "the old key must be gone");
    assert_eq!(login(&host, &u, &second).as_deref(), Some(u.as_str()));
    assert_eq!(host.build_users().unwrap(), vec![u.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_provisions_share_one_connection_and_clean_up_completely() {
    let host = host();
    let target = Arc::new(root_target(&host));
    let pool = pool();
    let users: Vec<_> = (0..20)
        .map(|i| (user(&format!("many-{i}")), key()))
        .collect();

    let provisions = users.iter().map(|(u, k)| {
        let (pool, target, request) = (pool.clone(), Arc::clone(&target), request(u, k));
        tokio::spawn(async move { pool.provision(&target, &request).await })
    });
    for done in futures::future::join_all(provisions).await {
        assert!(done.unwrap().unwrap().created);
    }
    let mut expected: Vec<String> = users.iter().map(|(u, _)| u.to_string()).collect();
    expected.sort();
    assert_eq!(host.build_users().unwrap(), expected);
    let listed = pool.list_users(&target).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|u| u.name.to_string())
            .collect::<Vec<_>>(),
        expected
    );
    assert!(
        listed
            .iter()
            .all(|u| u.age.is_some_and(|a| a < Duration::from_secs(600)))
    );
    // A few of them actually work.
    for (u, k) in users.iter().step_by(7) {
        assert_eq!(login(&host, u, k).as_deref(), Some(u.as_str()));
    }

    let cleanups = users.iter().map(|(u, _)| {
        let (pool, target, u) = (pool.clone(), Arc::clone(&target), u.clone());
        tokio::spawn(async move { pool.cleanup(&target, &u).await })
    });
    for done in futures::future::join_all(cleanups).await {
        assert!(done.unwrap().unwrap().existed);
    }
    assert!(host.build_users().unwrap().is_empty());
    assert!(pool.list_users(&target).await.unwrap().is_empty());
    assert_eq!(
        accepted_logins(&host, "root"),
        1,
        "one connection for everything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sudo_admin_provisions_and_cleans_up_like_root() {
    let host = host();
    let target = sudo_target(&host);
    let pool = pool();
    let probe = pool.probe(&target).await.unwrap();
    assert_eq!(probe.privilege, Privilege::Sudo);
    let (u, k) = (user("via-sudo"), key());
    assert!(
        pool.provision(&target, &request(&u, &k))
            .await
            .unwrap()
            .created
    );
    assert_eq!(login(&host, &u, &k).as_deref(), Some(u.as_str()));
    assert_eq!(
        on_host(&host, &format!("stat -c '%a %U' /home/{u}")).trim(),
        format!("700 {u}")
    );
    assert!(pool.cleanup(&target, &u).await.unwrap().existed);
    assert!(host.build_users().unwrap().is_empty());
    assert!(accepted_logins(&host, "mpc-admin") >= 1);
    assert_eq!(accepted_logins(&host, "root"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_commands_allow_exactly_what_is_configured() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("sudoer"), key());
    let expires = SystemTime::now() + Duration::from_secs(600);
    pool.provision(&target, &request_until(&u, &k, expires, &["/usr/bin/id"]))
        .await
        .unwrap();
    let sudo = |command: &str| {
        host.ssh(u.as_str(), k.private_key_openssh(), command)
            .unwrap()
    };
    let allowed = sudo("sudo -n /usr/bin/id -u");
    assert_eq!(allowed.stdout.trim(), "0", "{}", allowed.stderr);
    assert!(!sudo("sudo -n /bin/cat /etc/shadow").success());
    assert_eq!(
        on_host(&host, &format!("stat -c '%a %U' /etc/sudoers.d/{u}")).trim(),
        "440 root"
    );
    assert!(
        !holds(&host, "ls /etc/sudoers.d | grep -F .mpc-new"),
        "no temp file left"
    );

    // Re-provisioning without sudo commands takes the rule away.
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    assert!(!holds(&host, &format!("test -e /etc/sudoers.d/{u}")));
    assert!(!sudo("sudo -n /usr/bin/id -u").success());

    pool.provision(&target, &request_until(&u, &k, expires, &["/usr/bin/id"]))
        .await
        .unwrap();
    pool.cleanup(&target, &u).await.unwrap();
    assert!(!holds(&host, &format!("test -e /etc/sudoers.d/{u}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_waits_out_a_locked_passwd_file() {
    let host = Arc::new(host());
    let target = root_target(&host);
    let pool = pool();
    // shadow-utils treats /etc/passwd.lock naming a live process as held.
    on_host(
        &host,
        "sleep 1000 >/dev/null 2>&1 & printf %s $! > /etc/passwd.lock",
    );

    let (u, k) = (user("locked"), key());
    let provision = {
        let (pool, request) = (pool.clone(), request(&u, &k));
        tokio::spawn(async move { pool.provision(&target, &request).await })
    };
    // The script's retry pause only exists after useradd found the lock taken.
    let retrying = {
        let host = Arc::clone(&host);
        blocking(move || {
            wait_until(Duration::from_secs(30), || {
                host.run(&["pgrep", "-f", "^sleep 0[.]2$"])
                    .unwrap()
                    .success()
            })
        })
        .await
    };
    assert!(retrying, "useradd never hit the lock");
    on_host(&host, "kill $(cat /etc/passwd.lock) && rm /etc/passwd.lock");

    let done = provision.await.unwrap().unwrap();
    assert!(done.created);
    assert!(done.lock_retries >= 1, "{done:?}");
    assert_eq!(login(&host, &u, &k).as_deref(), Some(u.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_users_sees_only_build_users_with_their_age() {
    let host = host();
    let target = root_target(&host);
    let pool = pool();
    let (u, k) = (user("listed"), key());
    pool.provision(&target, &request(&u, &k)).await.unwrap();
    // A user the Go controller made (no creation stamp) and names that are not ours.
    let go_user = user("go-controller");
    on_host(
        &host,
        &format!("useradd -m {go_user} && useradd -m u-notours && useradd -m builder"),
    );
    let listed = pool.list_users(&target).await.unwrap();
    let names: Vec<String> = listed.iter().map(|u| u.name.to_string()).collect();
    let mut expected = vec![u.to_string(), go_user.to_string()];
    expected.sort();
    assert_eq!(names, expected);
    for found in &listed {
        let age = found.age.expect("age known (stamp or home mtime)");
        assert!(age < Duration::from_secs(600), "{found:?}");
    }
    // The reaper can clean the Go controller's user too.
    assert!(pool.cleanup(&target, &go_user).await.unwrap().existed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sudo_admin_without_passwordless_sudo_is_reported_as_misconfigured() {
    let host = host();
    on_host(
        &host,
        "echo 'mpc-admin ALL=(ALL) ALL' > /etc/sudoers.d/mpc-admin",
    );
    let target = sudo_target(&host);
    let error = pool().probe(&target).await.unwrap_err();
    assert!(
        matches!(&error, RemoteError::NotPrivileged { user, .. } if user == "mpc-admin"),
        "{error}"
    );
    assert_eq!(error.class(), FailureClass::Misconfigured);
    let (u, k) = (user("nosudo"), key());
    let error = pool()
        .provision(&target, &request(&u, &k))
        .await
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Misconfigured, "{error}");
    assert!(host.build_users().unwrap().is_empty());
}
