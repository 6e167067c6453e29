//! Dynamic AWS platforms end to end: kube-sim (or a real cluster), the controller, moto's
//! EC2 behind a fault proxy, and a real sshd on every instance's loopback address — so a
//! TaskRun's whole path runs: launch, address, SSH, throwaway user, Secret, a login with
//! it, termination.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ec2_testbed::{ACCESS_KEY_ID, Ec2Testbed, Fault, HostsOptions, REGION, SECRET_ACCESS_KEY};
use kube_sim::wait_until;
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, CLOUD_ADDRESS_ANNOTATION, CLOUD_DYNAMIC_PLATFORM_LABEL,
    CLOUD_INSTANCE_ID_ANNOTATION,
};
use testbed::{Issued, Testbed, init_test_logging};

use crate::common_controller::{assert_error_shape, wait_error_secret};

const ARM: &str = "linux/arm64";
const TAG: &str = "mpctest-arm64";
const TYPE: &str = "t3.micro";

/// kube-sim with a dynamic platform served by the local EC2, and a controller.
struct CloudBed {
    bed: Testbed,
    ec2: Ec2Testbed,
}

impl CloudBed {
    async fn start(prefix: &str, max: u32, boot_delay: Duration, extra: &[(&str, &str)]) -> Self {
        Self::start_with_strategy(prefix, "dynamic-platforms", max, boot_delay, extra).await
    }

    async fn start_with_strategy(
        prefix: &str,
        list: &str,
        max: u32,
        boot_delay: Duration,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::start_for(prefix, ARM, list, max, boot_delay, extra).await
    }

    /// Serves `platform` from the list `list` (`dynamic-platforms`, …); `extra` keys are
    /// written as given.
    async fn start_for(
        prefix: &str,
        platform: &str,
        list: &str,
        max: u32,
        boot_delay: Duration,
        extra: &[(&str, &str)],
    ) -> Self {
        init_test_logging();
        let ec2 = Ec2Testbed::start_with(ec2_testbed::TestbedOptions {
            hosts_options: HostsOptions {
                boot_delay,
                ..HostsOptions::default()
            },
            ..ec2_testbed::TestbedOptions::default()
        })
        .await
        .expect("local EC2");
        let bed = Testbed::start_empty(prefix).await.expect("test bed");
        bed.create_labelled_secret(
            "aws-account",
            &[
                ("access-key-id", ACCESS_KEY_ID),
                ("secret-access-key", SECRET_ACCESS_KEY),
            ],
        )
        .await
        .expect("Secret");
        bed.create_labelled_secret("aws-ssh", &[("id_rsa", ec2.key_pair().private_key())])
            .await
            .expect("Secret");
        let label = platform.replace('/', "-");
        let mut data: BTreeMap<String, String> = [
            (list.to_owned(), platform.to_owned()),
            ("instance-tag".to_owned(), TAG.to_owned()),
        ]
        .into_iter()
        .chain(
            [
                ("type", "aws".to_owned()),
                ("region", REGION.to_owned()),
                ("ami", ec2.image_id().to_owned()),
                ("instance-type", TYPE.to_owned()),
                ("key-name", ec2.key_pair().name().to_owned()),
                ("aws-secret", "aws-account".to_owned()),
                ("ssh-secret", "aws-ssh".to_owned()),
                ("subnet-id", ec2.network().subnet_id.clone()),
                ("max-instances", max.to_string()),
                ("check-interval", "1".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (format!("dynamic.{label}.{k}"), v)),
        )
        .collect();
        for (k, v) in extra {
            data.insert((*k).to_owned(), (*v).to_owned());
        }
        bed.apply_host_config(data).await.expect("host-config");
        let mut cloud = CloudBed { bed, ec2 };
        cloud.start_controller().await;
        cloud
    }

    async fn start_controller(&mut self) -> usize {
        let mut settings = self.bed.settings();
        settings.ec2_endpoint = Some(self.ec2.endpoint_url());
        settings.cloud_list_interval = Duration::from_millis(500);
        settings.core.sweep_grace = Duration::from_secs(3);
        self.bed
            .start_controller(settings)
            .await
            .expect("controller")
    }

    /// Every instance moto knows with our tag: (id, state, taskRunID).
    async fn instances(&self) -> Vec<(String, String, Option<String>)> {
        instances_of(&self.ec2).await
    }
}

async fn instances_of(ec2: &Ec2Testbed) -> Vec<(String, String, Option<String>)> {
    let Ok(out) = ec2.admin().describe_instances().send().await else {
        return Vec::new();
    };
    out.reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .filter(|i| {
            i.tags()
                .iter()
                .any(|t| t.key() == Some("multi-platform-instance") && t.value() == Some(TAG))
        })
        .map(|i| {
            let tag = |key: &str| {
                i.tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
                    .map(str::to_owned)
            };
            (
                i.instance_id().unwrap_or_default().to_owned(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
                tag("taskRunID"),
            )
        })
        .collect()
}

fn live(instances: &[(String, String, Option<String>)]) -> usize {
    instances
        .iter()
        .filter(|(_, state, _)| state == "running" || state == "pending")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskrun_gets_its_own_vm_logs_in_with_the_secret_and_the_vm_is_terminated() {
    let cloud = CloudBed::start("cloud-smoke", 2, Duration::from_millis(300), &[]).await;
    let bed = &cloud.bed;
    bed.submit("vm-1", ARM).await.unwrap();
    let access = bed.wait_for_secret("vm-1").await.expect("Secret");
    let Issued::Access {
        user,
        host,
        private_key,
        ..
    } = &access
    else {
        panic!("expected SSH access, got {access:?}");
    };
    let address = host.rsplit('@').next().unwrap_or_default().to_owned();
    assert!(address.starts_with("127."), "{address}");

    // The Go controller's record on the TaskRun.
    let tr = bed.taskrun("vm-1").await.unwrap().expect("TaskRun");
    let labels = tr.metadata.labels.clone().unwrap_or_default();
    let annotations = tr.metadata.annotations.clone().unwrap_or_default();
    let instance = annotations
        .get(CLOUD_INSTANCE_ID_ANNOTATION)
        .cloned()
        .expect("cloud-instance-id");
    assert_eq!(labels.get(ASSIGNED_HOST_LABEL), Some(&instance));
    assert_eq!(
        labels.get(CLOUD_DYNAMIC_PLATFORM_LABEL).map(String::as_str),
        Some("linux-arm64")
    );
    assert_eq!(annotations.get(CLOUD_ADDRESS_ANNOTATION), Some(&address));

    // The build logs in as its throwaway user on the VM, with the Secret's key.
    let vm = cloud
        .ec2
        .hosts()
        .host(&instance)
        .expect("the instance's sshd");
    let out = vm.ssh(user, private_key, "id -un").expect("ssh");
    assert_eq!(out.stdout.trim(), user.as_str());

    // RunInstances as the Go controller sends it, plus a client token.
    let launches = cloud.ec2.proxy().requests("RunInstances");
    assert_eq!(launches.len(), 1);
    let run = &launches[0];
    assert_eq!(run.param("InstanceType"), Some(TYPE));
    assert_eq!(run.param("MinCount"), Some("1"));
    assert_eq!(run.param("EbsOptimized"), Some("true"));
    assert_eq!(
        run.param("InstanceInitiatedShutdownBehavior"),
        Some("terminate")
    );
    assert_eq!(
        run.param("BlockDeviceMapping.1.DeviceName"),
        Some("/dev/sda1")
    );
    assert_eq!(run.param("BlockDeviceMapping.1.Ebs.VolumeSize"), Some("40"));
    assert!(
        run.param("ClientToken")
            .is_some_and(|t| t.starts_with("mpc-"))
    );
    let tags: BTreeSet<(&str, &str)> = run
        .params_with_prefix("TagSpecification.1.Tag.")
        .chunks(2)
        .filter_map(|kv| match kv {
            [(_, k), (_, v)] => Some((*k, *v)),
            _ => None,
        })
        .collect();
    let id = format!("{}:vm-1", bed.namespace());
    for tag in [
        ("MultiPlatformManaged", "true"),
        ("multi-platform-instance", TAG),
        ("Name", "multi-platform-builder-vm-1"),
        ("taskRunID", id.as_str()),
    ] {
        assert!(tags.contains(&tag), "{tag:?} not in {tags:?}");
    }

    bed.complete("vm-1", true).await.unwrap();
    bed.wait_released("vm-1").await.unwrap();
    let states = cloud.instances().await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1, "terminated", "{states:?}");
    cloud
        .ec2
        .hosts()
        .wait_until_stopped(&instance, Duration::from_secs(30))
        .await
        .unwrap();
    let tr = bed.taskrun("vm-1").await.unwrap().expect("TaskRun");
    let labels = tr.metadata.labels.clone().unwrap_or_default();
    assert!(
        !labels.contains_key(ASSIGNED_HOST_LABEL)
            && !labels.contains_key(CLOUD_DYNAMIC_PLATFORM_LABEL)
    );
    cloud.bed.cleanup().await;
}

/// A burst of TaskRuns against a small limit, with EC2 refusing, throttling and failing
/// launches and listings: there are never more instances than `max-instances`, every
/// TaskRun is served or gets an error Secret that names the refusal, and nothing is left
/// running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_under_ec2_faults_never_runs_more_than_max_instances_and_leaves_nothing() {
    const MAX: usize = 2;
    const TASKRUNS: usize = 6;
    let cloud = CloudBed::start("cloud-burst", MAX as u32, Duration::from_millis(200), &[]).await;
    let proxy = cloud.ec2.proxy();
    proxy.inject(Fault::ec2_error("RunInstances", "InsufficientInstanceCapacity").rate(0.25, 7));
    proxy.inject(Fault::ec2_error("RunInstances", "RequestLimitExceeded").times(2));
    proxy.inject(Fault::status("DescribeInstances", 500).rate(0.1, 11));
    proxy.inject(Fault::delay("RunInstances", Duration::from_millis(300)).rate(0.5, 3));

    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        let admin = ec2_testbed::admin_client(&cloud.ec2.moto().endpoint_url());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(out) = admin.describe_instances().send().await {
                    let live = out
                        .reservations()
                        .iter()
                        .flat_map(aws_sdk_ec2::types::Reservation::instances)
                        .filter(|i| {
                            matches!(
                                i.state()
                                    .and_then(|s| s.name())
                                    .map(aws_sdk_ec2::types::InstanceStateName::as_str),
                                Some("running" | "pending")
                            )
                        })
                        .count();
                    peak.fetch_max(live, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let names: Vec<String> = (0..TASKRUNS).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        cloud.bed.submit(name, ARM).await.unwrap();
    }
    let mut served = 0;
    let mut refused = 0;
    for name in &names {
        match cloud.bed.wait_for_secret(name).await.expect("Secret") {
            Issued::Access { .. } => served += 1,
            Issued::Error(text) => {
                assert_error_shape(&text, ARM);
                assert!(
                    text.contains("InsufficientInstanceCapacity")
                        || text.contains("RequestLimitExceeded"),
                    "{name}: {text}"
                );
                refused += 1;
            }
            other => panic!("{name}: {other:?}"),
        }
        // Tekton finishes each as soon as it has its answer, freeing the slot.
        cloud.bed.complete(name, true).await.unwrap();
    }
    for name in &names {
        cloud.bed.wait_released(name).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(served + refused, TASKRUNS);
    assert!(served > 0, "every TaskRun was refused");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= MAX,
        "{peak} instances ran at once, max-instances is {MAX}"
    );
    let left = cloud.instances().await;
    assert_eq!(live(&left), 0, "instances left running: {left:?}");
    cloud.bed.cleanup().await;
}

/// A controller killed after RunInstances reached EC2 but before it recorded the
/// instance: the next controller launches again with the same client token and gets the
/// same instance, so the TaskRun never has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_launch_does_not_start_a_second_instance() {
    let mut cloud = CloudBed::start("cloud-kill", 2, Duration::ZERO, &[]).await;
    let hold = cloud
        .ec2
        .proxy()
        .inject(Fault::delay("RunInstances", Duration::from_secs(2)).times(1));
    cloud.bed.submit("killed", ARM).await.unwrap();
    cloud
        .ec2
        .proxy()
        .wait_for_calls("a launch", Duration::from_secs(60), |calls| {
            calls.iter().any(|c| c.action == "RunInstances")
        })
        .await
        .unwrap();
    cloud.bed.kill_controller(0).await;
    // The lost request still reaches EC2 and launches.
    wait_until(
        Duration::from_secs(30),
        "the lost launch reached EC2",
        || async { cloud.ec2.proxy().forwarded("RunInstances") >= 1 },
    )
    .await
    .unwrap();
    cloud.ec2.proxy().remove(hold);
    cloud.start_controller().await;
    let access = cloud.bed.wait_for_secret("killed").await.expect("Secret");
    assert!(matches!(access, Issued::Access { .. }), "{access:?}");
    let id = format!("{}:killed", cloud.bed.namespace());
    let mine: Vec<_> = cloud
        .instances()
        .await
        .into_iter()
        .filter(|(_, _, tr)| tr.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "one instance for the TaskRun: {mine:?}");
    let tokens: BTreeSet<String> = cloud
        .ec2
        .proxy()
        .requests("RunInstances")
        .iter()
        .filter_map(|r| r.param("ClientToken").map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 1, "the same client token: {tokens:?}");
    cloud.bed.complete("killed", true).await.unwrap();
    cloud.bed.wait_released("killed").await.unwrap();
    cloud.bed.cleanup().await;
}

/// EC2 out of capacity for good: three launches, then an error Secret that names the
/// platform, the instance type and the AWS error code; nothing was launched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_refused_three_times_give_an_error_secret_naming_the_aws_code() {
    let cloud = CloudBed::start("cloud-refused", 2, Duration::ZERO, &[]).await;
    cloud.ec2.proxy().inject(Fault::ec2_error(
        "RunInstances",
        "InsufficientInstanceCapacity",
    ));
    cloud.bed.submit("refused", ARM).await.unwrap();
    let text = wait_error_secret(&cloud.bed, "refused").await;
    assert_error_shape(&text, ARM);
    for part in [
        "no linux/arm64 VM could be launched",
        TYPE,
        "InsufficientInstanceCapacity",
        "3 time(s)",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert_eq!(cloud.ec2.proxy().calls("RunInstances"), 3);
    let failed = cloud
        .bed
        .wait_event("refused", "LaunchFailed")
        .await
        .unwrap();
    assert_eq!(failed.type_, "Warning");
    cloud.bed.complete("refused", false).await.unwrap();
    cloud.bed.wait_released("refused").await.unwrap();
    assert_eq!(live(&cloud.instances().await), 0);
    cloud.bed.cleanup().await;
}

/// A VM whose sshd never answers within allocation-timeout is terminated, then the
/// TaskRun gets an error Secret saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_does_not_answer_within_the_allocation_timeout_is_terminated() {
    let cloud = CloudBed::start(
        "cloud-timeout",
        2,
        Duration::from_secs(3600),
        &[("dynamic.linux-arm64.allocation-timeout", "4")],
    )
    .await;
    cloud.bed.submit("slow", ARM).await.unwrap();
    let text = wait_error_secret(&cloud.bed, "slow").await;
    assert!(
        text.contains("did not answer SSH within the allocation timeout of 4s"),
        "{text}"
    );
    assert!(text.contains("The instance is terminated"), "{text}");
    let states = cloud.instances().await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1, "terminated", "{states:?}");
    cloud.bed.complete("slow", false).await.unwrap();
    cloud.bed.wait_released("slow").await.unwrap();
    cloud.bed.cleanup().await;
}

/// An instance with our tags that no TaskRun owns (a TaskRun deleted while no controller
/// ran, a crash) counts against the limit and is terminated after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_instances_are_swept() {
    let cloud = CloudBed::start("cloud-sweep", 2, Duration::ZERO, &[]).await;
    let leaked = cloud
        .ec2
        .admin()
        .run_instances()
        .image_id(cloud.ec2.image_id())
        .instance_type(aws_sdk_ec2::types::InstanceType::from(TYPE))
        .min_count(1)
        .max_count(1)
        .subnet_id(cloud.ec2.network().subnet_id.clone())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(tag("MultiPlatformManaged", "true"))
                .tags(tag("multi-platform-instance", TAG))
                .tags(tag("taskRunID", "gone:since-yesterday"))
                .build(),
        )
        .send()
        .await
        .expect("an instance nobody owns");
    let id = leaked.instances()[0]
        .instance_id()
        .unwrap_or_default()
        .to_owned();
    wait_until(
        Duration::from_secs(60),
        "the leaked instance swept",
        || async {
            cloud
                .instances()
                .await
                .iter()
                .any(|(i, state, _)| *i == id && state == "terminated")
        },
    )
    .await
    .unwrap();
    let events = cloud.bed.host_config_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "LeakedInstancesTerminated" && e.note.contains(&id)),
        "{events:?}"
    );
    cloud.bed.cleanup().await;
}

fn tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

/// A dynamic pool under a burst: it grows to `max-instances`, shares each instance among
/// `concurrency` TaskRuns (never more users on one), ages out past `max-age` and shrinks
/// to nothing, leaving no user and no instance behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_grows_to_its_limit_shares_instances_and_shrinks_to_nothing() {
    const MAX: usize = 2;
    const CONCURRENCY: usize = 2;
    const TASKRUNS: usize = 6;
    let cloud = CloudBed::start_with_strategy(
        "cloud-pool",
        "dynamic-pool-platforms",
        MAX as u32,
        Duration::from_millis(200),
        &[
            ("dynamic.linux-arm64.concurrency", "2"),
            ("dynamic.linux-arm64.max-age", "1"),
        ],
    )
    .await;

    let over = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let hosts = cloud.ec2.hosts();
    let admin = ec2_testbed::admin_client(&cloud.ec2.moto().endpoint_url());
    // Samples capacity while the burst runs; joined with it, so it can borrow the testbed.
    let sampler = async {
        while !stop.load(Ordering::Relaxed) {
            let live = instances_with(&admin).await;
            let alive = live
                .iter()
                .filter(|(_, s, _)| s == "running" || s == "pending")
                .count();
            if alive > MAX {
                over.lock().unwrap().push(format!("instances: {live:?}"));
            }
            for (id, state, _) in &live {
                if state != "running" {
                    continue;
                }
                if let Some(host) = hosts.host(id)
                    && let Ok(users) = host.build_users()
                    && users.len() > CONCURRENCY
                {
                    over.lock().unwrap().push(format!("{id}: {users:?}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let burst = async {
        let names: Vec<String> = (0..TASKRUNS).map(|i| format!("pool-{i}")).collect();
        for name in &names {
            cloud.bed.submit(name, ARM).await.unwrap();
        }
        for name in &names {
            let access = cloud.bed.wait_for_secret(name).await.expect("Secret");
            assert!(
                matches!(access, Issued::Access { .. }),
                "{name}: {access:?}"
            );
            cloud.bed.complete(name, true).await.unwrap();
        }
        for name in &names {
            cloud.bed.wait_released(name).await.unwrap();
        }
        let launched = cloud.ec2.proxy().calls("RunInstances");
        assert!(
            (1..=MAX).contains(&launched),
            "{launched} instances launched for a pool of at most {MAX}"
        );
        // Past max-age (one minute) every idle instance is retired.
        let shrunk = wait_until(
            Duration::from_secs(150),
            "the pool shrank to nothing",
            || async { live(&cloud.instances().await) == 0 },
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        shrunk.unwrap();
    };
    tokio::join!(sampler, burst);
    let over = over.lock().unwrap().clone();
    assert!(over.is_empty(), "over capacity: {over:?}");
    cloud.bed.cleanup().await;
}

async fn instances_with(admin: &aws_sdk_ec2::Client) -> Vec<(String, String, Option<String>)> {
    let Ok(out) = admin.describe_instances().send().await else {
        return Vec::new();
    };
    out.reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_owned(),
                i.state()
                    .and_then(aws_sdk_ec2::types::InstanceState::name)
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
                None,
            )
        })
        .collect()
}

/// What a macOS VM's user data does: a `konflux-builder` account whose private key is
/// left in `ec2-user`'s home for the controller to hand over.
const MACOS_USER_DATA: &str = r#"set -eu
useradd --create-home --user-group --shell /bin/bash --password '*' konflux-builder
ssh-keygen -q -t ed25519 -N '' -C konflux-builder -f /home/ec2-user/konflux-builder.new
install -d -m 700 -o konflux-builder -g konflux-builder /home/konflux-builder/.ssh
install -m 600 -o konflux-builder -g konflux-builder /home/ec2-user/konflux-builder.new.pub \
  /home/konflux-builder/.ssh/authorized_keys
rm /home/ec2-user/konflux-builder.new.pub
chown ec2-user:ec2-user /home/ec2-user/konflux-builder.new
mv /home/ec2-user/konflux-builder.new /home/ec2-user/konflux-builder
"#;

/// A macOS VM (a test host playing one): the controller waits for the user data's key
/// file, hands the `konflux-builder` account over in the Secret, deletes the file, and
/// terminates the VM after the TaskRun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_macos_vm_hands_its_builder_account_over_and_the_key_file_is_deleted() {
    const MAC: &str = "macos/arm64";
    let cloud = CloudBed::start_for(
        "cloud-macos",
        MAC,
        "dynamic-platforms",
        1,
        Duration::ZERO,
        &[],
    )
    .await;
    let bed = &cloud.bed;
    bed.submit("mac-1", MAC).await.unwrap();
    wait_until(Duration::from_secs(60), "an instance for mac-1", || async {
        !cloud.instances().await.is_empty()
    })
    .await
    .unwrap();
    let instance = cloud.instances().await[0].0.clone();
    let vm = cloud
        .ec2
        .hosts()
        .wait_for_host(&instance, Duration::from_secs(60))
        .await
        .unwrap();
    // The VM is up before its user data has run: no Secret yet.
    assert!(bed.secret("mac-1").await.unwrap().is_none());
    let out = vm.shell(MACOS_USER_DATA).unwrap();
    assert!(out.success(), "user data: {}", out.stderr);
    let key_file = vm.dir().join("home/ec2-user/konflux-builder");

    let access = bed.wait_for_secret("mac-1").await.expect("Secret");
    let Issued::Access {
        user,
        host,
        private_key,
        user_dir,
    } = &access
    else {
        panic!("expected SSH access, got {access:?}");
    };
    assert_eq!(user, "konflux-builder");
    assert_eq!(host, &format!("konflux-builder@{}", vm.address()));
    assert_eq!(user_dir, "/Users/konflux-builder");
    let secret = bed.secret("mac-1").await.unwrap().expect("Secret");
    let known_hosts = secret
        .data
        .as_ref()
        .and_then(|d| d.get("known_hosts"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default();
    assert!(
        known_hosts.contains(vm.host_key().split(' ').nth(1).unwrap_or("-")),
        "the VM's host key is pinned: {known_hosts}"
    );
    // The build logs in as the builder with the Secret's key; the VM keeps no copy
    // outside the builder account.
    let out = vm.ssh(user, private_key, "id -un").expect("ssh");
    assert_eq!(out.stdout.trim(), "konflux-builder");
    wait_until(Duration::from_secs(10), "the key file deleted", || async {
        !key_file.exists()
    })
    .await
    .unwrap();
    // No throwaway user was made on it.
    assert_eq!(vm.build_users().unwrap(), Vec::<String>::new());

    bed.complete("mac-1", true).await.unwrap();
    bed.wait_released("mac-1").await.unwrap();
    let states = cloud.instances().await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1, "terminated", "{states:?}");
    cloud.bed.cleanup().await;
}
