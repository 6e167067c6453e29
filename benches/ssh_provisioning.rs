//! Provision + clean up build users on one real sshd host and compare the latency with
//! the floor: the OpenSSH client running a bare useradd + authorized_keys + userdel over
//! a ControlMaster connection (so neither side pays a handshake per user).
//!
//! The host is shaped like a real build host (`HostOptions::realistic`: sshd with
//! `UsePAM yes`, an `/etc/passwd` of about 2 000 lines), and before our cleanup each
//! build user has what a build leaves: a process still running and its SSH session
//! still open. The floor's userdel gets an idle user (it refuses a busy one).
//!
//! Run: `cargo bench --bench ssh_provisioning` (as root; `MPC_BENCH_USERS` overrides the
//! default of 200 users). Both sides alternate user by user, so load from other
//! processes on the machine hits them alike.

// Test code: a failed unwrap is how a test fails, and its numbers are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant, SystemTime};

use mpc_core::naming::UserName;
use multi_platform_controller::remote::{
    AdminKey, HostKeyPolicy, HostTarget, ProvisionRequest, SshPool, SshSettings, generate,
    parse_host_key,
};
use test_hosts::{HostOptions, TestHost};

#[path = "common/floor.rs"]
mod floor;
use floor::ControlMaster;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    // `cargo test --all-targets` runs benches as smoke tests without `--bench`; the
    // measurement only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ssh_provisioning: skipped (run it with `cargo bench --bench ssh_provisioning`)");
        return Ok(());
    }
    let users: usize = std::env::var("MPC_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let host = TestHost::start_with(&HostOptions::realistic())?;
    let target = HostTarget {
        name: host.name().to_owned(),
        address: host.address().to_string(),
        port: host.port(),
        admin_user: "root".into(),
        admin_key: AdminKey::parse(host.root().private_key.as_bytes())?,
        host_key_policy: HostKeyPolicy::Strict(parse_host_key(host.host_key())?),
    };
    let pool = SshPool::new(SshSettings::default());
    let master = ControlMaster::start(&host)?;
    let expires = SystemTime::now() + Duration::from_secs(3600);

    // Warm up both paths (connections, page cache, sshd's first session).
    for i in 0..5 {
        let user = UserName::for_taskrun(&format!("warmup-{i}"), "bench");
        let key = generate()?;
        let request = ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?;
        runtime.block_on(pool.provision(&target, &request))?;
        runtime.block_on(pool.cleanup(&target, &user))?;
        master.provision(&user, request.authorized_key())?;
        master.delete(&user)?;
    }

    let mut ours = Timings::default();
    let mut floor = Timings::default();
    for i in 0..users {
        let key = generate()?;
        let user = UserName::for_taskrun(&format!("ours-{i}"), "bench");
        let request = ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?;
        let started = Instant::now();
        runtime.block_on(pool.provision(&target, &request))?;
        let provisioned = started.elapsed();
        let session = leave_a_build_behind(&host, &user, key.private_key_openssh())?;
        let started = Instant::now();
        runtime.block_on(pool.cleanup(&target, &user))?;
        ours.record(provisioned, started.elapsed());
        session.finish();

        let user = UserName::for_taskrun(&format!("floor-{i}"), "bench");
        let request = ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?;
        let provisioned = master.provision(&user, request.authorized_key())?;
        let deleted = master.delete(&user)?;
        floor.record(provisioned, deleted);
    }
    let leftover = host.build_users()?;
    if !leftover.is_empty() {
        return Err(format!("users left on the host: {leftover:?}").into());
    }

    // Throughput with the pool's channel budget in use (not compared with the floor).
    let concurrent = 50;
    let started = Instant::now();
    let burst_retries = runtime.block_on(async {
        let jobs = (0..concurrent).map(|i| {
            let (pool, target) = (pool.clone(), target.clone());
            async move {
                let user = UserName::for_taskrun(&format!("burst-{i}"), "bench");
                let key = generate()?;
                let request = ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?;
                let provisioned = pool.provision(&target, &request).await?;
                let cleaned = pool.cleanup(&target, &user).await?;
                Ok::<u32, BoxError>(provisioned.lock_retries + cleaned.lock_retries)
            }
        });
        futures::future::try_join_all(jobs).await
    })?;
    let lock_retries: u32 = burst_retries.iter().sum();
    let burst = started.elapsed();

    println!(
        "ssh_provisioning: {users} users, one host (sshd {}), sequential",
        floor::openssh_version()
    );
    println!("                       p50        p95       mean");
    ours.print("ours  provision", &ours.provision);
    floor.print("floor useradd+key", &floor.provision);
    ours.print("ours  cleanup", &ours.cleanup);
    floor.print("floor userdel", &floor.cleanup);
    let ratio =
        |a: &[Duration], b: &[Duration]| ours.p(a, 50).as_secs_f64() / floor.p(b, 50).as_secs_f64();
    println!(
        "ours/floor at p50: provision {:.2}x, cleanup {:.2}x (goal: <= 2x each)",
        ratio(&ours.provision, &floor.provision),
        ratio(&ours.cleanup, &floor.cleanup)
    );
    println!(
        "burst: {concurrent} provision+cleanup at once in {:.2} s ({:.1} users/s, {lock_retries} lock retries)",
        burst.as_secs_f64(),
        concurrent as f64 / burst.as_secs_f64()
    );
    Ok(())
}

/// What a build leaves for cleanup: a process of the user still running and the
/// user's SSH session still open.
struct LeftBehind {
    session: std::process::Child,
    _key: tempfile::NamedTempFile,
}

impl LeftBehind {
    /// Waits for the session, which cleanup ended.
    fn finish(mut self) {
        let _ = self.session.kill();
        let _ = self.session.wait();
    }
}

fn leave_a_build_behind(
    host: &TestHost,
    user: &UserName,
    private_key: &str,
) -> Result<LeftBehind, BoxError> {
    let out = host.ssh(
        user.as_str(),
        private_key,
        "nohup sleep 1000 >/dev/null 2>&1 & echo started",
    )?;
    if out.stdout.trim() != "started" {
        return Err(format!("cannot start a process as {user}: {}", out.stderr).into());
    }
    let key = tempfile::NamedTempFile::new()?;
    std::fs::write(key.path(), private_key)?;
    let mut session = host
        .ssh_command(user.as_str(), key.path(), "echo open; exec sleep 1000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // The session is open once its command printed.
    let mut line = String::new();
    if let Some(stdout) = session.stdout.take() {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
    }
    if line.trim() != "open" {
        return Err(format!("no open SSH session for {user}").into());
    }
    Ok(LeftBehind { session, _key: key })
}

#[derive(Default)]
struct Timings {
    provision: Vec<Duration>,
    cleanup: Vec<Duration>,
}

impl Timings {
    fn record(&mut self, provision: Duration, cleanup: Duration) {
        self.provision.push(provision);
        self.cleanup.push(cleanup);
    }

    /// Nearest-rank percentile.
    fn p(&self, samples: &[Duration], percent: usize) -> Duration {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = (percent * sorted.len()).div_ceil(100).max(1);
        sorted[rank - 1]
    }

    fn print(&self, label: &str, samples: &[Duration]) {
        let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
        println!(
            "{label:<18} {:>8.1} ms {:>8.1} ms {:>8.1} ms",
            ms(self.p(samples, 50)),
            ms(self.p(samples, 95)),
            ms(mean)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
