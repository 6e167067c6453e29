//! Helpers shared by the SSH integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mpc_core::config::SudoCommand;
use mpc_core::naming::UserName;
use multi_platform_controller::remote::{
    AdminKey, HostKeyPolicy, HostTarget, ProvisionRequest, SshPool, SshSettings, UserKeyPair,
    generate, parse_host_key,
};
use test_hosts::{AdminLogin, TestHost};

/// Starts a fresh host; every test gets its own so tests cannot see each other's users.
pub fn host() -> TestHost {
    TestHost::start().expect("start test host")
}

/// Timeouts short enough for tests, long enough for a machine shared by several builds.
pub fn config() -> SshSettings {
    SshSettings {
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(60),
        ..SshSettings::default()
    }
}

pub fn pool() -> SshPool {
    SshPool::new(config())
}

/// The host as the controller sees it, logging in as `admin`, with `policy`.
pub fn target_as(host: &TestHost, admin: &AdminLogin, policy: HostKeyPolicy) -> HostTarget {
    HostTarget {
        name: host.name().to_owned(),
        address: host.address().to_string(),
        port: host.port(),
        admin_user: admin.user.clone(),
        admin_key: AdminKey::parse(admin.private_key.as_bytes()).expect("admin key"),
        host_key_policy: policy,
    }
}

/// Root admin, host key pinned.
pub fn root_target(host: &TestHost) -> HostTarget {
    target_as(host, host.root(), pinned(host))
}

/// Sudo admin, host key pinned.
pub fn sudo_target(host: &TestHost) -> HostTarget {
    target_as(host, host.sudo_admin(), pinned(host))
}

pub fn pinned(host: &TestHost) -> HostKeyPolicy {
    HostKeyPolicy::Strict(parse_host_key(host.host_key()).expect("host key"))
}

/// A build user for a made-up TaskRun; unique per call.
pub fn user(label: &str) -> UserName {
    UserName::for_taskrun(&format!("{label}-{}", rand::random::<u64>()), "ssh-tests")
}

/// A request valid for an hour, no sudo.
pub fn request(user: &UserName, key: &UserKeyPair) -> ProvisionRequest {
    request_until(
        user,
        key,
        SystemTime::now() + Duration::from_secs(3600),
        &[],
    )
}

pub fn request_until(
    user: &UserName,
    key: &UserKeyPair,
    expires: SystemTime,
    sudo: &[&str],
) -> ProvisionRequest {
    let sudo: Vec<SudoCommand> = sudo
        .iter()
        .map(|c| SudoCommand::parse(c).expect("sudo command"))
        .collect();
    ProvisionRequest::new(user.clone(), key.public_key(), expires, &sudo).expect("request")
}

pub fn key() -> UserKeyPair {
    generate().expect("generate key")
}

/// `id -un` over the OpenSSH client with the issued key; `Some(name)` when login works.
pub fn login(host: &TestHost, user: &UserName, key: &UserKeyPair) -> Option<String> {
    let out = host
        .ssh(user.as_str(), key.private_key_openssh(), "id -un")
        .expect("run ssh");
    out.success().then(|| out.stdout.trim().to_owned())
}

/// Runs a command on the host as root and returns its stdout; panics on failure.
pub fn on_host(host: &TestHost, script: &str) -> String {
    host.shell(script)
        .expect("run on host")
        .ok(script)
        .expect("host command")
}

/// Whether a shell test on the host succeeds.
pub fn holds(host: &TestHost, script: &str) -> bool {
    host.shell(script).expect("run on host").success()
}

/// How many times sshd accepted `user`'s public key so far (one per connection).
pub fn accepted_logins(host: &TestHost, user: &str) -> usize {
    host.sshd_log()
        .lines()
        .filter(|l| l.contains(&format!("Accepted publickey for {user} ")))
        .count()
}

/// Polls `condition` every 10 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Shares a fixture value with a blocking closure run off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

pub type SharedHost = Arc<TestHost>;

/// Collects a spawned process's stderr, line by line, into a shared string the test can
/// read at any time (the controller's log, for assertions and failure messages).
pub fn capture_stderr(child: &mut tokio::process::Child) -> Arc<std::sync::Mutex<String>> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("the child's stderr is piped");
    tokio::spawn({
        let log = Arc::clone(&log);
        async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    log
}

/// A free loopback port (the OS may hand it out again, but not within the test).
pub fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}
