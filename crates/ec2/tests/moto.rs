//! The EC2 client against moto (through the testbed's fault proxy): the exact requests
//! it sends, idempotent launches, pagination, describe and terminate, and how failures
//! are classified.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ec2_testbed::{
    ACCESS_KEY_ID, Ec2Testbed, Fault, Outcome, REGION, SECRET_ACCESS_KEY, TestbedOptions,
};
use mpc_ec2::{
    Credentials, DedicatedHost, Ec2Client, ErrorKind, InstanceId, InstanceState, LaunchRequest,
    TaskRunRef,
};

async fn testbed() -> Ec2Testbed {
    Ec2Testbed::start_with(TestbedOptions {
        hosts: false,
        ..TestbedOptions::default()
    })
    .await
    .expect("start the EC2 testbed (moto is installed by hack/test.sh)")
}

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

/// moto's view of one instance, straight from moto.
async fn moto_instance(bed: &Ec2Testbed, id: &InstanceId) -> aws_sdk_ec2::types::Instance {
    let out = bed
        .admin()
        .describe_instances()
        .instance_ids(id.as_str())
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}

async fn moto_instance_count(bed: &Ec2Testbed) -> usize {
    let out = bed.admin().describe_instances().send().await.unwrap();
    out.reservations().iter().map(|r| r.instances().len()).sum()
}

#[tokio::test]
async fn launch_sends_exactly_the_go_controllers_parameters() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let sg = bed
        .admin()
        .create_security_group()
        .group_name("builders")
        .description("build hosts")
        .vpc_id(&bed.network().vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let profile_arn = bed.create_instance_profile("builder").await.unwrap();
    let mut req = request(&bed, "build-1");
    req.security_group_names = vec!["builders".into()];
    req.security_group_ids = vec![sg.clone()];
    // Name only: moto associates the profile once per field and refuses the second
    // (IncorrectState); both fields together are covered by the unit tests.
    req.instance_profile_name = Some("builder".into());
    req.user_data = Some("#!/bin/bash\necho ready\n".into());
    req.iops = Some(4000);
    req.throughput = Some(250);
    req.additional_tags = BTreeMap::from([("team".to_owned(), "builds".to_owned())]);

    let id = ec2.launch(&req).await.unwrap();

    let calls = bed.proxy().requests("RunInstances");
    assert_eq!(calls.len(), 1);
    let sent: BTreeMap<&str, &str> = calls[0]
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let image = bed.image_id();
    let key = bed.key_pair().name();
    let subnet = bed.network().subnet_id.as_str();
    let expected: BTreeMap<&str, &str> = BTreeMap::from([
        ("Action", "RunInstances"),
        ("Version", "2016-11-15"),
        ("ImageId", image),
        ("InstanceType", "m6g.large"),
        ("KeyName", key),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("EbsOptimized", "true"),
        ("SecurityGroup.1", "builders"),
        ("SecurityGroupId.1", sg.as_str()),
        ("SubnetId", subnet),
        ("IamInstanceProfile.Name", "builder"),
        ("UserData", "IyEvYmluL2Jhc2gKZWNobyByZWFkeQo="),
        ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
        ("BlockDeviceMapping.1.VirtualName", "ephemeral0"),
        ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
        ("BlockDeviceMapping.1.Ebs.VolumeSize", "40"),
        ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
        ("BlockDeviceMapping.1.Ebs.Iops", "4000"),
        ("BlockDeviceMapping.1.Ebs.Throughput", "250"),
        ("InstanceInitiatedShutdownBehavior", "terminate"),
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "MultiPlatformManaged"),
        ("TagSpecification.1.Tag.1.Value", "true"),
        ("TagSpecification.1.Tag.2.Key", "multi-platform-instance"),
        ("TagSpecification.1.Tag.2.Value", "linux-arm64"),
        ("TagSpecification.1.Tag.3.Key", "Name"),
        (
            "TagSpecification.1.Tag.3.Value",
            "multi-platform-builder-build-1",
        ),
        ("TagSpecification.1.Tag.4.Key", "taskRunID"),
        ("TagSpecification.1.Tag.4.Value", "builds:build-1"),
        ("TagSpecification.1.Tag.5.Key", "team"),
        ("TagSpecification.1.Tag.5.Value", "builds"),
        ("ClientToken", "build-1-uid-0"),
    ]);
    assert_eq!(sent, expected);

    // moto's instance carries what was asked for.
    let instance = moto_instance(&bed, &id).await;
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("m6g.large")
    );
    assert_eq!(instance.image_id(), Some(image));
    assert_eq!(instance.key_name(), Some(key));
    assert_eq!(instance.subnet_id(), Some(subnet));
    assert_eq!(instance.ebs_optimized(), Some(true));
    assert_eq!(instance.client_token(), Some("build-1-uid-0"));
    let tags: BTreeSet<(&str, &str)> = instance
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            ("MultiPlatformManaged", "true"),
            ("multi-platform-instance", "linux-arm64"),
            ("Name", "multi-platform-builder-build-1"),
            ("taskRunID", "builds:build-1"),
            ("team", "builds"),
        ])
    );
    let bdm = instance.block_device_mappings();
    assert_eq!(bdm.len(), 1);
    assert_eq!(bdm[0].device_name(), Some("/dev/sda1"));
    let volume_id = bdm[0].ebs().unwrap().volume_id().unwrap();
    let volume = bed
        .admin()
        .describe_volumes()
        .volume_ids(volume_id)
        .send()
        .await
        .unwrap()
        .volumes()[0]
        .clone();
    assert_eq!(volume.size(), Some(40));
    assert_eq!(volume.volume_type().map(|t| t.as_str()), Some("gp3"));
    // moto keeps gp3's default IOPS and no throughput whatever was asked (the recorded
    // request above is the check for those).
    assert_eq!(
        instance.iam_instance_profile().and_then(|p| p.arn()),
        Some(profile_arn.as_str())
    );
    let user_data = bed
        .admin()
        .describe_instance_attribute()
        .instance_id(id.as_str())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    assert_eq!(
        user_data.user_data().and_then(|v| v.value()),
        Some("IyEvYmluL2Jhc2gKZWNobyByZWFkeQo=")
    );
    let shutdown = bed
        .admin()
        .describe_instance_attribute()
        .instance_id(id.as_str())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .unwrap();
    assert_eq!(
        shutdown
            .instance_initiated_shutdown_behavior()
            .and_then(|v| v.value()),
        Some("terminate")
    );
}

#[tokio::test]
async fn spot_and_dedicated_host_launches_add_their_parameters() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let mut req = request(&bed, "build-mac");
    req.spot_max_price = Some("0.05".into());
    req.dedicated_host = Some(DedicatedHost {
        tenancy: "host".into(),
        host_resource_group_arn: "arn:aws:resource-groups:us-east-1:123456789012:group/mac".into(),
        license_configuration_arn:
            "arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-1".into(),
    });
    let id = ec2.launch(&req).await.unwrap();
    let call = &bed.proxy().requests("RunInstances")[0];
    let extra: Vec<(&str, &str)> = [
        "InstanceMarketOptions.",
        "Placement.",
        "LicenseSpecification.",
    ]
    .iter()
    .flat_map(|p| call.params_with_prefix(p))
    .collect();
    assert_eq!(
        extra.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            ("InstanceMarketOptions.MarketType", "spot"),
            ("InstanceMarketOptions.SpotOptions.MaxPrice", "0.05"),
            (
                "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                "terminate"
            ),
            (
                "InstanceMarketOptions.SpotOptions.SpotInstanceType",
                "one-time"
            ),
            ("Placement.Tenancy", "host"),
            (
                "Placement.HostResourceGroupArn",
                "arn:aws:resource-groups:us-east-1:123456789012:group/mac"
            ),
            (
                "LicenseSpecification.1.LicenseConfigurationArn",
                "arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-1"
            ),
        ])
    );
    let instance = moto_instance(&bed, &id).await;
    assert_eq!(
        instance.instance_lifecycle().map(|l| l.as_str()),
        Some("spot")
    );
}

#[tokio::test]
async fn a_repeated_client_token_launches_one_instance() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let req = request(&bed, "build-2");
    let first = ec2.launch(&req).await.unwrap();
    let again = ec2.launch(&req).await.unwrap();
    assert_eq!(first, again, "the same token names the same instance");
    assert_eq!(moto_instance_count(&bed).await, 1);
    assert_eq!(bed.proxy().calls("RunInstances"), 2);
    assert_eq!(bed.proxy().forwarded("RunInstances"), 1);
    assert_eq!(
        bed.proxy().requests("RunInstances")[1].outcome,
        Outcome::Replayed
    );

    // The same token with other parameters is EC2's IdempotentParameterMismatch.
    let mut other = req.clone();
    other.instance_type = "m6g.xlarge".into();
    let err = ec2.launch(&other).await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));
    assert_eq!(err.kind(), ErrorKind::IdempotencyMismatch);
    assert!(!err.retryable());

    // A new token is a new launch.
    let mut next = req.clone();
    next.client_token = "build-2-uid-1".into();
    assert_ne!(ec2.launch(&next).await.unwrap(), first);
    assert_eq!(moto_instance_count(&bed).await, 2);
}

#[tokio::test]
async fn listing_reads_every_page_and_counting_skips_ended_and_other_instances() {
    let bed = testbed().await;
    let ec2 = Ec2Client::builder(
        Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
        REGION,
    )
    .endpoint_url(bed.endpoint_url())
    .page_size(5)
    .build()
    .await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(
            ec2.launch(&request(&bed, &format!("tr-{n}")))
                .await
                .unwrap(),
        );
    }
    let mut other_type = request(&bed, "tr-big");
    other_type.instance_type = "m6g.4xlarge".into();
    ec2.launch(&other_type).await.unwrap();
    let mut other_platform = request(&bed, "tr-x86");
    other_platform.instance_tag = "linux-amd64".into();
    ec2.launch(&other_platform).await.unwrap();
    // An instance the controller did not launch is never listed.
    bed.admin()
        .run_instances()
        .image_id(bed.image_id())
        .instance_type("m6g.large".into())
        .min_count(1)
        .max_count(1)
        .subnet_id(&bed.network().subnet_id)
        .send()
        .await
        .unwrap();

    let listed = ec2.list_managed(Some("linux-arm64")).await.unwrap();
    assert_eq!(listed.len(), 13);
    let pages = bed.proxy().requests("DescribeInstances");
    assert_eq!(pages.len(), 3, "13 instances in pages of 5");
    assert_eq!(pages[0].param("MaxResults"), Some("5"));
    assert!(pages[0].param("NextToken").is_none());
    assert!(pages[1].param("NextToken").is_some());
    assert!(pages[2].param("NextToken").is_some());
    let filters: BTreeSet<(&str, &str)> =
        pages[0].params_with_prefix("Filter.").into_iter().collect();
    assert_eq!(
        filters,
        BTreeSet::from([
            ("Filter.1.Name", "tag:MultiPlatformManaged"),
            ("Filter.1.Value.1", "true"),
            ("Filter.2.Name", "tag:multi-platform-instance"),
            ("Filter.2.Value.1", "linux-arm64"),
        ])
    );
    let task_runs: BTreeSet<&str> = listed.iter().filter_map(|i| i.task_run_id()).collect();
    assert!(task_runs.contains("builds:tr-11") && task_runs.contains("builds:tr-big"));
    assert_eq!(ec2.list_managed(None).await.unwrap().len(), 14);

    assert_eq!(
        ec2.count_instances("linux-arm64", "m6g.large")
            .await
            .unwrap(),
        12
    );
    ec2.terminate(&ids[..3]).await.unwrap();
    assert_eq!(
        ec2.count_instances("linux-arm64", "m6g.large")
            .await
            .unwrap(),
        9
    );
    assert_eq!(
        ec2.count_instances("linux-arm64", "m6g.4xlarge")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ec2.count_instances("linux-amd64", "m6g.large")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn describe_reports_state_and_the_private_loopback_address() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let id = ec2.launch(&request(&bed, "build-3")).await.unwrap();
    let info = ec2.describe(&id, false).await.unwrap().unwrap();
    assert_eq!(info.state, InstanceState::Running);
    let address: std::net::Ipv4Addr = info.address.as_deref().unwrap().parse().unwrap();
    assert!(address.is_loopback(), "{address}");
    assert!(bed.network().contains(address), "{address}");
    assert_eq!(info.instance.task_run_id(), Some("builds:build-3"));
    assert!(info.instance.launch_time.is_some());
    // moto gives no public address; strict-public-address then has none at all.
    let strict = ec2.describe(&id, true).await.unwrap().unwrap();
    assert_eq!(strict.address, None);

    assert!(
        ec2.describe(&InstanceId::new("i-0123456789abcdef0"), false)
            .await
            .unwrap()
            .is_none(),
        "an unknown id is None, not an error"
    );

    ec2.terminate(std::slice::from_ref(&id)).await.unwrap();
    let ended = ec2.describe(&id, false).await.unwrap().unwrap();
    assert!(!ended.state.is_active(), "{}", ended.state);
    // Terminating again is fine; an unknown id is NotFound.
    ec2.terminate(std::slice::from_ref(&id)).await.unwrap();
    let err = ec2
        .terminate(&[InstanceId::new("i-0123456789abcdef0")])
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn injected_ec2_errors_arrive_with_their_code_status_and_class() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let req = request(&bed, "build-4");
    for (code, status, kind, retryable) in [
        (
            "InsufficientInstanceCapacity",
            500,
            ErrorKind::Capacity,
            true,
        ),
        ("RequestLimitExceeded", 503, ErrorKind::Throttled, true),
        ("InternalError", 500, ErrorKind::Server, true),
        ("UnauthorizedOperation", 403, ErrorKind::Auth, false),
        (
            "InvalidAMIID.NotFound",
            400,
            ErrorKind::InvalidConfig,
            false,
        ),
        (
            "InvalidParameterValue",
            400,
            ErrorKind::InvalidConfig,
            false,
        ),
        ("VcpuLimitExceeded", 400, ErrorKind::Quota, false),
    ] {
        bed.proxy()
            .inject(Fault::ec2_error("RunInstances", code).times(1));
        let err = ec2.launch(&req).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{err}");
        assert_eq!(err.status(), Some(status), "{err}");
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.retryable(), retryable, "{err}");
        assert_eq!(err.label(), code);
        assert!(err.request_id().is_some(), "{err}");
        if code == "UnauthorizedOperation" {
            assert!(err.to_string().contains("allow ec2:RunInstances"), "{err}");
        }
    }
    assert_eq!(
        moto_instance_count(&bed).await,
        0,
        "no fault let a launch through"
    );
    // The faults were one-shot: the next launch goes through, once.
    ec2.launch(&req).await.unwrap();
    assert_eq!(moto_instance_count(&bed).await, 1);
    assert_eq!(bed.proxy().calls("RunInstances"), 8);
    assert_eq!(bed.proxy().forwarded("RunInstances"), 1);
    assert_eq!(bed.proxy().faults_in_force(), 0);
}

#[tokio::test]
async fn bare_server_errors_lost_connections_and_timeouts_are_retryable() {
    let bed = testbed().await;
    let ec2 = Ec2Client::builder(
        Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
        REGION,
    )
    .endpoint_url(bed.endpoint_url())
    .operation_timeout(Duration::from_millis(500))
    .build()
    .await;

    bed.proxy()
        .inject(Fault::status("DescribeInstances", 502).times(1));
    let err = ec2.list_managed(None).await.unwrap_err();
    assert_eq!((err.code(), err.status()), (None, Some(502)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.label(), "HTTP502");
    assert!(err.retryable());

    bed.proxy()
        .inject(Fault::close_connection("DescribeInstances").times(1));
    let err = ec2.list_managed(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.retryable());

    bed.proxy()
        .inject(Fault::delay("DescribeInstances", Duration::from_secs(5)).times(1));
    let err = ec2.list_managed(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.to_string().contains("no answer in time"), "{err}");

    // A slow answer within the timeout is just slow.
    bed.proxy()
        .inject(Fault::delay("DescribeInstances", Duration::from_millis(100)).times(1));
    assert!(ec2.list_managed(None).await.unwrap().is_empty());
    // Every call was one request: the SDK does not retry behind the caller's back.
    assert_eq!(bed.proxy().calls("DescribeInstances"), 4);
}

#[tokio::test]
async fn a_seeded_fault_rate_fails_the_same_calls_every_run() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let id = bed
            .proxy()
            .inject(Fault::ec2_error("DescribeInstances", "RequestLimitExceeded").rate(0.5, 42));
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            outcomes.push(ec2.list_managed(None).await.is_ok());
        }
        bed.proxy().remove(id);
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    let failures = runs[0].iter().filter(|ok| !**ok).count();
    assert!((3..=17).contains(&failures), "{failures} of 20");
}

#[tokio::test]
async fn an_invalid_request_is_refused_before_anything_is_sent() {
    let bed = testbed().await;
    let ec2 = client(&bed).await;
    let mut req = request(&bed, "build-5");
    req.additional_tags
        .insert("taskRunID".into(), "other:run".into());
    let err = ec2.launch(&req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.label(), "InvalidRequest");
    assert!(err.to_string().contains("taskRunID"), "{err}");
    assert_eq!(bed.proxy().all_requests().len(), 0);
}

#[tokio::test]
async fn a_launch_whose_answer_was_lost_is_found_again_by_its_client_token() {
    let bed = testbed().await;
    let impatient = Ec2Client::builder(
        Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
        REGION,
    )
    .endpoint_url(bed.endpoint_url())
    .operation_timeout(Duration::from_millis(300))
    .build()
    .await;
    let req = request(&bed, "build-6");
    bed.proxy()
        .inject(Fault::delay("RunInstances", Duration::from_secs(1)).times(1));
    let err = impatient.launch(&req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.retryable());
    // The request went on to EC2 all the same: the instance exists, the answer is lost.
    bed.proxy()
        .wait_for_calls(
            "the slow launch to reach moto",
            Duration::from_secs(30),
            |calls| {
                calls
                    .iter()
                    .any(|c| matches!(c.outcome, Outcome::Forwarded { status: 200 }))
            },
        )
        .await
        .unwrap();
    assert_eq!(moto_instance_count(&bed).await, 1);

    // The retry with the same token gets that instance instead of a second one.
    let id = client(&bed).await.launch(&req).await.unwrap();
    assert_eq!(moto_instance_count(&bed).await, 1);
    let instance = moto_instance(&bed, &id).await;
    assert_eq!(instance.client_token(), Some("build-6-uid-0"));
    assert_eq!(
        bed.proxy().requests("RunInstances")[1].outcome,
        Outcome::Replayed
    );
}
