//! Decision throughput of the allocation ledger at scale: 500 hosts (concurrency 4)
//! over 20 platforms, every slot taken, and 10 000 TaskRuns queued (500 per platform).
//!
//! Run with `cargo bench --bench allocation`. Each measured step keeps the state the
//! same size, so every iteration decides against the full ledger.

// Test code: a failed unwrap is how a test fails, and its numbers are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mpc_core::allocation::{
    Decision, Ledger, Placement, RecordedTaskRun, TaskRunKey, TaskRunRequest,
};
use mpc_core::config::{self, HostName, PoolConfig};
use mpc_core::platform::Platform;

const PLATFORMS: usize = 20;
const HOSTS: usize = 500;
const CONCURRENCY: usize = 4;
const QUEUED: usize = 10_000;

fn platform(p: usize) -> Platform {
    Platform::parse(&format!("linux/arch{p}")).expect("valid platform")
}

fn pool() -> PoolConfig {
    let mut data = BTreeMap::new();
    for h in 0..HOSTS {
        for (field, value) in [
            ("address", format!("10.0.{}.{}", h / 250, h % 250)),
            ("platform", platform(h % PLATFORMS).to_string()),
            ("user", "root".to_owned()),
            ("secret", "ssh-key".to_owned()),
            ("concurrency", CONCURRENCY.to_string()),
        ] {
            data.insert(format!("host.host-{h}.{field}"), value);
        }
    }
    let config = config::parse(&data);
    assert!(config.problems.is_empty());
    config
}

/// TaskRun number `n` is of platform `n % PLATFORMS`, created at second `n`.
fn request(n: usize) -> TaskRunRequest {
    TaskRunRequest {
        key: TaskRunKey::new(format!("tenant-{}", n % 97), format!("build-{n}")),
        platform: platform(n % PLATFORMS),
        created: mpc_core::time::from_unix_seconds(i64::try_from(n).unwrap_or(i64::MAX)),
        failed_hosts: BTreeSet::new(),
    }
}

fn number(key: &TaskRunKey) -> usize {
    key.name["build-".len()..].parse().expect("build number")
}

/// A newcomer of the same platform as `key`, numbered from `next` on.
fn newcomer_like(key: &TaskRunKey, next: &mut usize) -> TaskRunRequest {
    let wanted = number(key) % PLATFORMS;
    let n = *next + (PLATFORMS + wanted - *next % PLATFORMS) % PLATFORMS;
    *next = n + 1;
    request(n)
}

/// The full ledger, the running TaskRuns (oldest first) and the next TaskRun number.
fn full_ledger(config: &PoolConfig) -> (Ledger, VecDeque<TaskRunKey>, usize) {
    let mut ledger = Ledger::new(config);
    let mut running = VecDeque::new();
    let mut n = 0;
    while running.len() < HOSTS * CONCURRENCY {
        let r = request(n);
        let key = r.key.clone();
        assert!(matches!(ledger.request(r), Decision::Assigned(_)));
        running.push_back(key);
        n += 1;
    }
    for _ in 0..QUEUED {
        assert!(matches!(
            ledger.request(request(n)),
            Decision::Queued { .. }
        ));
        n += 1;
    }
    (ledger, running, n)
}

fn decisions(c: &mut Criterion) {
    let config = pool();
    let mut group = c.benchmark_group("full pool, 10k queued");
    group.throughput(Throughput::Elements(1));

    // A new TaskRun finds every slot taken and is queued (then leaves again).
    let (mut ledger, _, mut n) = full_ledger(&config);
    group.bench_function("request: queue a newcomer", |b| {
        b.iter(|| {
            let r = request(n);
            let key = r.key.clone();
            black_box(ledger.request(r));
            ledger.cancel(&key);
            n += 1;
        });
    });

    // A TaskRun finishes: its slot goes to the oldest waiter; a newcomer refills the
    // queue so the sizes stay put.
    let (mut ledger, mut running, mut n) = full_ledger(&config);
    group.bench_function("release: hand the slot to the oldest waiter", |b| {
        b.iter(|| {
            let done = running.pop_front().expect("running TaskRun");
            for a in black_box(ledger.release(&done)) {
                running.push_back(a.taskrun);
            }
            ledger.request(newcomer_like(&done, &mut n));
        });
    });

    // Provisioning fails on the host: the TaskRun is re-queued, the waiter at the head
    // gets the slot.
    // The failed TaskRun then finishes and a newcomer takes its place, so failures do
    // not pile up.
    let (mut ledger, mut running, mut n) = full_ledger(&config);
    group.bench_function("provisioning failed: fail over", |b| {
        b.iter(|| {
            let key = running.pop_front().expect("running TaskRun");
            let Some(Placement::Running(host)) = ledger.placement(&key) else {
                panic!("{key} is not running");
            };
            let failover = black_box(ledger.provisioning_failed(&key, &host)).expect("running");
            for a in failover.assigned {
                running.push_back(a.taskrun);
            }
            assert!(matches!(failover.decision, Decision::Queued { .. }));
            ledger.cancel(&key);
            ledger.request(newcomer_like(&key, &mut n));
        });
    });

    // A host goes down and comes back: it serves 4 waiters at once.
    let (mut ledger, _, mut n) = full_ledger(&config);
    let host = HostName::parse("host-0").expect("host name");
    group.bench_function("health: host back up serves its waiters", |b| {
        b.iter(|| {
            let on_host: Vec<TaskRunKey> = ledger.running_on(&host).cloned().collect();
            ledger.set_health(&host, false);
            for key in &on_host {
                ledger.release(key);
                ledger.request(newcomer_like(key, &mut n));
            }
            let assigned = black_box(ledger.set_health(&host, true));
            assert_eq!(assigned.len(), CONCURRENCY);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("whole ledger");
    let (ledger, running, _) = full_ledger(&config);
    let recorded: Vec<RecordedTaskRun> = running
        .iter()
        .map(|key| RecordedTaskRun {
            request: request(number(key)),
            assigned_host: match ledger.placement(key) {
                Some(Placement::Running(h)) => Some(h),
                _ => None,
            },
        })
        .chain(
            (HOSTS * CONCURRENCY..HOSTS * CONCURRENCY + QUEUED).map(|n| RecordedTaskRun {
                request: request(n),
                assigned_host: None,
            }),
        )
        .collect();
    group.throughput(Throughput::Elements(recorded.len() as u64));
    group.bench_function("rebuild 12k TaskRuns after a restart", |b| {
        b.iter_batched(
            || recorded.clone(),
            |recorded| black_box(Ledger::rebuild(&config, recorded)),
            BatchSize::LargeInput,
        );
    });
    let (rebuilt, outcome) = Ledger::rebuild(&config, recorded.clone());
    assert!(outcome.assigned.is_empty() && rebuilt == ledger);

    group.throughput(Throughput::Elements(1));
    let mut ledger = ledger;
    group.bench_function("apply an unchanged 500-host config", |b| {
        b.iter(|| black_box(ledger.apply_config(&config)));
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
