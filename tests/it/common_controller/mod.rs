//! Helpers shared by the controller integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testbed::kube_sim::{wait_for, wait_until};
use testbed::{HostSpec, Issued, Testbed, init_test_logging};

/// A test bed with these hosts and one controller started; returns the controller's
/// index once every host is probed and taking TaskRuns, so allocations in the test are
/// decided on a known pool (not queued behind a first probe).
pub async fn bed_with_controller(prefix: &str, hosts: Vec<HostSpec>) -> (Testbed, usize) {
    init_test_logging();
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let mut bed = Testbed::start(prefix, hosts).await.expect("test bed");
    let c = bed
        .start_controller(bed.settings())
        .await
        .expect("controller");
    for host in &names {
        bed.wait_host_up(c, host).await.expect("host probed");
    }
    (bed, c)
}

/// The build host address a Secret grants.
pub fn address(access: &Issued) -> String {
    match access {
        Issued::Access { host, .. } => host.rsplit('@').next().unwrap_or_default().to_owned(),
        other => panic!("expected SSH access, got {other:?}"),
    }
}

/// The build user a Secret grants.
pub fn user(access: &Issued) -> String {
    match access {
        Issued::Access { user, .. } => user.clone(),
        other => panic!("expected SSH access, got {other:?}"),
    }
}

/// Waits for the TaskRun's Secret and insists it grants SSH access to `host`.
pub async fn wait_served_on(bed: &Testbed, name: &str, host: &str) -> Issued {
    let access = bed.wait_for_secret(name).await.expect("Secret");
    assert_eq!(
        address(&access),
        bed.host(host).host.address().to_string(),
        "{name} should run on {host}"
    );
    access
}

/// Logs in with the TaskRun's Secret as the Task does and checks the login works.
pub async fn assert_login_works(bed: &Testbed, name: &str) {
    let out = bed.ssh_as_task(name, "id -un").await.expect("ssh");
    assert!(out.success(), "{name}: login failed: {}", out.stderr);
}

/// The error text of the TaskRun's Secret (it must be an error Secret with only `error`).
pub async fn wait_error_secret(bed: &Testbed, name: &str) -> String {
    let issued = bed.wait_for_secret(name).await.expect("Secret");
    let Issued::Error(text) = issued else {
        panic!("{name}: expected an error Secret, got {issued:?}");
    };
    let secret = bed.secret(name).await.unwrap().expect("Secret");
    let keys: Vec<&String> = secret.data.as_ref().expect("data").keys().collect();
    assert_eq!(
        keys,
        ["error"],
        "{name}: an error Secret holds only `error`"
    );
    text
}

/// Asserts contract §2.3's shape of an error text: message, blank line, context block.
pub fn assert_error_shape(text: &str, platform: &str) {
    let suffix = format!("\n\nContext info:\n  Platform: {platform}\n");
    assert!(
        text.ends_with(&suffix),
        "error text lacks the context block for {platform}: {text:?}"
    );
    let message = text.trim_end_matches(&suffix);
    assert!(!message.trim().is_empty(), "empty error message: {text:?}");
}

/// Waits until the first of `names` has a Secret and returns its name; several at once
/// are reported as they are (the caller's assertion then fails).
pub async fn wait_first_served(bed: &Testbed, names: &[&str]) -> Vec<String> {
    wait_for(
        Duration::from_secs(90),
        "one of the waiters served",
        || async {
            let mut served = Vec::new();
            for name in names {
                if bed.secret(name).await.ok().flatten().is_some() {
                    served.push((*name).to_owned());
                }
            }
            (!served.is_empty()).then_some(served)
        },
    )
    .await
    .expect("a waiter is served")
}

/// The TaskRun's creationTimestamp in unix seconds.
pub async fn created_secs(bed: &Testbed, name: &str) -> i64 {
    let tr = bed.taskrun(name).await.unwrap().expect("TaskRun");
    tr.created().expect("creationTimestamp").0.as_second()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Waits until the clock is past the second `name` was created in, so the next TaskRun
/// is created strictly later (creationTimestamp has one-second resolution).
pub async fn wait_past_creation_of(bed: &Testbed, name: &str) {
    let created = created_secs(bed, name).await;
    wait_until(
        Duration::from_secs(5),
        "the clock passes a second",
        || async { now_secs() > created },
    )
    .await
    .expect("clock moves");
}

/// Waits until the TaskRun no longer carries the waiting label.
pub async fn wait_not_waiting(bed: &Testbed, name: &str) {
    let what = format!("{name} loses its waiting label");
    wait_until(Duration::from_secs(90), &what, || async {
        matches!(bed.taskrun(name).await, Ok(Some(tr)) if !tr.is_waiting())
    })
    .await
    .expect("waiting label removed");
}

/// Asserts that the TaskRun waits: waiting label, no host, no Secret.
pub async fn assert_waiting(bed: &Testbed, name: &str) {
    let tr = bed.taskrun(name).await.unwrap().expect("TaskRun");
    assert!(tr.is_waiting(), "{name} should wait");
    assert_eq!(tr.assigned_host(), None, "{name} should have no host");
    assert!(
        bed.secret(name).await.unwrap().is_none(),
        "{name} should have no Secret"
    );
}

/// Asserts that the TaskRun was never given a host: no Secret, no host label, no
/// Allocated Event, and its user on no host.
pub async fn assert_never_allocated(bed: &Testbed, name: &str) {
    assert!(
        bed.secret(name).await.unwrap().is_none(),
        "{name} got a Secret"
    );
    if let Some(tr) = bed.taskrun(name).await.unwrap() {
        assert_eq!(tr.assigned_host(), None, "{name} got a host");
    }
    let events = bed.events_for(name).await.unwrap();
    assert!(
        events.iter().all(|e| e.reason != "Allocated"),
        "{name} was allocated: {events:?}"
    );
    let user = mpc_core::naming::UserName::for_taskrun(name, bed.namespace()).to_string();
    for h in &bed.hosts {
        assert!(
            !bed.users_on(&h.spec.name).unwrap().contains(&user),
            "{name}'s user is on {}",
            h.spec.name
        );
    }
}

/// Asserts that no host has a build user left.
pub fn assert_hosts_clean(bed: &Testbed) {
    for h in &bed.hosts {
        let users = bed.users_on(&h.spec.name).unwrap();
        assert!(users.is_empty(), "users left on {}: {users:?}", h.spec.name);
    }
}

/// The reasons of the Events on a TaskRun, sorted by name: which Events an admin
/// finds (their timestamps are taken as they are published, concurrently, so two
/// close together may swap places).
pub async fn event_reasons(bed: &Testbed, name: &str) -> Vec<String> {
    let mut reasons: Vec<String> = bed
        .events_for(name)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    reasons.sort();
    reasons
}

/// SplitMix64: a seeded generator for reproducible random choices in tests.
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Shuffles `items` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
