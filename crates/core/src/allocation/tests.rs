//! Unit tests, one per allocation rule.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::config::{self, PoolConfig};

const ARM: &str = "linux/arm64";
const S390X: &str = "linux/s390x";

/// A configuration from `(name, platform, concurrency, state)`.
fn pool(hosts: &[(&str, &str, u32, &str)]) -> PoolConfig {
    let mut data = BTreeMap::new();
    for (name, platform, concurrency, state) in hosts {
        for (field, value) in [
            ("address", "10.0.0.1".to_string()),
            ("platform", platform.to_string()),
            ("user", "root".to_string()),
            ("secret", "key".to_string()),
            ("concurrency", concurrency.to_string()),
            ("state", state.to_string()),
        ] {
            data.insert(format!("host.{name}.{field}"), value);
        }
    }
    let config = config::parse(&data);
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    config
}

fn host(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

fn key(name: &str) -> TaskRunKey {
    TaskRunKey::new("ns", name)
}

fn req(name: &str, platform: &str, created: i64) -> TaskRunRequest {
    TaskRunRequest {
        key: key(name),
        platform: Platform::parse(platform).unwrap(),
        created: crate::time::from_unix_seconds(created),
        failed_hosts: BTreeSet::new(),
    }
}

fn req_failed(name: &str, platform: &str, created: i64, failed: &[&str]) -> TaskRunRequest {
    TaskRunRequest {
        failed_hosts: failed.iter().map(|h| host(h)).collect(),
        ..req(name, platform, created)
    }
}

fn assigned(to: &str) -> Decision {
    Decision::Assigned(host(to))
}

fn assignment(taskrun: &str, platform: &str, to: &str) -> Assignment {
    Assignment {
        taskrun: key(taskrun),
        platform: Platform::parse(platform).unwrap(),
        host: host(to),
    }
}

fn used(ledger: &Ledger, name: &str) -> usize {
    ledger
        .hosts()
        .find(|u| u.host.as_str() == name)
        .map_or(0, |u| u.used)
}

#[test]
fn picks_the_host_with_most_free_slots() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 2, "active"), ("b", ARM, 4, "active")]));
    assert_eq!(l.request(req("t1", ARM, 1)), assigned("b")); // b: 4 free, a: 2
    assert_eq!(l.request(req("t2", ARM, 2)), assigned("b")); // b: 3 free
    // a and b both have 2 free: fewest used wins (a uses 0, b uses 2).
    assert_eq!(l.request(req("t3", ARM, 3)), assigned("a"));
}

#[test]
fn ties_on_free_and_used_go_to_the_first_name() {
    let mut l = Ledger::new(&pool(&[("b", ARM, 2, "active"), ("a", ARM, 2, "active")]));
    assert_eq!(l.request(req("t1", ARM, 1)), assigned("a"));
    assert_eq!(l.request(req("t2", ARM, 2)), assigned("b"));
}

#[test]
fn skips_failed_drained_disabled_and_unhealthy_hosts() {
    let mut l = Ledger::new(&pool(&[
        ("a", ARM, 8, "active"),
        ("b", ARM, 8, "drain"),
        ("c", ARM, 8, "disabled"),
        ("d", ARM, 8, "active"),
        ("e", ARM, 1, "active"),
    ]));
    assert!(l.set_health(&host("d"), false).is_empty());
    assert_eq!(l.request(req_failed("t1", ARM, 1, &["a"])), assigned("e"));
    assert_eq!(
        l.request(req_failed("t2", ARM, 2, &["a"])),
        Decision::Queued { ahead: 0 }
    );
    assert_eq!(l.request(req("t3", ARM, 3)), assigned("a"));
}

#[test]
fn a_full_pool_queues_in_creation_order() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active")]));
    assert_eq!(l.request(req("running", ARM, 0)), assigned("a"));
    assert_eq!(
        l.request(req("t20", ARM, 20)),
        Decision::Queued { ahead: 0 }
    );
    assert_eq!(
        l.request(req("t30", ARM, 30)),
        Decision::Queued { ahead: 1 }
    );
    // Older than both waiters: goes first.
    assert_eq!(
        l.request(req("t10", ARM, 10)),
        Decision::Queued { ahead: 0 }
    );
    // Equal timestamps: namespace, then name.
    let mut other_ns = req("t00", ARM, 20);
    other_ns.key = TaskRunKey::new("aaa", "zzz");
    assert_eq!(l.request(other_ns), Decision::Queued { ahead: 1 });
    assert_eq!(
        l.request(req("t19", ARM, 20)),
        Decision::Queued { ahead: 2 }
    );
    let order: Vec<String> = l
        .waiters(&Platform::parse(ARM).unwrap())
        .map(ToString::to_string)
        .collect();
    assert_eq!(order, ["ns/t10", "aaa/zzz", "ns/t19", "ns/t20", "ns/t30"]);
    assert_eq!(
        l.placement(&key("t30")),
        Some(Placement::Waiting { ahead: 4 })
    );
    assert_eq!(l.waiting(&Platform::parse(ARM).unwrap()), 5);
}

#[test]
fn request_is_idempotent() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active")]));
    assert_eq!(l.request(req("t1", ARM, 1)), assigned("a"));
    assert_eq!(l.request(req("t1", ARM, 1)), assigned("a"));
    assert_eq!(l.request(req("t2", ARM, 2)), Decision::Queued { ahead: 0 });
    assert_eq!(l.request(req("t2", ARM, 2)), Decision::Queued { ahead: 0 });
    assert_eq!(used(&l, "a"), 1);
    assert_eq!(l.len(), 2);
}

#[test]
fn release_hands_the_slot_to_the_oldest_waiter_at_once() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1));
    l.request(req("t3", ARM, 3));
    l.request(req("t2", ARM, 2));
    assert_eq!(l.release(&key("t1")), [assignment("t2", ARM, "a")]);
    assert_eq!(l.placement(&key("t2")), Some(Placement::Running(host("a"))));
    assert_eq!(
        l.placement(&key("t3")),
        Some(Placement::Waiting { ahead: 0 })
    );
    assert_eq!(l.release(&key("t2")), [assignment("t3", ARM, "a")]);
    assert!(l.release(&key("t3")).is_empty());
    assert!(l.is_empty());
    assert!(l.release(&key("unknown")).is_empty());
}

#[test]
fn a_freed_slot_skips_waiters_that_failed_on_that_host() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active"), ("b", ARM, 1, "active")]));
    l.request(req("on-a", ARM, 0));
    l.request(req("on-b", ARM, 0));
    assert_eq!(
        l.request(req_failed("old", ARM, 1, &["a"])),
        Decision::Queued { ahead: 0 }
    );
    l.request(req("young", ARM, 2));
    assert_eq!(l.release(&key("on-a")), [assignment("young", ARM, "a")]);
    assert_eq!(l.release(&key("on-b")), [assignment("old", ARM, "b")]);
}

#[test]
fn provisioning_failure_moves_the_taskrun_to_another_host() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 2, "active"), ("b", ARM, 1, "active")]));
    assert_eq!(l.request(req("t1", ARM, 1)), assigned("a"));
    let failover = l.provisioning_failed(&key("t1"), &host("a")).unwrap();
    assert_eq!(failover.decision, assigned("b"));
    assert!(failover.assigned.is_empty());
    let failed: Vec<&str> = l
        .failed_hosts(&key("t1"))
        .unwrap()
        .iter()
        .map(HostName::as_str)
        .collect();
    assert_eq!(failed, ["a"]);
    assert_eq!(used(&l, "a"), 0);
    // A stale report for a host it no longer holds changes nothing.
    let before = l.clone();
    assert_eq!(l.provisioning_failed(&key("t1"), &host("a")), None);
    assert_eq!(l.provisioning_failed(&key("nobody"), &host("a")), None);
    assert_eq!(l, before);
    assert_eq!(l.placement(&key("t1")), Some(Placement::Running(host("b"))));
}

#[test]
fn provisioning_failure_waits_when_other_hosts_are_full_and_frees_the_slot() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active"), ("b", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1)); // a
    l.request(req("t2", ARM, 2)); // b
    l.request(req("t3", ARM, 3)); // waits
    let failover = l.provisioning_failed(&key("t1"), &host("a")).unwrap();
    assert_eq!(failover.decision, Decision::Queued { ahead: 0 });
    assert_eq!(failover.assigned, [assignment("t3", ARM, "a")]);
    // When b frees, t1 (which may not use a) gets it.
    assert_eq!(l.release(&key("t2")), [assignment("t1", ARM, "b")]);
}

#[test]
fn every_host_failed_is_a_distinct_outcome() {
    let mut l = Ledger::new(&pool(&[
        ("a", ARM, 1, "active"),
        ("b", ARM, 1, "active"),
        ("c", ARM, 1, "disabled"),
    ]));
    l.request(req_failed("t1", ARM, 1, &["b"]));
    l.request(req("t2", ARM, 2)); // b
    l.request(req("t3", ARM, 3)); // waits
    let failover = l.provisioning_failed(&key("t1"), &host("a")).unwrap();
    let Decision::Rejected(rejection) = &failover.decision else {
        panic!("{failover:?}");
    };
    assert_eq!(
        rejection,
        &Rejection::AllHostsFailed {
            platform: Platform::parse(ARM).unwrap(),
            failed: vec![host("a"), host("b")]
        }
    );
    let text = rejection.to_string();
    assert!(
        text.contains("every host of platform linux/arm64 failed"),
        "{text}"
    );
    assert!(text.contains("(a, b)"), "{text}");
    assert_eq!(failover.assigned, [assignment("t3", ARM, "a")]);
    assert_eq!(l.placement(&key("t1")), None);
    // A newcomer that already failed everywhere is rejected up front.
    assert!(matches!(
        l.request(req_failed("t4", ARM, 4, &["a", "b"])),
        Decision::Rejected(Rejection::AllHostsFailed { .. })
    ));
}

#[test]
fn a_platform_without_usable_hosts_rejects() {
    let mut l = Ledger::new(&pool(&[
        ("a", ARM, 1, "disabled"),
        ("b", S390X, 1, "drain"),
    ]));
    let no_hosts = |p: &str| {
        Decision::Rejected(Rejection::NoHosts {
            platform: Platform::parse(p).unwrap(),
        })
    };
    assert_eq!(l.request(req("t1", ARM, 1)), no_hosts(ARM));
    assert_eq!(
        l.request(req("t2", "linux/ppc64le", 1)),
        no_hosts("linux/ppc64le")
    );
    // Draining hosts: wait for them to come back.
    assert_eq!(
        l.request(req("t3", S390X, 1)),
        Decision::Queued { ahead: 0 }
    );
    let text = Rejection::NoHosts {
        platform: Platform::parse(ARM).unwrap(),
    }
    .to_string();
    assert!(text.contains("must add or re-enable a host"), "{text}");
}

#[test]
fn cancel_removes_a_waiter_only() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1));
    l.request(req("t2", ARM, 2));
    l.request(req("t3", ARM, 3));
    assert!(
        !l.cancel(&key("t1")),
        "a running TaskRun is released, not cancelled"
    );
    assert!(l.cancel(&key("t2")));
    assert!(!l.cancel(&key("t2")));
    assert_eq!(
        l.placement(&key("t3")),
        Some(Placement::Waiting { ahead: 0 })
    );
    assert_eq!(l.release(&key("t1")), [assignment("t3", ARM, "a")]);
}

#[test]
fn health_down_stops_allocations_and_up_serves_waiters() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 2, "active")]));
    assert!(l.set_health(&host("a"), false).is_empty());
    assert_eq!(l.request(req("t1", ARM, 1)), Decision::Queued { ahead: 0 });
    assert_eq!(l.request(req("t2", ARM, 2)), Decision::Queued { ahead: 1 });
    assert!(l.set_health(&host("a"), false).is_empty());
    assert_eq!(
        l.set_health(&host("a"), true),
        [assignment("t1", ARM, "a"), assignment("t2", ARM, "a")]
    );
    assert!(l.set_health(&host("a"), true).is_empty());
    assert!(l.set_health(&host("nope"), true).is_empty());
    assert_eq!(used(&l, "a"), 2);
}

#[test]
fn a_removed_host_keeps_its_taskruns_but_gets_no_new_ones() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 2, "active"), ("b", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1)); // a: 2 free beats b: 1 free
    l.request(req("t2", ARM, 2)); // b: 1 free like a, but fewer used
    let outcome = l.apply_config(&pool(&[("b", ARM, 1, "active")]));
    assert_eq!(outcome, Outcome::default());
    let a = l.hosts().find(|u| u.host.as_str() == "a").unwrap();
    assert_eq!((a.platform, a.concurrency, a.used), (None, 0, 1));
    assert_eq!(l.request(req("t3", ARM, 3)), Decision::Queued { ahead: 0 });
    // Releasing the last TaskRun on the removed host forgets the host and hands
    // nothing out from it.
    assert!(l.release(&key("t1")).is_empty());
    assert!(l.hosts().all(|u| u.host.as_str() != "a"));
    assert_eq!(l.release(&key("t2")), [assignment("t3", ARM, "b")]);
}

#[test]
fn draining_keeps_running_taskruns_and_reactivating_serves_waiters() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 2, "active")]));
    l.request(req("t1", ARM, 1));
    assert_eq!(
        l.apply_config(&pool(&[("a", ARM, 2, "drain")])),
        Outcome::default()
    );
    assert_eq!(used(&l, "a"), 1);
    assert_eq!(l.request(req("t2", ARM, 2)), Decision::Queued { ahead: 0 });
    assert!(l.release(&key("t1")).is_empty());
    let outcome = l.apply_config(&pool(&[("a", ARM, 2, "active")]));
    assert_eq!(outcome.assigned, [assignment("t2", ARM, "a")]);
}

#[test]
fn lowered_concurrency_takes_effect_as_taskruns_finish() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 3, "active")]));
    for (i, name) in ["t1", "t2", "t3"].iter().enumerate() {
        assert_eq!(
            l.request(req(name, ARM, i64::try_from(i).unwrap())),
            assigned("a")
        );
    }
    l.request(req("w1", ARM, 10));
    l.request(req("w2", ARM, 11));
    assert_eq!(
        l.apply_config(&pool(&[("a", ARM, 1, "active")])),
        Outcome::default()
    );
    assert_eq!(used(&l, "a"), 3);
    assert!(l.release(&key("t1")).is_empty()); // 2 running > 1
    assert!(l.release(&key("t2")).is_empty()); // 1 running = 1
    assert_eq!(l.release(&key("t3")), [assignment("w1", ARM, "a")]);
}

#[test]
fn raised_concurrency_and_new_hosts_serve_waiters_at_once() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1));
    for (i, name) in ["w1", "w2", "w3", "w4"].iter().enumerate() {
        l.request(req(name, ARM, 10 + i64::try_from(i).unwrap()));
    }
    let outcome = l.apply_config(&pool(&[("a", ARM, 2, "active"), ("b", ARM, 2, "active")]));
    assert!(outcome.rejected.is_empty());
    // Oldest first, each to the host with most free slots.
    assert_eq!(
        outcome.assigned,
        [
            assignment("w1", ARM, "b"),
            assignment("w2", ARM, "a"),
            assignment("w3", ARM, "b"),
        ]
    );
    assert_eq!(
        l.placement(&key("w4")),
        Some(Placement::Waiting { ahead: 0 })
    );
}

#[test]
fn a_host_moved_to_another_platform_keeps_its_taskruns() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active"), ("z", S390X, 1, "active")]));
    l.request(req("t1", ARM, 1));
    l.request(req("z1", S390X, 1));
    l.request(req("z2", S390X, 2));
    let outcome = l.apply_config(&pool(&[
        ("a", S390X, 1, "active"),
        ("z", S390X, 1, "active"),
    ]));
    // Its arm64 TaskRun still fills its only slot; the arm64 platform is gone, but
    // nobody waits for it.
    assert_eq!(outcome, Outcome::default());
    assert_eq!(l.release(&key("t1")), [assignment("z2", S390X, "a")]);
}

#[test]
fn waiters_of_a_platform_that_lost_every_host_are_rejected() {
    let mut l = Ledger::new(&pool(&[
        ("a", ARM, 1, "active"),
        ("b", ARM, 1, "active"),
        ("z", S390X, 1, "active"),
    ]));
    l.request(req("t1", ARM, 1)); // a
    l.request(req("t2", ARM, 1)); // b
    l.request(req("w1", ARM, 2));
    l.request(req_failed("w2", ARM, 3, &["b"]));
    // Removing b leaves a, which both waiters may use: nobody is rejected.
    let outcome = l.apply_config(&pool(&[("a", ARM, 1, "active"), ("z", S390X, 1, "active")]));
    assert_eq!(outcome, Outcome::default());
    // a disabled: nothing left for arm64 waiters.
    let outcome = l.apply_config(&pool(&[
        ("a", ARM, 1, "disabled"),
        ("z", S390X, 1, "active"),
    ]));
    let no_hosts = Rejection::NoHosts {
        platform: Platform::parse(ARM).unwrap(),
    };
    assert_eq!(
        outcome.rejected,
        [
            Rejected {
                taskrun: key("w1"),
                rejection: no_hosts.clone(),
            },
            Rejected {
                taskrun: key("w2"),
                rejection: no_hosts,
            },
        ]
    );
    assert_eq!(l.placement(&key("w1")), None);
    assert_eq!(l.waiting(&Platform::parse(ARM).unwrap()), 0);
    assert_eq!(used(&l, "a"), 1, "the running TaskRuns stay");
    assert_eq!(used(&l, "b"), 1, "the running TaskRuns stay");
}

#[test]
fn waiters_whose_remaining_hosts_all_failed_are_rejected_on_config_change() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 1, "active"), ("b", ARM, 1, "active")]));
    l.request(req("t1", ARM, 1)); // a
    l.request(req("t2", ARM, 1)); // b
    l.request(req_failed("w", ARM, 2, &["a"]));
    let outcome = l.apply_config(&pool(&[("a", ARM, 1, "active")]));
    assert_eq!(
        outcome.rejected,
        [Rejected {
            taskrun: key("w"),
            rejection: Rejection::AllHostsFailed {
                platform: Platform::parse(ARM).unwrap(),
                failed: vec![host("a")],
            },
        }]
    );
}

#[test]
fn rebuild_restores_slots_and_queue_order() {
    let config = pool(&[("a", ARM, 1, "active"), ("b", ARM, 1, "active")]);
    let mut before = Ledger::new(&config);
    before.request(req("t1", ARM, 1));
    before.request(req("t2", ARM, 2));
    before.request(req_failed("w1", ARM, 3, &["a"]));
    before.request(req("w2", ARM, 4));
    let recorded = vec![
        RecordedTaskRun {
            request: req("w2", ARM, 4),
            assigned_host: None,
        },
        RecordedTaskRun {
            request: req("t2", ARM, 2),
            assigned_host: Some(host("b")),
        },
        RecordedTaskRun {
            request: req_failed("w1", ARM, 3, &["a"]),
            assigned_host: None,
        },
        RecordedTaskRun {
            request: req("t1", ARM, 1),
            assigned_host: Some(host("a")),
        },
    ];
    let (after, outcome) = Ledger::rebuild(&config, recorded);
    assert_eq!(outcome, Outcome::default());
    assert_eq!(after, before);
}

#[test]
fn rebuild_trusts_labels_beyond_concurrency_and_for_removed_hosts() {
    let config = pool(&[("a", ARM, 1, "active")]);
    let recorded = ["t1", "t2"]
        .iter()
        .map(|n| RecordedTaskRun {
            request: req(n, ARM, 1),
            assigned_host: Some(host("a")),
        })
        .chain([
            RecordedTaskRun {
                request: req("old", ARM, 0),
                assigned_host: Some(host("gone")),
            },
            RecordedTaskRun {
                request: req("w", ARM, 5),
                assigned_host: None,
            },
        ]);
    let (mut l, outcome) = Ledger::rebuild(&config, recorded);
    assert_eq!(outcome, Outcome::default());
    assert_eq!(used(&l, "a"), 2);
    assert_eq!(used(&l, "gone"), 1);
    assert!(l.release(&key("old")).is_empty());
    assert!(l.release(&key("t1")).is_empty());
    assert_eq!(l.release(&key("t2")), [assignment("w", ARM, "a")]);
}

#[test]
fn rebuild_serves_and_rejects_waiters() {
    let config = pool(&[("a", ARM, 2, "active")]);
    let recorded = vec![
        RecordedTaskRun {
            request: req("w1", ARM, 1),
            assigned_host: None,
        },
        RecordedTaskRun {
            request: req_failed("w2", ARM, 2, &["a"]),
            assigned_host: None,
        },
        RecordedTaskRun {
            request: req("w1", ARM, 1),
            assigned_host: None,
        },
    ];
    let (l, outcome) = Ledger::rebuild(&config, recorded);
    assert_eq!(outcome.assigned, [assignment("w1", ARM, "a")]);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].taskrun, key("w2"));
    assert_eq!(l.len(), 1);
}

#[test]
fn host_usage_reports_slots() {
    let mut l = Ledger::new(&pool(&[("a", ARM, 3, "drain")]));
    l.set_health(&host("a"), false);
    let usage: Vec<HostUsage> = l.hosts().collect();
    assert_eq!(
        usage,
        [HostUsage {
            host: host("a"),
            platform: Some(Platform::parse(ARM).unwrap()),
            state: Some(HostState::Drain),
            concurrency: 3,
            used: 0,
            healthy: false,
        }]
    );
    assert_eq!(l.running_on(&host("a")).count(), 0);
}
