//! Scenario tests of the core: one per rule of contract §2–§3.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::parse;
use crate::platform::Platform;
use crate::taskrun::PlatformParamError;

/// The tests' clock starts here, in Unix milliseconds; `T0 + 2_000` is 2 s later.
pub(crate) const T0: i64 = 1_800_000_000_000;

/// The instant `ms` Unix milliseconds stand for.
pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// Everything the core put out for one input in one list, as these tests read it:
/// effects first (Events, probes), then work, then metrics.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    Provision(ProvisionOrder),
    Wait(WaitOrder),
    ServeLocal(TaskRunOrder),
    Fail(FailOrder),
    Release(ReleaseOrder),
    Event(EventOrder),
    Probe {
        host: HostName,
        reason: Option<String>,
    },
    Metric(Metric),
    Launch(LaunchOrder),
    ProvisionVm(VmOrder),
    ReleaseVm(VmReleaseOrder),
    Terminate(Vec<crate::cloud::InstanceId>),
    LaunchPool(crate::cloud::LaunchSpec),
}

/// Drains all three outputs of the core.
pub(crate) fn drain(core: &mut Core) -> Vec<Command> {
    let mut out = Vec::new();
    while let Some(effect) = core.poll_effect() {
        out.push(match effect {
            Effect::Event(e) => Command::Event(e),
            Effect::Probe { host, reason } => Command::Probe { host, reason },
            Effect::Terminate { instances, .. } => {
                Command::Terminate(instances.into_iter().map(|(id, _)| id).collect())
            }
            Effect::LaunchPool { spec } => Command::LaunchPool(*spec),
        });
    }
    while let Some(work) = core.poll_work() {
        out.push(match work {
            Work::Provision(o) => Command::Provision(o),
            Work::Wait(o) => Command::Wait(o),
            Work::ServeLocal(o) => Command::ServeLocal(o),
            Work::Fail(o) => Command::Fail(o),
            Work::Release(o) => Command::Release(o),
            Work::Launch(o) => Command::Launch(o),
            Work::ProvisionVm(o) => Command::ProvisionVm(o),
            Work::ReleaseVm(o) => Command::ReleaseVm(o),
        });
    }
    while let Some(metric) = core.poll_metric() {
        out.push(Command::Metric(metric));
    }
    out
}

/// Feeding the core and reading everything it answered, with the clock in ms.
pub(crate) trait Feed {
    /// Handles `input` at `ms` and drains the outputs.
    fn feed(&mut self, input: Input, ms: i64) -> Vec<Command>;
}

impl Feed for Core {
    fn feed(&mut self, input: Input, ms: i64) -> Vec<Command> {
        self.handle(input, at(ms));
        drain(self)
    }
}

/// Starts a core at `ms` and drains what it put out.
pub(crate) fn start_core(
    settings: CoreSettings,
    config: ConfigInput,
    snapshot: impl IntoIterator<Item = Observed>,
    ms: i64,
) -> (Core, Vec<Command>) {
    let mut core = Core::start(settings, config, snapshot, at(ms));
    let out = drain(&mut core);
    (core, out)
}

/// host-config data: `hosts` as (name, platform, concurrency).
pub(crate) fn config_with(hosts: &[(&str, &str, u32)], extra: &[(&str, &str)]) -> PoolConfig {
    let mut data = BTreeMap::new();
    for (i, (name, platform, concurrency)) in hosts.iter().enumerate() {
        let mut set = |k: &str, v: String| data.insert(format!("host.{name}.{k}"), v);
        set("address", format!("10.0.0.{}", i + 1));
        set("platform", (*platform).to_owned());
        set("user", "root".to_owned());
        set("secret", "admin-key".to_owned());
        set("concurrency", concurrency.to_string());
    }
    for (k, v) in extra {
        data.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = parse(&data);
    assert!(
        !config.has_problems(&[crate::config::Severity::Error]),
        "test config has problems: {:?}",
        config.problems
    );
    config
}

pub(crate) fn present(config: PoolConfig) -> ConfigInput {
    ConfigInput::Present(Box::new(config))
}

pub(crate) fn key(name: &str) -> TaskRunKey {
    TaskRunKey::new("tenant", name)
}

/// A candidate TaskRun created at `created` (seconds after T0) for `platform`.
pub(crate) fn candidate(name: &str, platform: &str, created: i64) -> Observed {
    Observed {
        key: key(name),
        uid: format!("uid-{name}"),
        created: crate::time::from_unix_seconds(T0 / 1000 + created),
        candidate: true,
        platform_raw: Some(platform.to_owned()),
        platform: Some(Platform::parse(platform).map_err(PlatformParamError::from)),
        finished: false,
        deleting: false,
        finalizer: false,
        assigned_host: None,
        waiting: false,
        failed_hosts: Default::default(),
        allocation_start: None,
        cloud: false,
        instance: None,
        launch_attempt: 1,
    }
}

fn finished(mut obs: Observed) -> Observed {
    obs.finished = true;
    obs
}

fn host(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

/// The commands that are work for the shell (no Events or metrics).
fn work(commands: &[Command]) -> Vec<&Command> {
    commands
        .iter()
        .filter(|c| !matches!(c, Command::Event(_) | Command::Metric(_)))
        .collect()
}

fn provisions(commands: &[Command]) -> Vec<(String, String)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Provision(o) => Some((o.taskrun.key.name.clone(), o.host.name.to_string())),
            _ => None,
        })
        .collect()
}

fn events(commands: &[Command]) -> Vec<(String, EventReason, String)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Event(e) => Some((e.key.name.clone(), e.reason, e.note.clone())),
            _ => None,
        })
        .collect()
}

fn failure(commands: &[Command]) -> Option<&FailOrder> {
    commands.iter().find_map(|c| match c {
        Command::Fail(o) => Some(o),
        _ => None,
    })
}

/// Starts a core and answers its first probes: every host is up.
pub(crate) fn start_with(config: ConfigInput, snapshot: Vec<Observed>) -> (Core, Vec<Command>) {
    let (mut core, commands) = start_core(CoreSettings::default(), config, snapshot, T0);
    let mut out = Vec::new();
    for command in commands {
        match command {
            Command::Probe { host, reason: None } => {
                out.extend(core.feed(Input::Health(host, true), T0));
            }
            other => out.push(other),
        }
    }
    (core, out)
}

fn start(config: ConfigInput) -> Core {
    let (core, commands) = start_with(config, Vec::new());
    assert!(commands.is_empty(), "{commands:?}");
    core
}

#[test]
fn nothing_is_assigned_to_a_host_before_its_first_probe() {
    let config = present(config_with(&[("a1", "linux/arm64", 1)], &[]));
    let (mut core, out) = start_core(
        CoreSettings::default(),
        config,
        vec![candidate("b", "linux/arm64", 0)],
        T0,
    );
    assert!(provisions(&out).is_empty(), "{out:?}");
    assert!(out.contains(&Command::Probe {
        host: host("a1"),
        reason: None
    }));
    assert!(matches!(work(&out)[..], [_, Command::Wait(_)]), "{out:?}");
    let out = core.feed(Input::Health(host("a1"), true), T0);
    assert!(work(&out).is_empty(), "the Wait patch is still in flight");
    let out = core.feed(Input::Report(key("b"), Report::Done), T0);
    assert_eq!(provisions(&out), [("b".into(), "a1".into())]);
    // A host added later is probed before use too.
    let bigger = config_with(&[("a1", "linux/arm64", 1), ("a9", "linux/arm64", 1)], &[]);
    let out = core.feed(Input::Config(present(bigger)), T0);
    assert!(out.contains(&Command::Probe {
        host: host("a9"),
        reason: None
    }));
    let out = core.feed(Input::Observed(candidate("c", "linux/arm64", 1)), T0);
    assert!(matches!(work(&out)[..], [Command::Wait(_)]), "{out:?}");
}

#[test]
fn gauges_name_every_configured_platform_and_host_from_the_start() {
    let mut core = arm64_pool();
    let gauges = core.gauges();
    assert_eq!(
        gauges.platforms.keys().collect::<Vec<_>>(),
        ["linux/arm64", "linux/x86_64", "local"],
        "idle and local platforms too"
    );
    assert!(
        gauges
            .platforms
            .values()
            .all(|p| p.running == 0 && p.waiting == 0 && !p.cloud)
    );
    assert_eq!(gauges.hosts.keys().collect::<Vec<_>>(), ["a1", "a2"]);
    // A platform and a host that leave the configuration leave the gauges.
    let smaller = config_with(&[("a1", "linux/ppc64le", 1)], &[]);
    core.feed(Input::Config(present(smaller)), T0);
    let gauges = core.gauges();
    assert_eq!(
        gauges.platforms.keys().collect::<Vec<_>>(),
        ["linux/ppc64le"]
    );
    assert_eq!(gauges.hosts.keys().collect::<Vec<_>>(), ["a1"]);
    assert_eq!(gauges.hosts["a1"].platform, "linux/ppc64le");
}

fn arm64_pool() -> Core {
    start(present(config_with(
        &[("a1", "linux/arm64", 1), ("a2", "linux/arm64", 2)],
        &[("local-platforms", "linux/x86_64,local")],
    )))
}

#[test]
fn a_candidate_gets_the_least_used_host_and_is_released_after_it_finishes() {
    let mut core = arm64_pool();
    let out = core.feed(Input::Observed(candidate("b1", "linux/arm64", 0)), T0);
    assert_eq!(
        provisions(&out),
        [("b1".into(), "a2".into())],
        "most free slots"
    );
    let Some(Command::Provision(order)) = work(&out).first().cloned().cloned() else {
        panic!("expected a Provision first: {out:?}");
    };
    assert_eq!(order.user, UserName::for_taskrun("b1", "tenant"));
    assert_eq!(order.key_lifetime, Duration::from_secs(24 * 3600));
    assert!(events(&out).iter().any(|e| e.1 == EventReason::Allocated));

    let out = core.feed(Input::Report(key("b1"), Report::Provisioned), T0 + 2_000);
    assert!(out.contains(&Command::Metric(Metric::ProvisioningSuccess {
        platform: Platform::parse("linux/arm64").unwrap()
    })));
    assert!(out.contains(&Command::Metric(Metric::AllocationTime {
        platform: Platform::parse("linux/arm64").unwrap(),
        took: Duration::from_secs(2),
    })));
    assert!(work(&out).is_empty());

    let out = core.feed(
        Input::Observed(finished(candidate("b1", "linux/arm64", 0))),
        T0 + 60_000,
    );
    let [Command::Release(release)] = work(&out)[..] else {
        panic!("expected a Release: {out:?}");
    };
    assert_eq!(release.host.as_ref().map(|h| h.name.as_str()), Some("a2"));
    let out = core.feed(Input::Report(key("b1"), Report::Released), T0 + 61_000);
    // Go semantics: the whole life, from allocation start (T0) to release.
    assert!(out.iter().any(|c| matches!(c, Command::Metric(Metric::TaskRunTime { took, .. }) if *took == Duration::from_secs(61))), "{out:?}");
    assert_eq!(core.gauges().hosts["a2"].used, 0);
}

#[test]
fn a_full_pool_queues_fifo_and_a_freed_slot_goes_to_the_oldest_waiter_at_once() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    core.feed(Input::Report(key("run"), Report::Provisioned), T0);
    // Arrival order differs from creation order: the queue follows creation.
    for (name, created) in [("late", 30), ("early", 10), ("middle", 20)] {
        let out = core.feed(Input::Observed(candidate(name, "linux/arm64", created)), T0);
        let [Command::Wait(w)] = work(&out)[..] else {
            panic!("expected Wait: {out:?}");
        };
        assert_eq!(w.taskrun.key.name, name);
        assert!(
            events(&out)
                .iter()
                .any(|e| e.1 == EventReason::Waiting && e.2.contains("ahead")
                    || e.2.contains("next in the queue"))
        );
        core.feed(Input::Report(key(name), Report::Done), T0);
    }
    assert_eq!(core.gauges().platforms["linux/arm64"].waiting, 3);

    let mut order = Vec::new();
    let mut holder = "run".to_owned();
    for _ in 0..3 {
        core.feed(
            Input::Observed(finished(candidate(&holder, "linux/arm64", 0))),
            T0,
        );
        let out = core.feed(Input::Report(key(&holder), Report::Released), T0);
        let p = provisions(&out);
        assert_eq!(p.len(), 1, "exactly one waiter gets the one slot: {out:?}");
        holder = p[0].0.clone();
        core.feed(Input::Report(key(&holder), Report::Provisioned), T0);
        order.push(holder.clone());
    }
    assert_eq!(order, ["early", "middle", "late"]);
}

#[test]
fn malformed_and_unservable_platforms_get_error_secrets_that_say_what_to_fix() {
    let mut core = start(present(config_with(
        &[("a1", "linux/arm64", 1)],
        &[
            ("dynamic-platforms", "linux/amd64"),
            ("dynamic.linux-amd64.type", "aws"),
            ("dynamic.linux-amd64.region", "us-east-1"),
            ("dynamic.linux-amd64.ami", "ami-1"),
            ("dynamic.linux-amd64.instance-type", "m5.large"),
            ("dynamic.linux-amd64.key-name", "k"),
            ("dynamic.linux-amd64.aws-secret", "s"),
            ("dynamic.linux-amd64.ssh-secret", "s"),
            ("dynamic.linux-amd64.security-group", "sg"),
            ("dynamic.linux-amd64.max-instances", "4"),
        ],
    )));
    let cases = [
        ("bad", "linux/ARM64", "invalid platform"),
        (
            "unknown",
            "linux/riscv64",
            "no host in host-config serves platform linux/riscv64",
        ),
        (
            "dynamic",
            "linux/amd64",
            "platform linux/amd64 has no instance tag",
        ),
    ];
    for (name, platform, expected) in cases {
        let out = core.feed(Input::Observed(candidate(name, platform, 0)), T0);
        let fail = failure(&out).unwrap_or_else(|| panic!("{name}: no Fail in {out:?}"));
        assert!(fail.message.contains(expected), "{name}: {}", fail.message);
        assert_eq!(fail.platform, platform);
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Metric(Metric::AllocationFailure { .. })))
        );
        assert!(provisions(&out).is_empty());
    }
}

#[test]
fn local_platforms_get_the_localhost_secret_and_are_released_without_a_host() {
    let mut core = arm64_pool();
    let out = core.feed(Input::Observed(candidate("l", "linux/x86_64", 0)), T0);
    assert!(
        matches!(work(&out)[..], [Command::ServeLocal(_)]),
        "{out:?}"
    );
    core.feed(Input::Report(key("l"), Report::Done), T0);
    let mut obs = finished(candidate("l", "linux/x86_64", 0));
    obs.finalizer = true;
    let out = core.feed(Input::Observed(obs), T0);
    let [Command::Release(r)] = work(&out)[..] else {
        panic!("{out:?}");
    };
    assert!(r.host.is_none());
}

#[test]
fn a_missing_host_config_makes_new_taskruns_wait_until_it_appears() {
    let mut core = start(ConfigInput::Missing("not found".into()));
    let out = core.feed(Input::Observed(candidate("w", "linux/arm64", 0)), T0);
    assert!(matches!(work(&out)[..], [Command::Wait(_)]), "{out:?}");
    assert!(
        events(&out)[0]
            .2
            .contains("waiting for the host-config ConfigMap")
    );
    core.feed(Input::Report(key("w"), Report::Done), T0);
    let out = core.feed(
        Input::Config(present(config_with(&[("a1", "linux/arm64", 1)], &[]))),
        T0 + 5_000,
    );
    assert!(out.contains(&Command::Probe {
        host: host("a1"),
        reason: None
    }));
    let out = core.feed(Input::Health(host("a1"), true), T0 + 5_100);
    assert_eq!(provisions(&out), [("w".into(), "a1".into())]);
}

#[test]
fn a_host_config_that_stays_missing_fails_waiters_after_the_grace_period() {
    let mut core = start(ConfigInput::Missing("not found".into()));
    core.feed(Input::Observed(candidate("w", "linux/arm64", 0)), T0);
    core.feed(Input::Report(key("w"), Report::Done), T0);
    assert_eq!(core.next_deadline(), Some(at(T0 + 60_000)));
    assert!(work(&core.feed(Input::Tick, T0 + 59_999)).is_empty());
    let out = core.feed(Input::Tick, T0 + 60_000);
    let fail = failure(&out).expect("error Secret after the grace period");
    assert!(
        fail.message.contains("host-config ConfigMap is missing"),
        "{}",
        fail.message
    );
    assert!(fail.message.contains("multi-platform-controller"));
}

#[test]
fn provisioning_failure_fails_over_and_every_host_failing_gives_an_error_secret() {
    let mut core = start(present(config_with(
        &[("a1", "linux/arm64", 2), ("a2", "linux/arm64", 1)],
        &[],
    )));
    let out = core.feed(Input::Observed(candidate("b", "linux/arm64", 0)), T0);
    assert_eq!(provisions(&out), [("b".into(), "a1".into())]);
    let broke = HostFailure {
        kind: HostFailureKind::Command,
        message: "useradd: disk full".into(),
    };
    let out = core.feed(
        Input::Report(key("b"), Report::ProvisionFailed(broke.clone())),
        T0,
    );
    let Some(Command::Provision(order)) = work(&out).first().cloned().cloned() else {
        panic!("expected failover: {out:?}");
    };
    assert_eq!(order.host.name.as_str(), "a2");
    assert_eq!(order.failed_hosts, vec![host("a1")]);
    assert!(
        events(&out)
            .iter()
            .any(|e| e.1 == EventReason::ProvisioningFailed && e.2.contains("disk full"))
    );
    assert!(
        !out.iter().any(|c| matches!(c, Command::Probe { .. })),
        "a command failure keeps the host up"
    );

    let out = core.feed(Input::Report(key("b"), Report::ProvisionFailed(broke)), T0);
    let fail = failure(&out).expect("all hosts failed");
    assert!(
        fail.message
            .contains("every host of platform linux/arm64 failed"),
        "{}",
        fail.message
    );
    assert_eq!(fail.failed_hosts, vec![host("a1"), host("a2")]);
    assert_eq!(
        core.gauges().hosts["a1"].used + core.gauges().hosts["a2"].used,
        0
    );
}

#[test]
fn an_unreachable_host_is_taken_down_and_serves_waiters_when_it_answers_again() {
    let mut core = start(present(config_with(
        &[("a1", "linux/arm64", 1), ("a2", "linux/arm64", 1)],
        &[],
    )));
    core.feed(Input::Observed(candidate("x", "linux/arm64", 0)), T0);
    let down = HostFailure {
        kind: HostFailureKind::Unreachable,
        message: "connection refused".into(),
    };
    let out = core.feed(Input::Report(key("x"), Report::ProvisionFailed(down)), T0);
    assert!(out.contains(&Command::Probe {
        host: host("a1"),
        reason: Some("connection refused".into())
    }));
    assert_eq!(provisions(&out), [("x".into(), "a2".into())]);
    // a2 is full and a1 down: the next one waits.
    core.feed(Input::Report(key("x"), Report::Provisioned), T0);
    let out = core.feed(Input::Observed(candidate("y", "linux/arm64", 1)), T0);
    assert!(matches!(work(&out)[..], [Command::Wait(_)]));
    core.feed(Input::Report(key("y"), Report::Done), T0);
    assert!(!core.gauges().hosts["a1"].up);
    let out = core.feed(Input::Health(host("a1"), true), T0);
    assert_eq!(provisions(&out), [("y".into(), "a1".into())]);
}

#[test]
fn a_waiter_that_is_cancelled_leaves_the_queue_and_loses_its_label() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    core.feed(Input::Observed(candidate("w", "linux/arm64", 1)), T0);
    core.feed(Input::Report(key("w"), Report::Done), T0);
    let mut cancelled = finished(candidate("w", "linux/arm64", 1));
    cancelled.waiting = true;
    let out = core.feed(Input::Observed(cancelled), T0);
    let [Command::Release(r)] = work(&out)[..] else {
        panic!("{out:?}");
    };
    assert!(r.host.is_none(), "a waiter holds no host");
    core.feed(Input::Report(key("w"), Report::Released), T0);
    assert_eq!(core.gauges().platforms["linux/arm64"].waiting, 0);
    // Its former place does not get the slot later.
    core.feed(Input::Report(key("run"), Report::Provisioned), T0);
    core.feed(
        Input::Observed(finished(candidate("run", "linux/arm64", 0))),
        T0,
    );
    let out = core.feed(Input::Report(key("run"), Report::Released), T0);
    assert!(provisions(&out).is_empty());
}

#[test]
fn a_waiter_deleted_from_the_cluster_is_dropped_without_any_write() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    core.feed(Input::Observed(candidate("w", "linux/arm64", 1)), T0);
    core.feed(Input::Report(key("w"), Report::Done), T0);
    let out = core.feed(Input::Deleted(key("w")), T0);
    assert!(work(&out).is_empty(), "{out:?}");
    assert!(!core.known_taskruns().any(|k| k == &key("w")));
}

#[test]
fn a_running_taskrun_deleted_or_cancelled_is_cleaned_before_its_slot_is_freed() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    core.feed(Input::Observed(candidate("next", "linux/arm64", 1)), T0);
    core.feed(Input::Report(key("next"), Report::Done), T0);
    // Deleted while provisioning: the op in flight ends first.
    let mut deleting = finished(candidate("run", "linux/arm64", 0));
    deleting.deleting = true;
    deleting.finalizer = true;
    let out = core.feed(Input::Observed(deleting), T0);
    assert!(
        work(&out).is_empty(),
        "nothing new while the Provision is in flight"
    );
    let out = core.feed(Input::Report(key("run"), Report::Provisioned), T0);
    let [Command::Release(r)] = work(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(r.host.as_ref().unwrap().name.as_str(), "a1");
    assert!(
        provisions(&out).is_empty(),
        "slot not free before the host is clean"
    );
    let out = core.feed(Input::Report(key("run"), Report::Released), T0);
    assert_eq!(provisions(&out), [("next".into(), "a1".into())]);
}

#[test]
fn api_errors_are_retried_with_capped_backoff() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("b", "linux/arm64", 0)), T0);
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..9 {
        let out = core.feed(Input::Report(key("b"), Report::ApiError("500".into())), now);
        assert!(work(&out).is_empty());
        let at = core
            .next_deadline()
            .expect("a retry is scheduled")
            .as_millisecond();
        delays.push(at - now);
        now = at;
        let out = core.feed(Input::Tick, now);
        assert_eq!(
            provisions(&out),
            [("b".into(), "a1".into())],
            "retried on the same host"
        );
    }
    assert_eq!(delays[..4], [1_000, 2_000, 4_000, 8_000]);
    assert_eq!(*delays.last().unwrap(), 60_000, "capped");
}

#[test]
fn restart_rebuilds_slots_from_labels_before_allocating() {
    let config = config_with(&[("a1", "linux/arm64", 2)], &[]);
    let mut held = Vec::new();
    for (name, created, done) in [("r1", 0, false), ("r2", 1, true)] {
        let mut obs = candidate(name, "linux/arm64", created);
        obs.finalizer = true;
        obs.assigned_host = Some("a1".into());
        obs.finished = done;
        held.push(obs);
    }
    let mut newer = candidate("new", "linux/arm64", 5);
    newer.waiting = true;
    let local = {
        let mut o = candidate("loc", "local", 0);
        o.assigned_host = Some("localhost".into());
        o.finalizer = true;
        o
    };
    let snapshot = held.into_iter().chain([newer, local]);
    let (mut core, out) = start_with(present(config), snapshot.collect());
    // r1 resumes (idempotently), r2 is released, `new` must not get a third slot.
    assert_eq!(provisions(&out), [("r1".into(), "a1".into())]);
    assert!(
        work(&out)
            .iter()
            .any(|c| matches!(c, Command::Release(r) if r.key.name == "r2" && r.host.is_some()))
    );
    assert!(
        !work(&out).iter().any(|c| matches!(c, Command::Wait(_))),
        "already labelled waiting"
    );
    assert!(
        work(&out)
            .iter()
            .any(|c| matches!(c, Command::ServeLocal(o) if o.key.name == "loc")),
        "the local Secret is written again in case the last controller stopped before it"
    );
    assert_eq!(core.gauges().hosts["a1"].used, 2);
    // Resuming a TaskRun whose Secret exists counts nothing again.
    let out = core.feed(Input::Report(key("r1"), Report::AlreadyProvisioned), T0);
    assert!(
        !out.iter()
            .any(|c| matches!(c, Command::Metric(_) | Command::Event(_))),
        "{out:?}"
    );
    let out = core.feed(Input::Report(key("r2"), Report::Released), T0);
    assert_eq!(provisions(&out), [("new".into(), "a1".into())]);
}

fn fault(kind: HostFailureKind, message: &str) -> HostFailure {
    HostFailure {
        kind,
        message: message.into(),
    }
}

/// A core whose hosts have not answered their first probe yet.
fn unprobed(config: PoolConfig) -> Core {
    let (core, _) = start_core(CoreSettings::default(), present(config), Vec::new(), T0);
    core
}

#[test]
fn a_platform_whose_hosts_all_need_an_admin_fails_at_once_naming_them() {
    let mut core = unprobed(config_with(
        &[("r1", "linux/riscv64", 2), ("r2", "linux/riscv64", 2)],
        &[],
    ));
    let mismatch = fault(
        HostFailureKind::HostKeyMismatch,
        "host r1 presented SHA256:abc, but host.r1.host-key pins SHA256:def",
    );
    let out = core.feed(Input::HostFault(host("r1"), mismatch.clone()), T0);
    assert!(out.contains(&Command::Probe {
        host: host("r1"),
        reason: Some(mismatch.message.clone())
    }));
    // r2 has not answered yet: its probe decides, so the TaskRun waits.
    core.feed(Input::Observed(candidate("b", "linux/riscv64", 0)), T0);
    core.feed(Input::Report(key("b"), Report::Done), T0);
    let refused = fault(HostFailureKind::AdminAccess, "the admin key was refused");
    let out = core.feed(Input::HostFault(host("r2"), refused), T0 + 1_000);
    let fail = failure(&out).expect("error Secret at once");
    for part in [
        "until a cluster admin acts",
        "r1 (down since",
        "pins SHA256:def",
        "r2 (down since",
        "admin key was refused",
        "doctor",
    ] {
        assert!(fail.message.contains(part), "{part}: {}", fail.message);
    }
    // A new TaskRun of the platform fails at once too, without waiting.
    let out = core.feed(
        Input::Observed(candidate("c", "linux/riscv64", 1)),
        T0 + 2_000,
    );
    assert!(failure(&out).is_some(), "{out:?}");
    assert!(!out.iter().any(|c| matches!(c, Command::Wait(_))));
}

#[test]
fn unreachable_hosts_make_waiters_wait_with_a_warning_and_a_bound() {
    let mut core = unprobed(config_with(
        &[("r1", "linux/riscv64", 2), ("r2", "linux/riscv64", 2)],
        &[],
    ));
    let refused = fault(HostFailureKind::Unreachable, "connection refused");
    core.feed(Input::HostFault(host("r1"), refused.clone()), T0);
    // One needs an admin, one is only unreachable: worth waiting for.
    core.feed(
        Input::HostFault(host("r2"), fault(HostFailureKind::AdminAccess, "no key")),
        T0,
    );
    let out = core.feed(
        Input::Observed(candidate("b", "linux/riscv64", 0)),
        T0 + 1_000,
    );
    assert!(failure(&out).is_none(), "{out:?}");
    let warnings: Vec<_> = events(&out)
        .into_iter()
        .filter(|(_, reason, _)| *reason == EventReason::HostsDown)
        .collect();
    assert_eq!(warnings.len(), 1, "{out:?}");
    let note = &warnings[0].2;
    for part in ["r1 (down since", "connection refused", "r2", "fails"] {
        assert!(note.contains(part), "{part}: {note}");
    }
    core.feed(Input::Report(key("b"), Report::Done), T0 + 1_000);
    // The default bound, from when the TaskRun found every host down.
    let bound = T0 + 1_000 + i64::try_from(DEFAULT_UNREACHABLE_TIMEOUT.as_millis()).unwrap();
    assert_eq!(core.next_deadline(), Some(at(bound)));
    // The same hosts failing again repeat no warning.
    let out = core.feed(Input::HostFault(host("r1"), refused), T0 + 2_000);
    assert!(events(&out).is_empty(), "{out:?}");
    let out = core.feed(Input::Tick, bound);
    let fail = failure(&out).expect("error Secret at the bound");
    assert!(
        fail.message
            .contains("no linux/riscv64 host answered for 600s"),
        "{}",
        fail.message
    );
    assert!(
        fail.message.contains("connection refused"),
        "{}",
        fail.message
    );
    assert!(
        fail.message
            .contains("cluster admin must bring a host back"),
        "{}",
        fail.message
    );
}

#[test]
fn a_host_that_comes_back_ends_the_bound_and_allocation_timeout_replaces_the_default() {
    let mut core = unprobed(config_with(
        &[("r1", "linux/riscv64", 1)],
        &[("allocation-timeout", "30")],
    ));
    core.feed(
        Input::HostFault(host("r1"), fault(HostFailureKind::Unreachable, "timed out")),
        T0,
    );
    core.feed(Input::Observed(candidate("b", "linux/riscv64", 0)), T0);
    core.feed(Input::Report(key("b"), Report::Done), T0);
    assert_eq!(core.next_deadline(), Some(at(T0 + 30_000)));
    let out = core.feed(Input::Health(host("r1"), true), T0 + 10_000);
    assert_eq!(provisions(&out), [("b".into(), "r1".into())]);
    assert!(failure(&out).is_none());
}

#[test]
fn the_allocation_timeout_fails_a_waiter() {
    let mut core = start(present(config_with(
        &[("a1", "linux/arm64", 1)],
        &[("allocation-timeout", "30")],
    )));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    core.feed(Input::Observed(candidate("w", "linux/arm64", 1)), T0);
    core.feed(Input::Report(key("w"), Report::Done), T0);
    assert_eq!(core.next_deadline(), Some(at(T0 + 30_000)));
    let out = core.feed(Input::Tick, T0 + 30_000);
    let fail = failure(&out).expect("timed out");
    assert!(
        fail.message
            .contains("within the allocation timeout of 30s"),
        "{}",
        fail.message
    );
    assert_eq!(core.gauges().platforms["linux/arm64"].waiting, 0);
}

#[test]
fn releasing_a_deleted_taskrun_gives_up_on_an_unreachable_host_after_the_bound() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("b", "linux/arm64", 0)), T0);
    core.feed(Input::Report(key("b"), Report::Provisioned), T0);
    let mut deleting = finished(candidate("b", "linux/arm64", 0));
    deleting.deleting = true;
    core.feed(Input::Observed(deleting), T0);
    let down = HostFailure {
        kind: HostFailureKind::Unreachable,
        message: "timeout".into(),
    };
    let mut now = T0;
    loop {
        let out = core.feed(
            Input::Report(key("b"), Report::CleanupFailed(down.clone())),
            now,
        );
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Metric(Metric::CleanupFailure { .. })))
        );
        now = core
            .next_deadline()
            .expect("retry scheduled")
            .as_millisecond();
        let out = core.feed(Input::Tick, now);
        let [Command::Release(r)] = work(&out)[..] else {
            panic!("{out:?}");
        };
        if r.host.is_none() {
            assert!(now - T0 >= 300_000);
            break;
        }
        assert!(now - T0 < 300_000 + 60_000, "gave up too late");
    }
    core.feed(Input::Report(key("b"), Report::Released), now);
    // The user was left behind: its slot stays taken until the reaper removed it.
    assert_eq!(core.gauges().hosts["a1"].used, 1);
    let user = UserName::for_taskrun("b", "tenant");
    assert_eq!(
        core.reapable(&host("a1"), std::slice::from_ref(&user)),
        vec![user.clone()]
    );
    core.feed(Input::Reaped(host("a1"), vec![user]), now);
    assert_eq!(
        core.gauges().hosts["a1"].used,
        1,
        "still there: the slot stays taken"
    );
    core.feed(Input::Reaped(host("a1"), vec![]), now);
    assert_eq!(core.gauges().hosts["a1"].used, 0);
}

#[test]
fn a_rejected_waiter_gets_its_error_secret_even_if_its_wait_patch_was_in_flight() {
    let mut core = start(present(config_with(&[("a1", "linux/arm64", 1)], &[])));
    core.feed(Input::Observed(candidate("run", "linux/arm64", 0)), T0);
    let out = core.feed(Input::Observed(candidate("w", "linux/arm64", 1)), T0);
    assert!(matches!(work(&out)[..], [Command::Wait(_)]));
    // The admin disables the only host while the waiting label is being written.
    let disabled = {
        let mut data = BTreeMap::new();
        for (k, v) in [
            ("host.a1.address", "10.0.0.1"),
            ("host.a1.platform", "linux/arm64"),
            ("host.a1.user", "root"),
            ("host.a1.secret", "admin-key"),
            ("host.a1.concurrency", "1"),
            ("host.a1.state", "disabled"),
        ] {
            data.insert(k.to_owned(), v.to_owned());
        }
        parse(&data)
    };
    core.feed(Input::Config(present(disabled)), T0);
    let out = core.feed(Input::Report(key("w"), Report::Done), T0);
    let fail = failure(&out).expect("the error Secret is still written");
    assert!(fail.message.contains("disabled"), "{}", fail.message);
}

#[test]
fn stale_reports_are_ignored() {
    let mut core = arm64_pool();
    core.feed(Input::Observed(candidate("b", "linux/arm64", 0)), T0);
    core.feed(Input::Report(key("b"), Report::Provisioned), T0);
    let out = core.feed(Input::Report(key("b"), Report::Provisioned), T0);
    assert!(out.is_empty(), "{out:?}");
    let out = core.feed(Input::Report(key("nobody"), Report::Released), T0);
    assert!(out.is_empty());
}

#[test]
fn foreign_taskruns_are_ignored_without_any_write() {
    let mut core = arm64_pool();
    let mut obs = candidate("other", "linux/arm64", 0);
    obs.candidate = false;
    assert!(core.feed(Input::Observed(obs), T0).is_empty());
    assert!(
        core.feed(
            Input::Observed(finished(candidate("done", "linux/arm64", 0))),
            T0
        )
        .is_empty()
    );
    assert_eq!(core.known_taskruns().count(), 0);
}

#[test]
fn the_reaper_spares_users_of_taskruns_holding_the_host_and_nobody_else() {
    let mut core = arm64_pool();
    core.feed(Input::Observed(candidate("b", "linux/arm64", 0)), T0);
    let mine = UserName::for_taskrun("b", "tenant");
    let leftover = UserName::for_taskrun("gone", "tenant");
    let reap = core.reapable(&host("a2"), &[mine.clone(), leftover.clone()]);
    assert_eq!(reap, vec![leftover.clone()]);
    // On another host, b's name is a leftover too (e.g. after a failover).
    assert_eq!(
        core.reapable(&host("a1"), std::slice::from_ref(&mine)),
        vec![mine]
    );
}
