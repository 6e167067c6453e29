//! Part 3, **cloud**: a dynamic AWS platform with `max-instances: 20` and 200 TaskRuns
//! (`MPC_BENCH_CLOUD`) made eligible at once, served by the local EC2 of
//! `hack/ec2-testbed` (moto behind the fault proxy, no faults injected; a real sshd per
//! instance after a boot delay of [`BOOT_DELAY`]). The controller binary runs as its own
//! process with `AWS_ENDPOINT_URL_EC2` pointing at the proxy.
//!
//! The boot of an instance is measured on the EC2 side, from the ec2-testbed records:
//! from the moment its `RunInstances` reached the EC2 endpoint (the proxy) to the moment
//! its sshd listened. That is everything the cloud does for the launch: moto's handling
//! of the call, the testbed noticing the instance (it lists moto every 100 ms), the boot
//! delay, and sshd's start. What is left of eligible -> Secret is the controller's:
//! noticing the TaskRun, waiting for a slot, the writes before the launch, and after the
//! boot, noticing sshd (its look-back interval), the probe, the build user, the Secret.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{InstanceStateName, Reservation};
use ec2_testbed::{
    ACCESS_KEY_ID, Ec2Testbed, HostEvent, HostsOptions, Outcome, REGION, RecordedCall,
    SECRET_ACCESS_KEY, TestbedOptions,
};
use testbed::Testbed;

use super::{
    BoxError, CONCURRENCY, CONTROLLER, HOSTS, Measured, PHASE_LIMIT, PLATFORM, StaticFigures,
    Trace, Tracker, measured_wave, mib, ms, pct, wave,
};

/// The platform's limit.
const MAX_INSTANCES: usize = 20;
/// What models an instance's boot: its sshd starts this long after the testbed first
/// lists it. A real boot takes 30-60 s; a short one keeps the controller's share visible.
const BOOT_DELAY: Duration = Duration::from_millis(500);
const INSTANCE_TAG: &str = "bench-arm64";
const INSTANCE_TYPE: &str = "m6g.large";
/// Addresses moto hands out in the testbed's /24 subnet (.4 to .254), never reused
/// until a reset: one per launch.
const SUBNET_ADDRESSES: usize = 251;
/// Most seconds between the controller's looks at a booting instance (`check-interval`;
/// the first looks come after 250 ms, then 500 ms).
const CHECK_INTERVAL: &str = "1";

/// One line of figures: p50 and p90 (the cloud part's spread is the boot's and the
/// queue's, so p90 says more than the burst part's p95), and the maximum.
fn row(label: &str, samples: &[Duration]) {
    println!(
        "  {label:<46} p50 {:>8.1} ms   p90 {:>8.1} ms   max {:>8.1} ms",
        ms(pct(samples, 50)),
        ms(pct(samples, 90)),
        ms(samples.iter().max().copied().unwrap_or_default())
    );
}

/// A duration between two instants of this process, `None` unless both are known.
fn between(from: Option<Duration>, to: Option<Duration>) -> Option<Duration> {
    Some(to?.saturating_sub(from?))
}

/// When the launch of each TaskRun reached EC2 (its first `RunInstances` moto
/// answered), by TaskRun name (the `taskRunID` tag is `<namespace>:<name>`).
fn launches(calls: &[RecordedCall], namespace: &str) -> HashMap<String, Instant> {
    let mut found = HashMap::new();
    for call in calls {
        if call.action != "RunInstances" || call.outcome != (Outcome::Forwarded { status: 200 }) {
            continue;
        }
        let tags = call.params_with_prefix("TagSpecification.1.Tag.");
        let owner = tags.chunks(2).find_map(|kv| match kv {
            [(_, "taskRunID"), (_, v)] => v.strip_prefix(&format!("{namespace}:")),
            _ => None,
        });
        if let Some(name) = owner {
            found.entry(name.to_owned()).or_insert(call.received);
        }
    }
    found
}

/// The most instances that existed at once, counted conservatively from the EC2 calls:
/// each from the moment its `RunInstances` reached EC2 until EC2 answered its
/// `TerminateInstances`.
fn peak_instances(calls: &[RecordedCall]) -> usize {
    let mut changes: Vec<(Instant, i64)> = Vec::new();
    let mut tokens = HashSet::new();
    let mut terminated = HashSet::new();
    for call in calls {
        if call.outcome != (Outcome::Forwarded { status: 200 }) {
            continue;
        }
        match call.action.as_str() {
            // A token seen before is the same instance (EC2's idempotency).
            "RunInstances"
                if tokens.insert(call.param("ClientToken").unwrap_or_default().to_owned()) =>
            {
                changes.push((call.received, 1));
            }
            "TerminateInstances" => {
                for (_, id) in call.params_with_prefix("InstanceId.") {
                    if terminated.insert(id.to_owned()) {
                        changes.push((call.answered.unwrap_or(call.received), -1));
                    }
                }
            }
            _ => {}
        }
    }
    // At the same instant a launch counts before a termination: never undercount.
    changes.sort_by_key(|&(at, change)| (at, -change));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, change) in changes {
        now += change;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap_or(0)
}

/// Instances moto still runs (pending or running).
async fn live_instances(ec2: &Ec2Testbed) -> Result<Vec<String>, BoxError> {
    let out = ec2.admin().describe_instances().send().await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(Reservation::instances)
        .filter(|i| {
            matches!(
                i.state().and_then(|s| s.name()),
                Some(InstanceStateName::Pending | InstanceStateName::Running)
            )
        })
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect())
}

/// Runs the cloud part with `size` TaskRuns; `static_figures` are the burst part's when
/// it ran in this run.
pub async fn cloud_part(
    size: usize,
    static_figures: Option<StaticFigures>,
) -> Result<(), BoxError> {
    let launches_needed = size + MAX_INSTANCES;
    if launches_needed > SUBNET_ADDRESSES {
        return Err(format!(
            "MPC_BENCH_CLOUD={size} needs {launches_needed} instance addresses (with the \
             {MAX_INSTANCES} of the warm-up); the local EC2's subnet has {SUBNET_ADDRESSES} and \
             moto never reuses one: use at most {}",
            SUBNET_ADDRESSES - MAX_INSTANCES
        )
        .into());
    }
    let ec2 = Ec2Testbed::start_with(TestbedOptions {
        hosts_options: HostsOptions {
            boot_delay: BOOT_DELAY,
            ..HostsOptions::default()
        },
        ..TestbedOptions::default()
    })
    .await?;
    let bed = Testbed::start_empty("bench-cloud").await?;
    bed.create_labelled_secret(
        "aws-account",
        &[
            ("access-key-id", ACCESS_KEY_ID),
            ("secret-access-key", SECRET_ACCESS_KEY),
        ],
    )
    .await?;
    bed.create_labelled_secret("aws-ssh", &[("id_rsa", ec2.key_pair().private_key())])
        .await?;
    let key = |name: &str| format!("dynamic.{}.{name}", PLATFORM.replace('/', "-"));
    let config: BTreeMap<String, String> = [
        ("dynamic-platforms".to_owned(), PLATFORM.to_owned()),
        ("instance-tag".to_owned(), INSTANCE_TAG.to_owned()),
        (key("type"), "aws".to_owned()),
        (key("region"), REGION.to_owned()),
        (key("ami"), ec2.image_id().to_owned()),
        (key("instance-type"), INSTANCE_TYPE.to_owned()),
        (key("key-name"), ec2.key_pair().name().to_owned()),
        (key("aws-secret"), "aws-account".to_owned()),
        (key("ssh-secret"), "aws-ssh".to_owned()),
        (key("subnet-id"), ec2.network().subnet_id.clone()),
        (key("max-instances"), MAX_INSTANCES.to_string()),
        (key("check-interval"), CHECK_INTERVAL.to_owned()),
    ]
    .into_iter()
    .collect();
    bed.apply_host_config(config).await?;

    let endpoint = ec2.endpoint_url();
    let mut controller = bed.spawn_controller_process_with_env(
        CONTROLLER.as_ref(),
        &[],
        &[("AWS_ENDPOINT_URL_EC2", endpoint.as_str())],
    )?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    // Nothing is launched before the platform's first listing.
    ec2.proxy()
        .wait_for_calls("the controller's first listing", PHASE_LIMIT, |calls| {
            calls.iter().any(|c| {
                c.action == "DescribeInstances" && c.outcome == (Outcome::Forwarded { status: 200 })
            })
        })
        .await?;
    let tracker = Tracker::start(&bed).await?;
    // Warm-up: every slot used once (the controller's EC2 client built, connections open).
    let warmup: Vec<String> = (0..MAX_INSTANCES)
        .map(|i| format!("cloud-warmup-{i:02}"))
        .collect();
    wave(&bed, &tracker, &warmup).await?;

    let names: Vec<String> = (0..size).map(|i| format!("cloud-{i:04}")).collect();
    let Measured {
        load_before,
        load_after,
        cpu_controller,
        cpu_driver,
        traces,
    } = measured_wave(&bed, &tracker, &controller, &names).await?;
    let memory = controller.memory()?;
    controller.stop(Duration::from_secs(30)).await?;

    // Nothing left running: every instance terminated, every instance host stopped.
    let live = live_instances(&ec2).await?;
    if !live.is_empty() {
        return Err(format!("instances left running: {live:?}").into());
    }
    ec2.hosts()
        .wait_for("every instance host stopped", PHASE_LIMIT, |view| {
            view.hosts.is_empty().then_some(())
        })
        .await?;

    // The EC2 side of each TaskRun.
    let calls = ec2.proxy().all_requests();
    let launched = launches(&calls, bed.namespace());
    let timeline = ec2.hosts().timeline();
    let listening: HashMap<&str, Instant> = timeline
        .iter()
        .filter_map(|(at, e)| match e {
            HostEvent::Started { instance, .. } => Some((instance.as_str(), *at)),
            _ => None,
        })
        .collect();
    let failed: Vec<&HostEvent> = timeline
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, HostEvent::Failed { .. } | HostEvent::Skipped { .. }))
        .collect();
    if !failed.is_empty() {
        return Err(format!("instance hosts that did not start: {failed:?}").into());
    }
    let since = |at: Instant| Some(at.saturating_duration_since(tracker.start));
    let distinct_launches = calls
        .iter()
        .filter(|c| c.action == "RunInstances" && c.outcome == (Outcome::Forwarded { status: 200 }))
        .count();
    if distinct_launches != launches_needed {
        return Err(format!(
            "{distinct_launches} instances launched for {launches_needed} TaskRuns"
        )
        .into());
    }

    /// One TaskRun's figures.
    struct Served {
        trace: Trace,
        launch: Option<Duration>,
        first_listed: Option<Duration>,
        listening: Option<Duration>,
    }
    let served: Vec<Served> = names
        .iter()
        .zip(traces)
        .map(|(name, trace)| {
            let instance = trace.host.clone().unwrap_or_default();
            Served {
                launch: launched.get(name).copied().and_then(since),
                first_listed: ec2.hosts().first_seen(&instance).and_then(since),
                listening: listening.get(instance.as_str()).copied().and_then(since),
                trace,
            }
        })
        .collect();
    let complete: Vec<&Served> = served
        .iter()
        .filter(|s| {
            s.launch.is_some()
                && s.listening.is_some()
                && s.trace.eligible.is_some()
                && s.trace.launching.is_some()
                && s.trace.secret.is_some()
        })
        .collect();
    if complete.len() != size {
        return Err(format!(
            "only {} of {size} TaskRuns have every mark (launch, boot, Secret)",
            complete.len()
        )
        .into());
    }
    let series = |f: &dyn Fn(&Served) -> Option<Duration>| -> Vec<Duration> {
        complete.iter().filter_map(|s| f(s)).collect()
    };
    let boot = |s: &Served| between(s.launch, s.listening);
    let eligible_to_secret = series(&|s| between(s.trace.eligible, s.trace.secret));
    let boots = series(&boot);
    let overhead =
        series(&|s| Some(between(s.trace.eligible, s.trace.secret)?.saturating_sub(boot(s)?)));
    let slot_overhead =
        series(&|s| Some(between(s.trace.launching, s.trace.secret)?.saturating_sub(boot(s)?)));
    let before_launch = series(&|s| between(s.trace.launching, s.launch));
    let after_boot = series(&|s| between(s.listening, s.trace.secret));
    let eligible_to_slot = series(&|s| between(s.trace.eligible, s.trace.launching));
    let listed_lag = series(&|s| between(s.launch, s.first_listed));
    let host_start = series(&|s| between(s.first_listed, s.listening));
    let secret_to_released = series(&|s| between(s.trace.secret, s.trace.released));
    let held = series(&|s| between(s.trace.launching, s.trace.released));
    let mut by_slot: Vec<&&Served> = complete.iter().collect();
    by_slot.sort_by_key(|s| s.trace.launching);
    let first_wave: Vec<Duration> = by_slot
        .iter()
        .take(MAX_INSTANCES)
        .filter_map(|s| Some(between(s.trace.eligible, s.trace.secret)?.saturating_sub(boot(s)?)))
        .collect();

    let first = |f: fn(&Trace) -> Option<Duration>| {
        complete
            .iter()
            .filter_map(|s| f(&s.trace))
            .min()
            .unwrap_or_default()
    };
    let last = |f: fn(&Trace) -> Option<Duration>| {
        complete
            .iter()
            .filter_map(|s| f(&s.trace))
            .max()
            .unwrap_or_default()
    };
    let first_eligible = first(|t| t.eligible);
    let served_in = last(|t| t.secret).saturating_sub(first_eligible);
    let drained_in = last(|t| t.released).saturating_sub(first_eligible);
    let busy_span = last(|t| t.released).saturating_sub(first(|t| t.launching));
    let held_total: Duration = held.iter().sum();
    let held_mean = held_total / u32::try_from(held.len().max(1)).unwrap_or(u32::MAX);
    let peak = peak_instances(&calls);

    println!(
        "\ncloud: {size} TaskRuns eligible at once on a dynamic platform ({PLATFORM}, \
         max-instances {MAX_INSTANCES}, check-interval {CHECK_INTERVAL} s) on the local EC2 \
         (moto behind the fault proxy, no faults; boot modelled by a {} ms delay, then a real \
         sshd); load average {load_before}:",
        BOOT_DELAY.as_millis()
    );
    row(
        "eligible -> Secret written (incl. queueing)",
        &eligible_to_secret,
    );
    row("boot: RunInstances at EC2 -> sshd listening", &boots);
    row("  RunInstances at EC2 -> testbed lists it", &listed_lag);
    row("  testbed lists it -> sshd listening", &host_start);
    row(
        "overhead: eligible -> Secret minus boot (incl. queueing)",
        &overhead,
    );
    row(
        &format!("  first {} (a slot at once)", first_wave.len()),
        &first_wave,
    );
    row(
        "  eligible -> slot (launch marks written)",
        &eligible_to_slot,
    );
    row(
        "overhead per slot: slot -> Secret minus boot",
        &slot_overhead,
    );
    row("  slot -> RunInstances at EC2", &before_launch);
    row("  sshd listening -> Secret", &after_boot);
    row(
        "Secret -> released (instance terminated)",
        &secret_to_released,
    );
    row("slot held: launch marks -> released", &held);
    println!(
        "  served {size} in {:.2} s ({:.1} TaskRuns/s, first eligible -> last Secret); \
         drained in {:.2} s: {:.1} TaskRuns/s (-> last released)",
        served_in.as_secs_f64(),
        size as f64 / served_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        size as f64 / drained_in.as_secs_f64()
    );
    println!(
        "  the instances allow {:.1} TaskRuns/s ({MAX_INSTANCES} slots / mean slot held {:.0} ms); \
         slots busy {:.0} % of the time from the first launch to the last release",
        MAX_INSTANCES as f64 / held_mean.as_secs_f64(),
        ms(held_mean),
        100.0 * held_total.as_secs_f64() / (MAX_INSTANCES as f64 * busy_span.as_secs_f64())
    );
    println!(
        "  peak instances at once: {peak} (max-instances {MAX_INSTANCES}; counted from each \
         RunInstances reaching EC2 to EC2's answer to its TerminateInstances); \
         {distinct_launches} launches for {launches_needed} TaskRuns with the warm-up, none \
         repeated"
    );
    println!(
        "  CPU used: controller {:.1} s ({:.1} ms per TaskRun), this process (kube-sim, \
         the instance-host watcher, this driver; not moto, not the sshds) {:.1} s; controller peak RSS {:.1} MiB; load average \
         after {load_after}",
        cpu_controller.as_secs_f64(),
        ms(cpu_controller) / size as f64,
        cpu_driver.as_secs_f64(),
        mib(memory.peak_rss_kib)
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let (first_p50, slot_p50) = (pct(&first_wave, 50), pct(&slot_overhead, 50));
    match static_figures {
        Some(figures) => {
            println!("\ncloud vs the static hosts (burst part, this run):");
            println!(
                "  p50 overhead, first {} (a slot at once) {:.1} ms vs the static first {} \
                 served, eligible -> Secret {:.1} ms: {:.2}x",
                first_wave.len(),
                ms(first_p50),
                HOSTS * CONCURRENCY,
                ms(figures.first_slots),
                ratio(first_p50, figures.first_slots)
            );
            println!(
                "  p50 overhead per slot {:.1} ms vs the static assigned-host label -> \
                 Secret {:.1} ms: {:.2}x",
                ms(slot_p50),
                ms(figures.assigned_to_secret),
                ratio(slot_p50, figures.assigned_to_secret)
            );
        }
        None => println!(
            "\n  the static hosts' figures were not measured in this run \
             (MPC_BENCH_ONLY=burst,cloud measures both); README.md, Controller benchmark, \
             has the last ones"
        ),
    }
    if peak > MAX_INSTANCES {
        return Err(format!("{peak} instances at once, max-instances is {MAX_INSTANCES}").into());
    }
    bed.cleanup().await;
    Ok(())
}
