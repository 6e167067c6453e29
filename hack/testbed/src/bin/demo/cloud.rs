//! `demo --cloud`: the same story on a dynamic AWS platform. The TaskRun gets an EC2
//! instance of its own from a local EC2 — moto's server behind the ec2-testbed fault
//! proxy (no faults injected), with a real sshd for the instance on its loopback private
//! address after a boot delay — and the instance is terminated when the TaskRun is done.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use ec2_testbed::{
    ACCESS_KEY_ID, Ec2Testbed, HostEvent, HostsOptions, MOTO_VERSION, Outcome, REGION,
    RecordedCall, SECRET_ACCESS_KEY, TestbedOptions,
};
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, CLOUD_ADDRESS_ANNOTATION, CLOUD_DYNAMIC_PLATFORM_LABEL,
    CLOUD_INSTANCE_ID_ANNOTATION, HOST_CONFIG_NAME, SECRET_LABEL, secret_name,
};
use multi_platform_controller::remote::AdminKey;
use testbed::Testbed;

use crate::{
    Args, Failure, Started, Step, Steps, TASKRUN, build_step, human, machine_platform,
    our_annotations, our_labels, secret_text, shorten_key, show_taskrun, submit_taskrun,
    taskrun_events, wait_for_access, wait_for_release,
};

/// The number of steps of `--cloud`.
pub const TOTAL_STEPS: usize = 12;

/// How long the local EC2's instances take to "boot" (their sshd starts this long after
/// the instance is first listed). A real instance takes 30–60 s; the demo keeps it short.
const BOOT_DELAY: Duration = Duration::from_secs(1);
/// The platform's `instance-tag`: how its instances are counted and found.
const INSTANCE_TAG: &str = "demo-cloud";
const AWS_SECRET: &str = "aws-account";
const SSH_SECRET: &str = "aws-ssh-key";
const MAX_INSTANCES: u32 = 2;

/// The build-host side of the demo (EC2 names for this machine's architecture).
fn arch_names() -> (&'static str, &'static str) {
    // (the AMI name's architecture, an instance type of that architecture)
    match std::env::consts::ARCH {
        "aarch64" => ("arm64", "m6g.large"),
        _ => ("x86_64", "m6a.large"),
    }
}

/// An Amazon Linux 2 AMI of moto's catalogue for this machine's architecture; the
/// testbed's own pick (arm64) when the catalogue has none.
async fn pick_image(ec2: &Ec2Testbed) -> String {
    let (arch, _) = arch_names();
    let found = ec2
        .admin()
        .describe_images()
        .owners("amazon")
        .filters(
            Filter::builder()
                .name("name")
                .values(format!("amzn2-ami-kernel-5.10-hvm-*-{arch}-gp2"))
                .build(),
        )
        .send()
        .await
        .ok()
        .and_then(|out| {
            let mut ids: Vec<String> = out
                .images()
                .iter()
                .filter_map(|i| i.image_id().map(str::to_owned))
                .collect();
            ids.sort_unstable();
            ids.into_iter().next()
        });
    found.unwrap_or_else(|| ec2.image_id().to_owned())
}

/// The local EC2's record of the first `action` call moto answered with 200.
fn first_answered(ec2: &Ec2Testbed, action: &str) -> Option<RecordedCall> {
    ec2.proxy()
        .requests(action)
        .into_iter()
        .find(|c| c.outcome == Outcome::Forwarded { status: 200 })
}

/// The instance's state and private address, as moto (EC2) reports them.
async fn describe(ec2: &Ec2Testbed, instance: &str) -> Step<(String, Option<String>)> {
    let out = ec2
        .admin()
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(|e| Failure(format!("describe {instance}: {e}")))?;
    let found = out
        .reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .find(|i| i.instance_id() == Some(instance))
        .ok_or_else(|| Failure(format!("EC2 does not know instance {instance}")))?;
    Ok((
        found
            .state()
            .and_then(|s| s.name())
            .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned()),
        found.private_ip_address().map(str::to_owned),
    ))
}

/// The tags of a recorded `RunInstances` (`TagSpecification.1.Tag.N.Key/Value`).
fn launch_tags(call: &RecordedCall) -> Vec<String> {
    call.params_with_prefix("TagSpecification.1.Tag.")
        .chunks(2)
        .filter_map(|kv| match kv {
            [(_, k), (_, v)] => Some(format!("{k}={v}")),
            _ => None,
        })
        .collect()
}

/// Takes one TaskRun through a dynamic AWS platform, printing every step.
pub async fn walk_through(args: &Args, steps: &mut Steps, started: &mut Started) -> Step {
    let wait = Duration::from_secs(args.step_timeout);
    let dynamic = machine_platform();
    let platform = args.platform.clone().unwrap_or_else(|| dynamic.clone());
    let key = |name: &str| format!("dynamic.{}.{name}", dynamic.replace('/', "-"));

    steps.begin("Start kube-sim, an in-memory Kubernetes API server");
    let bed = started.bed.insert(Testbed::start_empty("demo").await?);
    bed.set_wait(wait);
    let url = bed.env().server().map_or_else(
        || "(MPC_TEST_KUBECONFIG)".to_owned(),
        |s| s.url().to_owned(),
    );
    steps.say(format!("API server {url}, namespace {}", bed.namespace()));
    steps.say("tekton.dev/v1 TaskRun CRD installed (no Tekton: this demo plays its part)");
    steps.done();

    steps.begin("Start a local EC2: moto's server, a fault proxy, a loopback network");
    let ec2 = started.ec2.insert(
        Ec2Testbed::start_with(TestbedOptions {
            hosts_options: HostsOptions {
                boot_delay: BOOT_DELAY,
                ..HostsOptions::default()
            },
            ..TestbedOptions::default()
        })
        .await?,
    );
    let image = pick_image(ec2).await;
    let (_, instance_type) = arch_names();
    steps.say(format!(
        "moto {MOTO_VERSION} (AWS's EC2 API, in memory) on {}",
        ec2.moto().endpoint_url()
    ));
    steps.say(format!(
        "fault proxy on {} (the controller's EC2 endpoint; it records every call, no faults \
         injected)",
        ec2.endpoint_url()
    ));
    steps.say(format!(
        "VPC {} with subnet {} ({}): instances get loopback private addresses",
        ec2.network().vpc_cidr,
        ec2.network().subnet_cidr,
        ec2.network().subnet_id
    ));
    let pair = AdminKey::parse(ec2.key_pair().private_key().as_bytes())
        .map_err(|e| Failure(format!("the key pair's private key: {e}")))?;
    steps.say(format!(
        "key pair {} imported ({} {}); AMI {image}",
        ec2.key_pair().name(),
        pair.algorithm(),
        pair.fingerprint()
    ));
    steps.say(format!(
        "each instance gets a real sshd with ec2-user (sudo, the key pair's key) on its \
         private address {} after it is first listed: its boot (a real one takes 30-60 s)",
        human(BOOT_DELAY)
    ));
    steps.done();

    steps.begin(
        "Create the AWS credentials and SSH key Secrets and the host-config ConfigMap (the \
         cluster admin's part)",
    );
    bed.create_labelled_secret(
        AWS_SECRET,
        &[
            ("access-key-id", ACCESS_KEY_ID),
            ("secret-access-key", SECRET_ACCESS_KEY),
        ],
    )
    .await?;
    bed.create_labelled_secret(SSH_SECRET, &[("id_rsa", ec2.key_pair().private_key())])
        .await?;
    steps.say(format!(
        "Secret {AWS_SECRET}: access-key-id, secret-access-key (moto's test credentials), \
         label {SECRET_LABEL}=true"
    ));
    steps.say(format!(
        "Secret {SSH_SECRET}: id_rsa (the key pair's private key, {} {}, not shown), same label",
        pair.algorithm(),
        pair.fingerprint()
    ));
    let data: BTreeMap<String, String> = [
        ("dynamic-platforms".to_owned(), dynamic.clone()),
        ("instance-tag".to_owned(), INSTANCE_TAG.to_owned()),
        (key("type"), "aws".to_owned()),
        (key("region"), REGION.to_owned()),
        (key("ami"), image.clone()),
        (key("instance-type"), instance_type.to_owned()),
        (key("key-name"), ec2.key_pair().name().to_owned()),
        (key("aws-secret"), AWS_SECRET.to_owned()),
        (key("ssh-secret"), SSH_SECRET.to_owned()),
        (key("subnet-id"), ec2.network().subnet_id.clone()),
        (key("max-instances"), MAX_INSTANCES.to_string()),
        // Looks at the booting instance at least every second (default 60).
        (key("check-interval"), "1".to_owned()),
    ]
    .into_iter()
    .collect();
    bed.apply_host_config(data.clone()).await?;
    steps.say(format!("ConfigMap {HOST_CONFIG_NAME}:"));
    for (key, value) in &data {
        steps.say(format!("  {key}: {value}"));
    }
    steps.done();

    steps.begin(
        "Start the controller (`run`, in-process, EC2 endpoint: the fault proxy) and wait \
         until it is ready and has listed the platform's instances",
    );
    let mut settings = bed.settings();
    settings.ec2_endpoint = Some(ec2.endpoint_url());
    let index = bed.start_controller(settings).await?;
    let controller = bed.controller(index);
    kube_sim::wait_until(wait, "the controller is ready", || async {
        controller.health.is_ready()
    })
    .await?;
    steps.say("ready: TaskRun, host-config and Secret caches synced");
    ec2.proxy()
        .wait_for_calls(
            "the first listing of the platform's instances",
            wait,
            |calls| {
                calls.iter().any(|c| {
                    c.action == "DescribeInstances"
                        && c.outcome == Outcome::Forwarded { status: 200 }
                })
            },
        )
        .await?;
    let running = ec2
        .admin()
        .describe_instances()
        .send()
        .await
        .map_err(|e| Failure(format!("list the local EC2's instances: {e}")))?
        .reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .count();
    steps.say(format!(
        "DescribeInstances (tag multi-platform-instance={INSTANCE_TAG}): {running} instance(s); \
         up to {MAX_INSTANCES} at once (max-instances), and nothing is launched before this \
         first listing"
    ));
    steps.done();

    let eligible = submit_taskrun(bed, steps, &platform).await?;

    steps.begin("The controller launches an EC2 instance for the TaskRun");
    let instance = kube_sim::wait_for(wait, "an instance for the TaskRun", || async {
        if let Ok(Some(tr)) = bed.taskrun(TASKRUN).await
            && let Some(id) = tr
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLOUD_INSTANCE_ID_ANNOTATION))
        {
            return Some(Ok(id.clone()));
        }
        match bed.secret(TASKRUN).await {
            Ok(Some(secret)) => secret_text(&secret).get("error").map(|e| Err(e.clone())),
            _ => None,
        }
    })
    .await?
    .map_err(|error| {
        Failure(format!(
            "the controller wrote an error Secret instead of launching an instance:\n{}",
            error.trim_end()
        ))
    })?;
    let launch = first_answered(ec2, "RunInstances")
        .ok_or_else(|| Failure("no RunInstances call reached the local EC2".to_owned()))?;
    let launched_at = launch.received;
    steps.say(format!(
        "RunInstances reached EC2 {} after status.taskSpec was filled; instance {instance}",
        human(launched_at.saturating_duration_since(eligible))
    ));
    let param = |name: &str| launch.param(name).unwrap_or("(not sent)").to_owned();
    steps.say(format!(
        "  ImageId {}, InstanceType {}, KeyName {}, SubnetId {}, MinCount {} MaxCount {}",
        param("ImageId"),
        param("InstanceType"),
        param("KeyName"),
        param("SubnetId"),
        param("MinCount"),
        param("MaxCount")
    ));
    steps.say(format!(
        "  root volume {}: {} GB {}; InstanceInitiatedShutdownBehavior {}",
        param("BlockDeviceMapping.1.DeviceName"),
        param("BlockDeviceMapping.1.Ebs.VolumeSize"),
        param("BlockDeviceMapping.1.Ebs.VolumeType"),
        param("InstanceInitiatedShutdownBehavior")
    ));
    steps.say(format!("  tags: {}", launch_tags(&launch).join(", ")));
    steps.say(format!(
        "  ClientToken {} (from the TaskRun's uid and launch attempt: a launch repeated after \
         a crash or a lost answer finds this instance instead of starting a second)",
        param("ClientToken")
    ));
    let taskrun = show_taskrun(bed, steps).await?;
    steps.say(format!("  annotations {}", our_annotations(&taskrun)));
    steps.done();

    steps.begin("The instance boots: wait for its sshd");
    let (state, address) = describe(ec2, &instance).await?;
    steps.say(format!(
        "EC2 says: {instance} {state}, private address {}",
        address.as_deref().unwrap_or("(none yet)")
    ));
    let (vm_address, vm_dir, vm_key) = {
        let vm = ec2.hosts().wait_for_host(&instance, wait).await?;
        (vm.address(), vm.dir().to_owned(), vm.host_key().to_owned())
    };
    let listening = ec2
        .hosts()
        .timeline()
        .into_iter()
        .find_map(|(at, e)| match e {
            HostEvent::Started { instance: i, .. } if i == instance => Some(at),
            _ => None,
        })
        .unwrap_or_else(Instant::now);
    steps.say(format!(
        "sshd listening on {vm_address}:22, {} after RunInstances (the {} boot delay and \
         sshd's start)",
        human(listening.saturating_duration_since(launched_at)),
        human(BOOT_DELAY)
    ));
    steps.say(format!(
        "host key {} (new to everyone: the controller trusts it on first contact and pins it \
         in the Secret)",
        shorten_key(&vm_key)
    ));
    steps.done();

    steps.begin(
        "The controller prepares the VM (build user through ec2-user with sudo): wait for the \
         TaskRun's Secret",
    );
    let (data, login) = wait_for_access(bed, steps, eligible, wait).await?;
    let user = login.split('@').next().unwrap_or_default().to_owned();
    steps.say(format!(
        "{} after the VM's sshd listened",
        human(listening.elapsed())
    ));
    let on_vm = ec2
        .hosts()
        .host(&instance)
        .ok_or_else(|| Failure(format!("the VM of {instance} is gone")))?
        .build_users()?;
    if !on_vm.contains(&user) {
        return Err(Failure(format!(
            "user {user} is not on the VM (build users there: {on_vm:?})"
        )));
    }
    steps.say(format!(
        "user {user} exists on the VM {instance} (and nowhere else)"
    ));
    let taskrun = bed
        .taskrun(TASKRUN)
        .await?
        .ok_or_else(|| Failure(format!("TaskRun {TASKRUN} vanished")))?;
    let recorded = taskrun
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLOUD_ADDRESS_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    steps.say(format!(
        "TaskRun {TASKRUN}: annotation {CLOUD_ADDRESS_ANNOTATION}={recorded}"
    ));
    steps.done();

    steps.begin("Run the build step on the VM: `ssh -i id_rsa <host> uname -m`, as the Task does");
    build_step(steps, &data, &login, wait).await?;
    steps.say(format!(
        "(the VM is an sshd on this machine at {vm_address}, so it answers with this \
         machine's architecture)"
    ));
    steps.done();

    steps.begin("Tekton completes the TaskRun (Succeeded)");
    // Taken before the call: the controller may act before the API call returns.
    let completed = Instant::now();
    bed.complete(TASKRUN, true).await?;
    steps.say("status: Succeeded, completionTime set");
    steps.done();

    steps.begin(
        "The controller terminates the instance and releases the TaskRun: wait until the \
         finalizer is gone, then check",
    );
    wait_for_release(bed, steps, completed, wait).await?;
    let terminate = first_answered(ec2, "TerminateInstances")
        .ok_or_else(|| Failure("no TerminateInstances call reached the local EC2".to_owned()))?;
    let terminated_ids: Vec<&str> = terminate
        .params_with_prefix("InstanceId.")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    if terminated_ids != [instance.as_str()] {
        return Err(Failure(format!(
            "TerminateInstances named {terminated_ids:?}, not {instance}"
        )));
    }
    steps.say(format!(
        "TerminateInstances InstanceId.1={instance} reached EC2 {} after completion; the \
         finalizer stayed until EC2 accepted it",
        human(terminate.received.saturating_duration_since(completed))
    ));
    let (state, _) = describe(ec2, &instance).await?;
    if state != InstanceStateName::Terminated.as_str()
        && state != InstanceStateName::ShuttingDown.as_str()
    {
        return Err(Failure(format!("instance {instance} is {state}")));
    }
    ec2.hosts().wait_until_stopped(&instance, wait).await?;
    if vm_dir.exists() {
        return Err(Failure(format!(
            "the VM's directory {} is still there",
            vm_dir.display()
        )));
    }
    if TcpStream::connect_timeout(&(vm_address, 22).into(), Duration::from_secs(2)).is_ok() {
        return Err(Failure(format!(
            "something still listens on {vm_address}:22"
        )));
    }
    steps.say(format!(
        "EC2 says: {instance} {state}; its sshd stopped, {vm_address}:22 closed, {} removed",
        vm_dir.display()
    ));
    if bed.secret(TASKRUN).await?.is_some() {
        return Err(Failure(format!(
            "Secret {} is still there",
            secret_name(TASKRUN)
        )));
    }
    steps.say(format!("Secret {}: gone", secret_name(TASKRUN)));
    let taskrun = bed.taskrun(TASKRUN).await?;
    let (labels, annotations) = taskrun
        .as_ref()
        .map(|tr| (our_labels(tr), our_annotations(tr)))
        .unwrap_or_default();
    let still_marked = taskrun.as_ref().is_some_and(|tr| {
        let labelled = tr.metadata.labels.as_ref().is_some_and(|l| {
            l.contains_key(ASSIGNED_HOST_LABEL) || l.contains_key(CLOUD_DYNAMIC_PLATFORM_LABEL)
        });
        let annotated = tr.metadata.annotations.as_ref().is_some_and(|a| {
            a.contains_key(CLOUD_INSTANCE_ID_ANNOTATION) || a.contains_key(CLOUD_ADDRESS_ANNOTATION)
        });
        labelled || annotated
    });
    if still_marked {
        return Err(Failure(format!(
            "TaskRun {TASKRUN} still carries the instance's marks: {labels}; {annotations}"
        )));
    }
    steps.say(format!(
        "TaskRun {TASKRUN}: finalizer gone; assigned-host, cloud-dynamic-platform, \
         cloud-instance-id and cloud-address gone"
    ));
    steps.say(format!(
        "  kept as a record: labels {labels}; annotations {annotations}"
    ));
    let events = taskrun_events(bed, wait).await?;
    steps.say(format!("Events on the TaskRun: {}", events.join("; ")));
    steps.done();

    Ok(())
}

/// Stops the local EC2 (the instance hosts, the proxy, moto) and checks that moto is gone
/// and no instance host is left.
pub async fn tear_down(ec2: Option<Ec2Testbed>, steps: &Steps) -> Result<(), String> {
    let Some(ec2) = ec2 else {
        return Ok(());
    };
    let moto = ec2.moto().addr();
    let left: Vec<(String, Ipv4Addr, PathBuf)> = ec2
        .hosts()
        .view()
        .hosts
        .into_iter()
        .filter_map(|(id, address)| {
            let dir = ec2.hosts().host(&id)?.dir().to_owned();
            Some((id, address, dir))
        })
        .collect();
    drop(ec2);
    if TcpStream::connect_timeout(&moto, Duration::from_secs(2)).is_ok() {
        return Err(format!("moto still answers on {moto}"));
    }
    for (id, address, dir) in &left {
        if dir.exists() {
            return Err(format!(
                "the host of instance {id} ({address}) is still there: {}",
                dir.display()
            ));
        }
    }
    steps.say(format!(
        "local EC2 stopped: moto ({moto}) and the fault proxy ended{}",
        if left.is_empty() {
            String::new()
        } else {
            format!(", {} instance host(s) stopped", left.len())
        }
    ));
    Ok(())
}

/// `--keep --cloud`: where the local EC2 is.
pub fn keep_hint(ec2: &Ec2Testbed) {
    println!(
        "  the local EC2: AWS_ENDPOINT_URL_EC2={} (the fault proxy; moto itself at {}, its \
         state at {}/moto-api/)",
        ec2.endpoint_url(),
        ec2.moto().endpoint_url(),
        ec2.moto().endpoint_url()
    );
}
