//! The testbed's promises: an instance launched through the proxy into the testbed's
//! subnet becomes a real sshd host on its loopback address, reachable as `ec2-user` with
//! the key pair's private key (passwordless sudo), after the boot delay, and gone when
//! the instance is terminated.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use ec2_testbed::{
    ACCESS_KEY_ID, Ec2Testbed, HostEvent, HostsOptions, KeyKind, REGION, SECRET_ACCESS_KEY,
    TestbedOptions,
};
use mpc_ec2::{Credentials, Ec2Client, InstanceId, LaunchRequest, TaskRunRef};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn client(bed: &Ec2Testbed) -> Ec2Client {
    Ec2Client::builder(
        Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
        REGION,
    )
    .endpoint_url(bed.endpoint_url())
    .build()
    .await
}

fn request(bed: &Ec2Testbed, task_run: &str) -> LaunchRequest {
    LaunchRequest {
        image_id: bed.image_id().to_owned(),
        instance_type: "m6g.large".into(),
        key_name: bed.key_pair().name().to_owned(),
        security_group_names: vec![],
        security_group_ids: vec![],
        subnet_id: Some(bed.network().subnet_id.clone()),
        instance_profile_name: None,
        instance_profile_arn: None,
        user_data: None,
        disk_gb: 40,
        iops: None,
        throughput: None,
        spot_max_price: None,
        dedicated_host: None,
        instance_tag: "linux-arm64".into(),
        task_run: TaskRunRef {
            namespace: "builds".into(),
            name: task_run.into(),
        },
        additional_tags: BTreeMap::new(),
        client_token: format!("{task_run}-uid-0"),
    }
}

async fn start(options: TestbedOptions) -> Ec2Testbed {
    Ec2Testbed::start_with(options)
        .await
        .expect("start the EC2 testbed (moto is installed by hack/test.sh; needs root)")
}

/// Logs in as ec2-user with the key pair's key (OpenSSH client, host key checked).
async fn ssh(bed: &Ec2Testbed, instance: &InstanceId, command: &'static str) -> (bool, String) {
    let host = bed.hosts().host(instance.as_str()).expect("a host");
    let key = bed.key_pair().private_key().to_owned();
    let out = tokio::task::spawn_blocking(move || host.ssh("ec2-user", &key, command))
        .await
        .unwrap()
        .unwrap();
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

#[tokio::test]
async fn a_launched_instance_is_a_real_host_until_it_is_terminated() {
    let bed = start(TestbedOptions::default()).await;
    let ec2 = client(&bed).await;
    let id = ec2.launch(&request(&bed, "build-1")).await.unwrap();
    let host = bed
        .hosts()
        .wait_for_host(id.as_str(), TIMEOUT)
        .await
        .unwrap();
    let info = ec2.describe(&id, false).await.unwrap().unwrap();
    let address: Ipv4Addr = info.address.as_deref().unwrap().parse().unwrap();
    assert_eq!(
        host.address(),
        address,
        "the host is on the instance's address"
    );
    assert!(address.is_loopback() && bed.network().contains(address));
    drop(host);

    let (ok, out) = ssh(&bed, &id, "id -un && sudo -n true && echo sudo-ok").await;
    assert!(ok, "{out}");
    assert_eq!(out, "ec2-user\nsudo-ok\n");

    ec2.terminate(std::slice::from_ref(&id)).await.unwrap();
    bed.hosts()
        .wait_until_stopped(id.as_str(), TIMEOUT)
        .await
        .unwrap();
    assert!(bed.hosts().host(id.as_str()).is_none());
    assert!(
        TcpStream::connect_timeout(&(address, 22).into(), Duration::from_secs(5)).is_err(),
        "sshd still listens after the instance ended"
    );
    assert_eq!(
        bed.hosts().events(),
        vec![
            HostEvent::Started {
                instance: id.to_string(),
                address
            },
            HostEvent::Stopped {
                instance: id.to_string(),
                address
            },
        ]
    );
}

#[tokio::test]
async fn a_host_comes_up_only_after_the_boot_delay() {
    let boot_delay = Duration::from_millis(1500);
    let bed = start(TestbedOptions {
        hosts_options: HostsOptions {
            boot_delay,
            ..HostsOptions::default()
        },
        ..TestbedOptions::default()
    })
    .await;
    let ec2 = client(&bed).await;
    let launched = Instant::now();
    let id = ec2.launch(&request(&bed, "build-2")).await.unwrap();
    bed.hosts()
        .wait_for_host(id.as_str(), TIMEOUT)
        .await
        .unwrap();
    assert!(
        launched.elapsed() >= boot_delay,
        "up after {:?}, before the boot delay",
        launched.elapsed()
    );
}

#[tokio::test]
async fn an_rsa_key_pair_opens_the_host_too() {
    let bed = start(TestbedOptions {
        key_kind: KeyKind::Rsa,
        ..TestbedOptions::default()
    })
    .await;
    assert!(bed.key_pair().public_key().starts_with("ssh-rsa "));
    let ec2 = client(&bed).await;
    let id = ec2.launch(&request(&bed, "build-3")).await.unwrap();
    bed.hosts()
        .wait_for_host(id.as_str(), TIMEOUT)
        .await
        .unwrap();
    let (ok, out) = ssh(&bed, &id, "sudo -n id -u").await;
    assert!(ok, "{out}");
    assert_eq!(out, "0\n");
}

#[tokio::test]
async fn instances_outside_the_loopback_subnet_get_no_host() {
    let bed = start(TestbedOptions::default()).await;
    // No subnet: moto puts it in its default VPC, 172.31.0.0/16.
    let answer = bed
        .admin()
        .run_instances()
        .image_id(bed.image_id())
        .instance_type("m6g.large".into())
        .key_name(bed.key_pair().name())
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = answer.instances()[0].instance_id().unwrap().to_owned();
    let reason = bed
        .hosts()
        .wait_for("the instance to be skipped", TIMEOUT, |view| {
            view.events.iter().find_map(|e| match e {
                HostEvent::Skipped { instance, reason } if *instance == id => Some(reason.clone()),
                _ => None,
            })
        })
        .await
        .unwrap();
    assert!(reason.contains("not a loopback address"), "{reason}");
    assert!(bed.hosts().view().hosts.is_empty());
}

#[tokio::test]
async fn hosts_follow_several_instances_independently() {
    let bed = start(TestbedOptions::default()).await;
    let ec2 = client(&bed).await;
    let a = ec2.launch(&request(&bed, "build-a")).await.unwrap();
    let b = ec2.launch(&request(&bed, "build-b")).await.unwrap();
    let host_a = bed
        .hosts()
        .wait_for_host(a.as_str(), TIMEOUT)
        .await
        .unwrap();
    let host_b = bed
        .hosts()
        .wait_for_host(b.as_str(), TIMEOUT)
        .await
        .unwrap();
    assert_ne!(host_a.address(), host_b.address());
    drop((host_a, host_b));

    ec2.terminate(std::slice::from_ref(&a)).await.unwrap();
    bed.hosts()
        .wait_until_stopped(a.as_str(), TIMEOUT)
        .await
        .unwrap();
    let c = ec2.launch(&request(&bed, "build-c")).await.unwrap();
    let host_c = bed
        .hosts()
        .wait_for_host(c.as_str(), TIMEOUT)
        .await
        .unwrap();
    let info = ec2.describe(&c, false).await.unwrap().unwrap();
    assert_eq!(
        info.address.as_deref(),
        Some(host_c.address().to_string().as_str())
    );
    drop(host_c);
    let (ok, out) = ssh(&bed, &c, "true").await;
    assert!(ok, "{out}");
    let (ok, out) = ssh(&bed, &b, "true").await;
    assert!(ok, "{out}");
    assert!(bed.hosts().host(a.as_str()).is_none());
}
