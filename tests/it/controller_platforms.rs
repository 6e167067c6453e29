//! Platforms and host-config as pipeline authors meet them: a malformed, unknown or
//! unsupported (cloud) platform fails fast with an error Secret that says what to fix;
//! a local platform gets `host: localhost`; a missing host-config makes new TaskRuns
//! wait until it exists, and fails them after the grace period if it never comes.

use std::time::Duration;

use crate::common_controller::{
    assert_error_shape, assert_hosts_clean, assert_login_works, bed_with_controller,
    wait_error_secret, wait_served_on,
};
use mpc_core::naming::{ASSIGNED_HOST_LABEL, secret_keys};
use testbed::{HostSpec, Issued, Testbed, init_test_logging};

const PLATFORM: &str = "linux/arm64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_unknown_and_unsupported_platforms_get_actionable_error_secrets() {
    let (bed, _) =
        bed_with_controller("bad-platforms", vec![HostSpec::new("h1", PLATFORM, 2)]).await;
    let mut data = bed.host_config_data();
    for (key, value) in [
        ("dynamic-platforms", "linux/amd64"),
        ("dynamic.linux-amd64.type", "aws"),
        ("dynamic.linux-amd64.max-instances", "10"),
        ("dynamic.linux-amd64.ssh-secret", "aws-ssh-key"),
        ("dynamic-pool-platforms", "linux/s390x"),
        ("dynamic.linux-s390x.type", "ibmz"),
        ("dynamic.linux-s390x.max-instances", "4"),
        ("dynamic.linux-s390x.ssh-secret", "ibm-s390x-ssh-key"),
        ("dynamic.linux-s390x.concurrency", "2"),
        ("dynamic.linux-s390x.max-age", "1440"),
    ] {
        data.insert(key.into(), value.into());
    }
    bed.apply_host_config(data).await.unwrap();
    // The configuration is live once an error for a dynamic platform names it.
    bed.submit("probe-dyn", "linux/amd64").await.unwrap();
    wait_error_secret(&bed, "probe-dyn").await;

    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "bad-slash",
            "linux_arm64",
            &["invalid platform \"linux_arm64\"", "expected `os/arch`"],
        ),
        (
            "bad-case",
            "Linux/ARM64",
            &["invalid platform \"Linux/ARM64\"", "lowercase"],
        ),
        (
            "unknown",
            "linux/riscv64",
            &[
                "no host in host-config serves platform linux/riscv64",
                "a cluster admin must add hosts for it",
                "platforms served: linux/amd64, linux/arm64, linux/s390x",
            ],
        ),
        (
            "dynamic",
            "linux/amd64",
            &[
                "platform linux/amd64 is a dynamic platform whose settings in host-config are \
                 invalid",
                "a cluster admin must fix host-config",
                "dynamic.linux-amd64.ami: missing",
            ],
        ),
        (
            "dynamic-pool",
            "linux/s390x",
            &[
                "dynamic pools of shared VMs (dynamic-pool-platforms) are not supported",
                "a cluster admin must serve linux/s390x with static hosts",
                "dynamic-pool-platforms",
            ],
        ),
    ];
    for (name, platform, _) in &cases {
        bed.submit(name, platform).await.unwrap();
    }
    for (name, platform, parts) in &cases {
        let text = wait_error_secret(&bed, name).await;
        assert_error_shape(&text, platform);
        for part in *parts {
            assert!(text.contains(part), "{name}: error lacks {part:?}: {text}");
        }
        let event = bed.wait_event(name, "AllocationFailed").await.unwrap();
        assert_eq!(event.type_, "Warning");
        assert!(
            text.starts_with(event.note.trim_end()),
            "{name}: the Event tells the admin the same: {event:?}"
        );
        let tr = bed.taskrun(name).await.unwrap().expect("TaskRun");
        assert_eq!(tr.assigned_host(), None);
        assert!(!tr.is_waiting());
    }
    assert_hosts_clean(&bed);

    for (name, _, _) in &cases {
        bed.complete(name, false).await.unwrap();
    }
    bed.complete("probe-dyn", false).await.unwrap();
    for (name, _, _) in &cases {
        bed.wait_released(name).await.unwrap();
    }
    bed.wait_released("probe-dyn").await.unwrap();
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_platform_gets_a_localhost_secret_released_on_completion() {
    let (bed, _) = bed_with_controller("local", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    let mut data = bed.host_config_data();
    data.insert("local-platforms".into(), "linux/x86_64,local".into());
    bed.apply_host_config(data).await.unwrap();

    for (name, platform) in [("loc-x86", "linux/x86_64"), ("loc-local", "local")] {
        bed.submit(name, platform).await.unwrap();
        assert_eq!(bed.wait_for_secret(name).await.unwrap(), Issued::Local);
        let secret = bed.secret(name).await.unwrap().expect("Secret");
        let keys: Vec<&String> = secret.data.as_ref().expect("data").keys().collect();
        assert_eq!(keys, [secret_keys::HOST], "{name}: only `host`");
        let tr = bed.taskrun(name).await.unwrap().expect("TaskRun");
        assert!(tr.has_finalizer(), "{name}: held until released");
        assert_eq!(
            tr.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ASSIGNED_HOST_LABEL))
                .map(String::as_str),
            Some("localhost")
        );
    }
    assert_hosts_clean(&bed);
    for name in ["loc-x86", "loc-local"] {
        bed.complete(name, true).await.unwrap();
        bed.wait_released(name).await.unwrap();
        let tr = bed.taskrun(name).await.unwrap().expect("TaskRun");
        assert_eq!(tr.assigned_host(), None);
    }
    bed.cleanup().await;
}

/// A test bed whose host-config is deleted before the controller starts.
async fn bed_without_host_config(prefix: &str, grace: Duration) -> Testbed {
    init_test_logging();
    let mut bed = Testbed::start(prefix, vec![HostSpec::new("h1", PLATFORM, 2)])
        .await
        .expect("test bed");
    bed.delete_host_config().await.unwrap();
    let mut settings = bed.settings();
    settings.core.config_grace = grace;
    bed.start_controller(settings).await.expect("controller");
    bed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_host_config_taskruns_wait_and_proceed_once_it_is_created() {
    let bed = bed_without_host_config("no-config", Duration::from_secs(600)).await;
    for name in ["nc-1", "nc-2"] {
        bed.submit(name, PLATFORM).await.unwrap();
        bed.wait_waiting(name).await.unwrap();
        let event = bed.wait_event(name, "Waiting").await.unwrap();
        assert!(
            event.note.contains("waiting for the host-config ConfigMap")
                && event.note.contains(bed.namespace()),
            "{event:?}"
        );
        assert!(bed.secret(name).await.unwrap().is_none());
    }

    bed.apply_host_config(bed.host_config_data()).await.unwrap();
    for name in ["nc-1", "nc-2"] {
        wait_served_on(&bed, name, "h1").await;
        assert_login_works(&bed, name).await;
        assert!(
            !bed.taskrun(name)
                .await
                .unwrap()
                .expect("TaskRun")
                .is_waiting()
        );
    }

    // Deleted while the controller runs: running builds keep their hosts, new ones wait
    // again, and proceed when it is back.
    bed.delete_host_config().await.unwrap();
    bed.submit("nc-3", PLATFORM).await.unwrap();
    bed.wait_waiting("nc-3").await.unwrap();
    assert_login_works(&bed, "nc-1").await;
    bed.complete("nc-1", true).await.unwrap();
    bed.wait_released("nc-1").await.unwrap();
    assert!(bed.secret("nc-3").await.unwrap().is_none());
    bed.apply_host_config(bed.host_config_data()).await.unwrap();
    wait_served_on(&bed, "nc-3", "h1").await;

    for name in ["nc-2", "nc-3"] {
        bed.complete(name, true).await.unwrap();
        bed.wait_released(name).await.unwrap();
    }
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_config_that_stays_missing_fails_waiting_taskruns_after_the_grace() {
    let bed = bed_without_host_config("config-grace", Duration::from_secs(5)).await;
    bed.submit("gr-1", PLATFORM).await.unwrap();
    bed.wait_waiting("gr-1").await.unwrap();
    let text = wait_error_secret(&bed, "gr-1").await;
    assert_error_shape(&text, PLATFORM);
    for part in [
        "host-config ConfigMap is missing",
        "A cluster admin must create host-config in namespace",
        bed.namespace(),
    ] {
        assert!(text.contains(part), "error lacks {part:?}: {text}");
    }
    let tr = bed.taskrun("gr-1").await.unwrap().expect("TaskRun");
    assert!(!tr.is_waiting(), "the waiting label goes with the error");
    bed.wait_event("gr-1", "AllocationFailed").await.unwrap();
    bed.complete("gr-1", false).await.unwrap();
    bed.wait_released("gr-1").await.unwrap();
    bed.cleanup().await;
}
