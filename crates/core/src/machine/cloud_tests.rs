//! Scenario tests of cloud VMs, one per rule of contract §6.

use super::tests::{Command, Feed, T0, at, candidate, config_with, key, present, start_core};
use super::*;
use crate::cloud::{CloudInstance, InstanceId, InstanceState, parse_taskrun_id};
use crate::time::from_unix_seconds;

const ARM: &str = "linux/arm64";

fn arm() -> Platform {
    Platform::parse(ARM).unwrap()
}

fn dynamic_config(max: &str) -> PoolConfig {
    aws_config("dynamic-platforms", max, &[("allocation-timeout", "300")])
}

/// `linux/arm64` on AWS, listed in `list`, with `extra` fields of the platform.
fn aws_config(list: &str, max: &str, extra: &[(&str, &str)]) -> PoolConfig {
    aws_platform_config(ARM, "prod-arm64", list, max, extra)
}

/// `platform` on AWS with instance tag `tag`, listed in `list`, with `extra` fields of
/// the platform.
fn aws_platform_config(
    platform: &str,
    tag: &str,
    list: &str,
    max: &str,
    extra: &[(&str, &str)],
) -> PoolConfig {
    let label = platform.replace('/', "-");
    let fields: Vec<(String, &str)> = [
        ("type", "aws"),
        ("region", "us-east-1"),
        ("ami", "ami-1"),
        ("instance-type", "m6g.large"),
        ("key-name", "kp"),
        ("aws-secret", "aws-account"),
        ("ssh-secret", "aws-ssh"),
        ("max-instances", max),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (format!("dynamic.{label}.{k}"), *v))
    .collect();
    let mut pairs: Vec<(&str, &str)> = vec![(list, platform), ("instance-tag", tag)];
    pairs.extend(fields.iter().map(|(k, v)| (k.as_str(), *v)));
    config_with(&[], &pairs)
}

fn id(n: u32) -> InstanceId {
    InstanceId::parse(&format!("i-{n:017x}")).unwrap()
}

fn instance(n: u32, taskrun: &str, launched_secs: i64) -> CloudInstance {
    CloudInstance {
        id: id(n),
        state: InstanceState::Running,
        instance_type: "m6g.large".into(),
        taskrun: parse_taskrun_id(&format!("tenant:{taskrun}")),
        launched: from_unix_seconds(launched_secs),
        address: Some(format!("127.77.1.{}", n % 250)),
    }
}

/// A core with the dynamic platform listed (empty) once.
fn listed(max: &str) -> Core {
    let (mut core, _) = start_core(
        CoreSettings::default(),
        present(dynamic_config(max)),
        Vec::new(),
        T0,
    );
    core.feed(Input::CloudListing(arm(), Vec::new()), T0);
    core
}

fn launches(out: &[Command]) -> Vec<LaunchOrder> {
    out.iter()
        .filter_map(|c| match c {
            Command::Launch(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn vm_orders(out: &[Command]) -> Vec<VmOrder> {
    out.iter()
        .filter_map(|c| match c {
            Command::ProvisionVm(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn releases(out: &[Command]) -> Vec<VmReleaseOrder> {
    out.iter()
        .filter_map(|c| match c {
            Command::ReleaseVm(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn fail_message(out: &[Command]) -> Option<String> {
    out.iter().find_map(|c| match c {
        Command::Fail(o) => Some(o.message.clone()),
        _ => None,
    })
}

fn finished(mut obs: Observed) -> Observed {
    obs.finished = true;
    obs
}

/// Launches `name` and answers its launch with instance `n`.
fn launched(core: &mut Core, name: &str, n: u32) -> Vec<Command> {
    core.feed(Input::Observed(candidate(name, ARM, 0)), T0);
    core.feed(
        Input::Report(key(name), Report::Launched(id(n))),
        T0 + 1_000,
    )
}

#[test]
fn a_taskrun_gets_a_vm_launched_prepared_and_terminated() {
    let mut core = listed("2");
    let out = core.feed(Input::Observed(candidate("b1", ARM, 0)), T0);
    let [launch] = &launches(&out)[..] else {
        panic!("one launch: {out:?}");
    };
    assert_eq!(launch.attempt, 1);
    assert!(launch.spec.client_token.starts_with("mpc-uidb1-"));
    assert!(
        launch
            .spec
            .tags
            .contains(&("taskRunID".into(), "tenant:b1".into()))
    );
    let out = core.feed(
        Input::Report(key("b1"), Report::Launched(id(1))),
        T0 + 1_000,
    );
    let [vm] = &vm_orders(&out)[..] else {
        panic!("provision the VM: {out:?}");
    };
    assert_eq!(vm.instance, id(1));
    assert_eq!(
        vm.user.as_str(),
        UserName::for_taskrun("b1", "tenant").as_str()
    );
    // allocation-timeout: 300 s from the slot.
    assert_eq!(vm.deadline, at(T0 + 300_000));
    let out = core.feed(Input::Report(key("b1"), Report::Provisioned), T0 + 60_000);
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Metric(Metric::AllocationTime { took, .. }) if *took == std::time::Duration::from_secs(60)
    )));
    assert_eq!(core.gauges().platforms[ARM].running, 1);
    assert_eq!(core.gauges().platforms[ARM].pool_size, 2);
    assert!(core.gauges().platforms[ARM].cloud);

    let out = core.feed(
        Input::Observed(finished(candidate("b1", ARM, 0))),
        T0 + 90_000,
    );
    let [release] = &releases(&out)[..] else {
        panic!("terminate: {out:?}");
    };
    assert_eq!(release.instance, Some(id(1)));
    assert_eq!(
        release.target.as_ref().map(|t| t.region.as_str()),
        Some("us-east-1")
    );
    let out = core.feed(Input::Report(key("b1"), Report::Released), T0 + 91_000);
    assert!(
        out.iter()
            .any(|c| matches!(c, Command::Metric(Metric::Termination { .. })))
    );
    assert_eq!(core.gauges().platforms[ARM].running, 0);
}

#[test]
fn nothing_is_launched_before_the_first_listing_and_untracked_instances_count() {
    let (mut core, _) = start_core(
        CoreSettings::default(),
        present(dynamic_config("2")),
        Vec::new(),
        T0,
    );
    let out = core.feed(Input::Observed(candidate("b1", ARM, 0)), T0);
    assert!(launches(&out).is_empty(), "{out:?}");
    assert!(out.iter().any(|c| matches!(c, Command::Wait(_))));
    core.feed(Input::Report(key("b1"), Report::Done), T0);
    core.feed(Input::Observed(candidate("b2", ARM, 1)), T0);
    core.feed(Input::Report(key("b2"), Report::Done), T0);
    // One instance runs for a TaskRun nobody tracks (a crash's leftover, young).
    let out = core.feed(
        Input::CloudListing(arm(), vec![instance(9, "gone", T0 / 1000)]),
        T0 + 1_000,
    );
    let granted: Vec<String> = launches(&out)
        .iter()
        .map(|l| l.taskrun.key.name.clone())
        .collect();
    assert_eq!(granted, ["b1"], "only one slot is free");
    assert!(
        !out.iter().any(|c| matches!(c, Command::Terminate(_))),
        "too young to sweep"
    );
    // Past the grace period it is swept; the next listing no longer shows it.
    let later = T0 + 400_000;
    let out = core.feed(
        Input::CloudListing(arm(), vec![instance(9, "gone", T0 / 1000)]),
        later,
    );
    assert!(out.contains(&Command::Terminate(vec![id(9)])), "{out:?}");
    let out = core.feed(Input::CloudListing(arm(), Vec::new()), later + 1_000);
    let granted: Vec<String> = launches(&out)
        .iter()
        .map(|l| l.taskrun.key.name.clone())
        .collect();
    assert_eq!(granted, ["b2"]);
}

#[test]
fn at_the_limit_taskruns_wait_fifo_and_a_terminated_vm_hands_its_slot_on() {
    let mut core = listed("1");
    launched(&mut core, "first", 1);
    let out = core.feed(Input::Observed(candidate("late", ARM, 9)), T0);
    assert!(out.iter().any(|c| matches!(c, Command::Wait(_))));
    core.feed(Input::Report(key("late"), Report::Done), T0);
    let out = core.feed(Input::Observed(candidate("early", ARM, 5)), T0);
    let waiting = out.iter().find_map(|c| match c {
        Command::Event(e) if e.reason == EventReason::Waiting => Some(e.note.clone()),
        _ => None,
    });
    assert!(
        waiting
            .as_deref()
            .is_some_and(|n| n.contains("maximum of 1 instances")),
        "{waiting:?}"
    );
    core.feed(Input::Report(key("early"), Report::Done), T0);
    core.feed(Input::Observed(finished(candidate("first", ARM, 0))), T0);
    // Its provisioning was in flight: once it reports, the VM is terminated.
    let out = core.feed(Input::Report(key("first"), Report::Provisioned), T0);
    assert_eq!(releases(&out).len(), 1, "{out:?}");
    assert!(
        launches(&out).is_empty(),
        "the slot is taken until the VM is gone"
    );
    let out = core.feed(Input::Report(key("first"), Report::Released), T0);
    let granted: Vec<String> = launches(&out)
        .iter()
        .map(|l| l.taskrun.key.name.clone())
        .collect();
    assert_eq!(granted, ["early"], "the oldest waiter gets the slot");
}

#[test]
fn launches_that_fail_for_capacity_are_retried_then_fail_naming_the_code() {
    let mut core = listed("2");
    core.feed(Input::Observed(candidate("b", ARM, 0)), T0);
    let capacity = || {
        Report::LaunchFailed(LaunchFailure {
            code: "InsufficientInstanceCapacity".into(),
            message: "no m6g.large capacity in us-east-1a".into(),
            retryable: true,
            ambiguous: false,
        })
    };
    let mut now = T0;
    let mut tokens = Vec::new();
    for attempt in 1..MAX_LAUNCH_ATTEMPTS {
        let out = core.feed(Input::Report(key("b"), capacity()), now);
        assert!(launches(&out).is_empty(), "retried after a backoff");
        now = core.next_deadline().unwrap().as_millisecond();
        let out = core.feed(Input::Tick, now);
        let [launch] = &launches(&out)[..] else {
            panic!("attempt {}: {out:?}", attempt + 1);
        };
        assert_eq!(launch.attempt, attempt + 1);
        tokens.push(launch.spec.client_token.clone());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 2, "each attempt has its own client token");
    let out = core.feed(Input::Report(key("b"), capacity()), now);
    // No instance to terminate; marks go, then the error Secret.
    let [release] = &releases(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(release.instance, None);
    let out = core.feed(Input::Report(key("b"), Report::Released), now);
    let message = fail_message(&out).expect("error Secret");
    for part in [
        "no linux/arm64 VM could be launched",
        "m6g.large",
        "3 time(s)",
        "InsufficientInstanceCapacity",
        "run the build again later",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert_eq!(
        core.gauges().platforms[ARM].running,
        0,
        "the slot is free again"
    );
}

#[test]
fn a_launch_without_an_answer_is_tried_again_with_the_same_client_token() {
    let mut core = listed("2");
    let out = core.feed(Input::Observed(candidate("b", ARM, 0)), T0);
    let first = launches(&out)[0].spec.client_token.clone();
    core.feed(
        Input::Report(
            key("b"),
            Report::LaunchFailed(LaunchFailure {
                code: "Transport".into(),
                message: "connection reset".into(),
                retryable: true,
                ambiguous: true,
            }),
        ),
        T0,
    );
    let retry = core.next_deadline().unwrap().as_millisecond();
    let out = core.feed(Input::Tick, retry);
    let [again] = &launches(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        again.spec.client_token, first,
        "it may have launched: same token"
    );
    assert_eq!(again.attempt, 1);
}

#[test]
fn a_launch_refused_for_good_fails_at_once() {
    let mut core = listed("2");
    core.feed(Input::Observed(candidate("b", ARM, 0)), T0);
    core.feed(
        Input::Report(
            key("b"),
            Report::LaunchFailed(LaunchFailure {
                code: "InvalidAMIID.NotFound".into(),
                message: "The image id '[ami-1]' does not exist".into(),
                retryable: false,
                ambiguous: false,
            }),
        ),
        T0,
    );
    let out = core.feed(Input::Report(key("b"), Report::Released), T0);
    let message = fail_message(&out).expect("error Secret");
    assert!(message.contains("1 time(s)") && message.contains("InvalidAMIID.NotFound"));
    assert!(message.contains("a cluster admin must fix the platform's settings"));
}

#[test]
fn a_vm_that_cannot_be_prepared_is_terminated_before_the_error_secret() {
    let mut core = listed("2");
    launched(&mut core, "b", 1);
    let out = core.feed(
        Input::Report(
            key("b"),
            Report::ProvisionFailed(HostFailure {
                kind: HostFailureKind::Unreachable,
                message: "no address within the allocation timeout of 300s".into(),
            }),
        ),
        T0 + 300_000,
    );
    assert!(fail_message(&out).is_none(), "terminate first");
    let [release] = &releases(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(release.instance, Some(id(1)));
    let out = core.feed(Input::Report(key("b"), Report::Released), T0 + 301_000);
    let message = fail_message(&out).expect("error Secret");
    assert!(
        message.contains("instance i-00000000000000001"),
        "{message}"
    );
    assert!(message.contains("allocation timeout"), "{message}");
}

#[test]
fn termination_is_retried_and_the_slot_stays_taken_until_it_succeeds() {
    let mut core = listed("1");
    launched(&mut core, "b", 1);
    core.feed(Input::Report(key("b"), Report::Provisioned), T0);
    core.feed(Input::Observed(finished(candidate("b", ARM, 0))), T0);
    core.feed(Input::Observed(candidate("next", ARM, 1)), T0);
    core.feed(Input::Report(key("next"), Report::Done), T0);
    let out = core.feed(
        Input::Report(
            key("b"),
            Report::CleanupFailed(HostFailure {
                kind: HostFailureKind::Unreachable,
                message: "RequestLimitExceeded".into(),
            }),
        ),
        T0,
    );
    assert!(launches(&out).is_empty(), "{out:?}");
    let retry = core.next_deadline().unwrap().as_millisecond();
    let out = core.feed(Input::Tick, retry);
    assert_eq!(releases(&out).len(), 1, "terminated again");
    let out = core.feed(Input::Report(key("b"), Report::Released), retry);
    assert_eq!(launches(&out).len(), 1, "now the waiter launches");
}

#[test]
fn a_restart_resumes_every_vm_and_counts_its_slot_first() {
    let mut booting = candidate("booting", ARM, 0);
    booting.cloud = true;
    booting.finalizer = true;
    booting.instance = Some(id(1));
    let mut launching = candidate("launching", ARM, 1);
    launching.cloud = true;
    launching.finalizer = true;
    launching.launch_attempt = 2;
    let mut done = candidate("done", ARM, 2);
    done.cloud = true;
    done.finalizer = true;
    done.instance = Some(id(3));
    done.finished = true;
    let newcomer = candidate("newcomer", ARM, 3);
    let (mut core, out) = start_core(
        CoreSettings::default(),
        present(dynamic_config("2")),
        vec![booting, launching, done, newcomer],
        T0,
    );
    assert_eq!(vm_orders(&out).len(), 1, "{out:?}");
    let [launch] = &launches(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(launch.attempt, 2, "the same attempt: the same client token");
    assert_eq!(
        releases(&out)
            .iter()
            .map(|r| r.instance.clone())
            .collect::<Vec<_>>(),
        [Some(id(3))]
    );
    // Three slots are taken by the restored TaskRuns (limit 2): the newcomer waits,
    // even after the listing.
    let listing = vec![
        instance(1, "booting", T0 / 1000),
        instance(2, "launching", T0 / 1000),
        instance(3, "done", T0 / 1000),
    ];
    let out = core.feed(Input::CloudListing(arm(), listing), T0 + 1_000);
    assert!(launches(&out).is_empty(), "{out:?}");
    assert!(
        !out.iter().any(|c| matches!(c, Command::Terminate(_))),
        "all are claimed"
    );
}

#[test]
fn a_taskrun_that_finishes_while_its_launch_is_in_flight_gets_its_vm_terminated() {
    let mut core = listed("2");
    core.feed(Input::Observed(candidate("b", ARM, 0)), T0);
    core.feed(Input::Observed(finished(candidate("b", ARM, 0))), T0);
    let out = core.feed(Input::Report(key("b"), Report::Launched(id(7))), T0);
    let [release] = &releases(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(release.instance, Some(id(7)));
}

#[test]
fn windows_and_macos_pools_and_ibm_platforms_get_an_error_secret_that_says_so() {
    let mut data: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (platform, list, kind) in [
        ("windows/amd64", "dynamic-pool-platforms", "aws"),
        ("linux/s390x", "dynamic-platforms", "ibmz"),
    ] {
        data.insert(list.into(), platform.into());
        let label = platform.replace('/', "-");
        for (k, v) in [
            ("type", kind),
            ("max-instances", "2"),
            ("ssh-secret", "s390x-ssh"),
            ("concurrency", "2"),
            ("max-age", "60"),
        ] {
            data.insert(format!("dynamic.{label}.{k}"), v.into());
        }
    }
    let config = crate::config::parse(&data);
    let (mut core, _) = start_core(CoreSettings::default(), present(config), Vec::new(), T0);
    let out = core.feed(Input::Observed(candidate("w", "windows/amd64", 0)), T0);
    let message = fail_message(&out).expect("error Secret");
    assert!(message.contains("cannot be shared in a pool"), "{message}");
    let out = core.feed(Input::Observed(candidate("z", "linux/s390x", 0)), T0);
    let message = fail_message(&out).expect("error Secret");
    assert!(message.contains("IBM Cloud VMs"), "{message}");
}

// ----- dynamic pools -----

fn pool_config(max: &str, concurrency: &str, max_age_minutes: &str) -> PoolConfig {
    aws_config(
        "dynamic-pool-platforms",
        max,
        &[("concurrency", concurrency), ("max-age", max_age_minutes)],
    )
}

fn pool_launches(out: &[Command]) -> usize {
    out.iter()
        .filter(|c| matches!(c, Command::LaunchPool(_)))
        .count()
}

fn provisioned_on(out: &[Command]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Provision(o) => Some((o.taskrun.key.name.clone(), o.host.name.to_string())),
            _ => None,
        })
        .collect()
}

fn host_name(n: u32) -> HostName {
    HostName::parse(id(n).as_str()).unwrap()
}

/// A pool core, listed empty once.
fn pool(max: &str, concurrency: &str, max_age: &str) -> Core {
    let (mut core, _) = start_core(
        CoreSettings::default(),
        present(pool_config(max, concurrency, max_age)),
        Vec::new(),
        T0,
    );
    core.feed(Input::CloudListing(arm(), Vec::new()), T0);
    core
}

/// Instance `n` of the pool came up at `address` and its first probe passed.
fn instance_up(core: &mut Core, n: u32, ms: i64) -> Vec<Command> {
    let out = core.feed(
        Input::PoolLaunched(arm(), Ok((id(n), Some(format!("127.77.1.{n}"))))),
        ms,
    );
    assert!(
        out.contains(&Command::Probe {
            host: host_name(n),
            reason: None
        }),
        "a new instance is probed before use: {out:?}"
    );
    core.feed(Input::Health(host_name(n), true), ms)
}

#[test]
fn a_pool_launches_for_its_waiters_up_to_max_instances_and_shares_each_instance() {
    let mut core = pool("2", "2", "60");
    let mut launched = 0;
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let out = core.feed(
            Input::Observed(candidate(name, ARM, i64::try_from(i).unwrap())),
            T0,
        );
        assert!(fail_message(&out).is_none(), "pool TaskRuns wait: {out:?}");
        launched += pool_launches(&out);
        core.feed(Input::Report(key(name), Report::Done), T0);
    }
    assert_eq!(
        launched, 2,
        "five waiters, two per instance, at most two instances"
    );
    let out = instance_up(&mut core, 1, T0 + 1_000);
    assert_eq!(
        provisioned_on(&out),
        [
            ("a".into(), host_name(1).to_string()),
            ("b".into(), host_name(1).to_string())
        ]
    );
    let out = instance_up(&mut core, 2, T0 + 2_000);
    assert_eq!(provisioned_on(&out).len(), 2, "{out:?}");
    // At the limit: "e" waits for a free slot, no third instance.
    assert_eq!(pool_launches(&out), 0);
    assert_eq!(core.gauges().platforms[ARM].pool_size, 4);
}

#[test]
fn an_old_instance_drains_and_is_terminated_once_idle() {
    let mut core = pool("1", "2", "1");
    core.feed(Input::Observed(candidate("a", ARM, 0)), T0);
    core.feed(Input::Report(key("a"), Report::Done), T0);
    instance_up(&mut core, 1, T0);
    core.feed(Input::Report(key("a"), Report::Provisioned), T0);
    // Past max-age (one minute) it runs "a": no new TaskRun, no termination yet.
    let later = T0 + 61_000;
    let out = core.feed(Input::Tick, later);
    assert!(
        !out.iter().any(|c| matches!(c, Command::Terminate(_))),
        "{out:?}"
    );
    let out = core.feed(Input::Observed(candidate("b", ARM, 1)), later);
    assert!(
        provisioned_on(&out).is_empty(),
        "an old instance takes nothing new"
    );
    core.feed(Input::Report(key("b"), Report::Done), later);
    // "a" finishes: the instance is idle and retired; "b" gets a new instance.
    core.feed(Input::Observed(finished(candidate("a", ARM, 0))), later);
    let out = core.feed(Input::Report(key("a"), Report::Released), later);
    assert!(out.contains(&Command::Terminate(vec![id(1)])), "{out:?}");
    assert_eq!(
        pool_launches(&out),
        0,
        "still at the limit until it is gone"
    );
    let out = core.feed(Input::CloudListing(arm(), Vec::new()), later + 1_000);
    assert_eq!(pool_launches(&out), 1, "{out:?}");
}

#[test]
fn taskruns_resumed_on_a_pool_instance_wait_for_the_listing() {
    let mut resumed = candidate("a", ARM, 0);
    resumed.finalizer = true;
    resumed.assigned_host = Some(id(1).as_str().to_owned());
    let (mut core, out) = start_core(
        CoreSettings::default(),
        present(pool_config("2", "2", "60")),
        vec![resumed],
        T0,
    );
    assert!(provisioned_on(&out).is_empty(), "{out:?}");
    assert!(fail_message(&out).is_none(), "{out:?}");
    // Its slot is its own (from the label): the work resumes as soon as the
    // instance is known again, while the new host is probed for others.
    let out = core.feed(
        Input::CloudListing(arm(), vec![instance(1, "whoever", T0 / 1000)]),
        T0,
    );
    assert!(out.contains(&Command::Probe {
        host: host_name(1),
        reason: None
    }));
    assert_eq!(
        provisioned_on(&out),
        [("a".into(), host_name(1).to_string())]
    );
}

#[test]
fn a_pool_that_cannot_launch_fails_its_waiters() {
    let mut core = pool("2", "2", "60");
    let out = core.feed(Input::Observed(candidate("a", ARM, 0)), T0);
    assert_eq!(pool_launches(&out), 1);
    core.feed(Input::Report(key("a"), Report::Done), T0);
    let out = core.feed(
        Input::PoolLaunched(
            arm(),
            Err(LaunchFailure {
                code: "InvalidAMIID.NotFound".into(),
                message: "no such image".into(),
                retryable: false,
                ambiguous: false,
            }),
        ),
        T0,
    );
    let message = fail_message(&out).expect("error Secret");
    assert!(message.contains("InvalidAMIID.NotFound"), "{message}");
}

#[test]
fn a_pool_instance_that_never_answers_is_swept_and_replaced() {
    let mut core = pool("1", "2", "60");
    let out = core.feed(Input::Observed(candidate("a", ARM, 0)), T0);
    assert_eq!(pool_launches(&out), 1);
    core.feed(Input::Report(key("a"), Report::Done), T0);
    core.feed(
        Input::PoolLaunched(arm(), Ok((id(1), Some("127.77.1.1".into())))),
        T0,
    );
    core.feed(Input::Health(host_name(1), false), T0 + 1_000);
    // Within twice the sweep grace it may still be booting.
    let listing = vec![instance(1, "a", T0 / 1000)];
    let out = core.feed(Input::CloudListing(arm(), listing.clone()), T0 + 599_000);
    assert!(
        !out.iter().any(|c| matches!(c, Command::Terminate(_))),
        "{out:?}"
    );
    let out = core.feed(Input::CloudListing(arm(), listing), T0 + 601_000);
    assert!(out.contains(&Command::Terminate(vec![id(1)])), "{out:?}");
    let out = core.feed(Input::CloudListing(arm(), Vec::new()), T0 + 602_000);
    assert_eq!(
        pool_launches(&out),
        1,
        "a replacement for the waiter: {out:?}"
    );
}

#[test]
fn idle_instances_above_max_instances_are_swept_newest_first() {
    let (mut core, _) = start_core(
        CoreSettings::default(),
        present(pool_config("1", "2", "60")),
        Vec::new(),
        T0,
    );
    // After a restart the cloud shows two instances of a one-instance pool.
    let out = core.feed(
        Input::CloudListing(
            arm(),
            vec![
                instance(1, "x", T0 / 1000 - 20),
                instance(2, "y", T0 / 1000 - 10),
            ],
        ),
        T0,
    );
    assert!(out.contains(&Command::Terminate(vec![id(2)])), "{out:?}");
    assert!(!out.contains(&Command::Terminate(vec![id(1)])), "{out:?}");
}

#[test]
fn windows_and_macos_vms_hand_their_builder_account_over_and_linux_vms_do_not() {
    for (platform, admin) in [
        ("windows/amd64", Some("Administrator")),
        ("macos/arm64", Some("ec2-user")),
        (ARM, None),
    ] {
        let (mut core, _) = start_core(
            CoreSettings::default(),
            present(aws_platform_config(
                platform,
                "prod",
                "dynamic-platforms",
                "2",
                &[],
            )),
            Vec::new(),
            T0,
        );
        let platform = Platform::parse(platform).unwrap();
        core.feed(Input::CloudListing(platform.clone(), Vec::new()), T0);
        let out = core.feed(Input::Observed(candidate("w", platform.as_str(), 0)), T0);
        assert_eq!(launches(&out).len(), 1, "{platform}: {out:?}");
        let out = core.feed(Input::Report(key("w"), Report::Launched(id(1))), T0 + 1);
        let [vm] = &vm_orders(&out)[..] else {
            panic!("{platform}: {out:?}");
        };
        assert_eq!(
            vm.handover.as_ref().map(|h| h.admin_user),
            admin,
            "{platform}"
        );
    }
}
