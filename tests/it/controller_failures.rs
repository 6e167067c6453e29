//! Failures: a host whose sshd is down is skipped for another host of the platform (and
//! recorded in `failed-hosts`), comes back into service once it answers again, and when
//! every host fails the build gets an error Secret saying what to do; a release waits
//! for its host (or, for a deleted TaskRun, leaves the user to the reaper). API writes
//! that fail (injected 500s and 409s) only delay the work; a stale Secret is replaced.

use std::time::Duration;

use crate::common_controller::{
    assert_error_shape, assert_hosts_clean, assert_login_works, bed_with_controller, user,
    wait_error_secret, wait_served_on,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{FaultConfig, wait_until};
use multi_platform_controller::naming::{FINALIZER, SECRET_LABEL, UserName, secret_name};
use multi_platform_controller::taskrun::TaskRun;
use serde_json::json;
use testbed::{DEFAULT_WAIT, HostSpec, Issued, Testbed, init_test_logging};

const PLATFORM: &str = "linux/arm64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sshd_fails_over_to_another_host_which_returns_when_sshd_does() {
    let (bed, c) = bed_with_controller(
        "failover",
        vec![
            HostSpec::new("h1", PLATFORM, 1),
            HostSpec::new("h2", PLATFORM, 1),
        ],
    )
    .await;
    // Both hosts are free: the tie goes to h1, whose sshd is down.
    bed.host("h1").host.stop_sshd().unwrap();
    bed.submit("fo-1", PLATFORM).await.unwrap();
    wait_served_on(&bed, "fo-1", "h2").await;
    assert_login_works(&bed, "fo-1").await;
    let tr = bed.taskrun("fo-1").await.unwrap().expect("TaskRun");
    assert_eq!(tr.failed_hosts(), ["h1"]);
    assert_eq!(tr.assigned_host(), Some("h2"));
    assert!(bed.users_on("h1").unwrap().is_empty());

    // What the admin sees: why the TaskRun moved, and that h1 is out of service.
    let failed = bed.wait_event("fo-1", "ProvisioningFailed").await.unwrap();
    assert_eq!(failed.type_, "Warning");
    assert!(failed.note.contains("host h1"), "{failed:?}");
    bed.wait_event("fo-1", "Provisioned").await.unwrap();
    // Both allocations are told, the second naming the host the build really runs on.
    let allocated: Vec<String> = bed
        .events_for("fo-1")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.reason == "Allocated")
        .map(|e| e.note)
        .collect();
    assert!(
        allocated.iter().any(|n| n.contains("host h1"))
            && allocated.iter().any(|n| n.contains("host h2")),
        "Allocated Events: {allocated:?}"
    );
    bed.wait_host_down(c, "h1").await.unwrap();
    let unavailable = bed
        .host_config_events()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.reason == "HostUnavailable")
        .expect("HostUnavailable Event on host-config");
    assert!(unavailable.note.contains("h1"), "{unavailable:?}");

    // sshd comes back: the probe finds it and h1 takes the next TaskRun (h2 is full).
    bed.host("h1").host.start_sshd().unwrap();
    bed.wait_host_up(c, "h1").await.unwrap();
    bed.submit("fo-2", PLATFORM).await.unwrap();
    wait_served_on(&bed, "fo-2", "h1").await;
    assert_login_works(&bed, "fo-2").await;
    assert!(
        bed.taskrun("fo-2")
            .await
            .unwrap()
            .expect("TaskRun")
            .failed_hosts()
            .is_empty()
    );

    for name in ["fo-1", "fo-2"] {
        bed.complete(name, true).await.unwrap();
    }
    for name in ["fo-1", "fo-2"] {
        bed.wait_released(name).await.unwrap();
    }
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_host_fails_the_build_gets_an_error_secret_saying_what_to_do() {
    let (bed, _) = bed_with_controller(
        "all-fail",
        vec![
            HostSpec::new("h1", PLATFORM, 1),
            HostSpec::new("h2", PLATFORM, 1),
        ],
    )
    .await;
    for h in ["h1", "h2"] {
        bed.host(h).host.stop_sshd().unwrap();
    }
    bed.submit("af-1", PLATFORM).await.unwrap();
    let text = wait_error_secret(&bed, "af-1").await;
    assert_error_shape(&text, PLATFORM);
    for part in [
        "every host of platform linux/arm64 failed",
        "h1",
        "h2",
        "a cluster admin must check those hosts",
    ] {
        assert!(text.contains(part), "error text lacks {part:?}: {text}");
    }
    let tr = bed.taskrun("af-1").await.unwrap().expect("TaskRun");
    assert_eq!(tr.failed_hosts(), ["h1", "h2"]);
    assert_eq!(tr.assigned_host(), None);
    assert!(!tr.is_waiting());
    assert_hosts_clean(&bed);

    let failed = bed.wait_event("af-1", "AllocationFailed").await.unwrap();
    assert_eq!(failed.type_, "Warning");
    assert!(failed.note.contains("every host of platform"), "{failed:?}");
    bed.wait_event("af-1", "ProvisioningFailed").await.unwrap();
    // The admin learns of each failed host, on the TaskRun and on host-config.
    let notes = |events: Vec<testbed::SeenEvent>, reason: &str| -> Vec<String> {
        events
            .into_iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.note)
            .collect()
    };
    for host in ["h1", "h2"] {
        let failed = notes(bed.events_for("af-1").await.unwrap(), "ProvisioningFailed");
        assert!(
            failed.iter().any(|n| n.contains(&format!("host {host}"))),
            "no ProvisioningFailed Event names {host}: {failed:?}"
        );
        let unavailable = notes(bed.host_config_events().await.unwrap(), "HostUnavailable");
        assert!(
            unavailable
                .iter()
                .any(|n| n.contains(&format!("host {host}"))),
            "no HostUnavailable Event names {host}: {unavailable:?}"
        );
    }

    // The Task fails on the error; once Tekton finishes the run, nothing is left.
    bed.complete("af-1", false).await.unwrap();
    bed.wait_released("af-1").await.unwrap();
    bed.cleanup().await;
}

/// A test bed with a `local` platform besides h1, and a controller taking TaskRuns.
async fn bed_with_local_platform(prefix: &str) -> Testbed {
    init_test_logging();
    let mut bed = Testbed::start(prefix, vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let mut data = bed.host_config_data();
    data.insert("local-platforms".into(), "local".into());
    bed.apply_host_config(data).await.unwrap();
    let c = bed.start_controller(bed.settings()).await.unwrap();
    bed.wait_host_up(c, "h1").await.unwrap();
    bed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_writes_refused_with_conflicts_are_retried_until_every_build_has_its_secret() {
    let bed = bed_with_local_platform("secret-conflicts").await;
    let Some(faults) = bed.env().faults() else {
        skip_on_real_cluster(
            "secret_writes_refused_with_conflicts_are_retried",
            "needs 409 answers injected into Secret writes",
        );
        bed.cleanup().await;
        return;
    };
    // Every Secret write is refused with 409 Conflict (not AlreadyExists) for a while.
    faults.set(FaultConfig {
        write_conflict_rate: 1.0,
        resources: vec!["secrets".into()],
        ..FaultConfig::default()
    });
    bed.submit("sc-local", "local").await.unwrap();
    wait_until(DEFAULT_WAIT, "the local Secret write refused", || async {
        faults.stats().write_conflicts >= 1
    })
    .await
    .unwrap();
    bed.submit("sc-error", "linux/riscv64").await.unwrap();
    bed.submit("sc-access", PLATFORM).await.unwrap();
    let access_user = UserName::for_taskrun("sc-access", bed.namespace()).to_string();
    wait_until(DEFAULT_WAIT, "every Secret write attempted", || async {
        let provisioned = bed.users_on("h1").is_ok_and(|u| u.contains(&access_user));
        let failing = bed.has_finalizer("sc-error").await.unwrap_or(false);
        provisioned && failing && faults.stats().write_conflicts >= 3
    })
    .await
    .unwrap();
    for name in ["sc-local", "sc-error", "sc-access"] {
        assert!(bed.secret(name).await.unwrap().is_none(), "{name}");
    }

    faults.clear();
    assert_eq!(
        bed.wait_for_secret("sc-local").await.unwrap(),
        Issued::Local
    );
    let text = wait_error_secret(&bed, "sc-error").await;
    assert_error_shape(&text, "linux/riscv64");
    wait_served_on(&bed, "sc-access", "h1").await;
    assert_login_works(&bed, "sc-access").await;
    for name in ["sc-local", "sc-error", "sc-access"] {
        bed.complete(name, true).await.unwrap();
    }
    for name in ["sc-local", "sc-error", "sc-access"] {
        bed.wait_released(name).await.unwrap();
    }
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskrun_writes_failing_often_delay_but_never_break_allocation_release_or_finalizers() {
    let (bed, _) =
        bed_with_controller("taskrun-faults", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    let Some(faults) = bed.env().faults() else {
        skip_on_real_cluster(
            "taskrun_writes_failing_often_delay_but_never_break_allocation",
            "needs 500 and 409 answers injected into TaskRun writes",
        );
        bed.cleanup().await;
        return;
    };
    faults.set(FaultConfig {
        seed: 7,
        write_error_rate: 0.3,
        write_conflict_rate: 0.3,
        resources: vec!["taskruns".into()],
        ..FaultConfig::default()
    });
    // Another controller (Tekton Chains, say) holds a finalizer of its own.
    const FOREIGN: &str = "chains.tekton.dev";
    for name in ["tf-1", "tf-2"] {
        bed.retry("create", || bed.create_taskrun(name, PLATFORM))
            .await
            .unwrap();
        bed.retry("foreign finalizer", || {
            bed.patch_taskrun(name, json!({"metadata": {"finalizers": [FOREIGN]}}))
        })
        .await
        .unwrap();
        bed.retry("resolve", || bed.resolve(name)).await.unwrap();
    }
    wait_served_on(&bed, "tf-1", "h1").await;
    assert_login_works(&bed, "tf-1").await;
    bed.wait_waiting("tf-2").await.unwrap();
    let finalizers =
        |tr: Option<TaskRun>| tr.and_then(|t| t.metadata.finalizers).unwrap_or_default();
    assert_eq!(
        finalizers(bed.taskrun("tf-1").await.unwrap()),
        [FOREIGN, FINALIZER]
    );

    bed.retry("complete", || bed.complete("tf-1", true))
        .await
        .unwrap();
    bed.wait_released("tf-1").await.unwrap();
    assert_eq!(finalizers(bed.taskrun("tf-1").await.unwrap()), [FOREIGN]);
    wait_served_on(&bed, "tf-2", "h1").await;
    assert_login_works(&bed, "tf-2").await;
    bed.retry("complete", || bed.complete("tf-2", true))
        .await
        .unwrap();
    bed.wait_released("tf-2").await.unwrap();
    assert_eq!(finalizers(bed.taskrun("tf-2").await.unwrap()), [FOREIGN]);
    let stats = faults.stats();
    assert!(
        stats.write_errors > 0 && stats.write_conflicts > 0,
        "faults were injected: {stats:?}"
    );
    faults.clear();
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_secret_of_the_same_name_is_replaced_by_a_working_one() {
    let (bed, _) =
        bed_with_controller("stale-secret", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    // Left over from an earlier TaskRun of the same name (or written by hand).
    let stale: Secret = serde_json::from_value(json!({
        "metadata": {"name": secret_name("st-1"), "labels": {SECRET_LABEL: "true"}},
        "stringData": {"host": "u-0@192.0.2.1", "id_rsa": "not a key", "user-dir": "/home/u-0"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(bed.client(), bed.namespace())
        .create(&PostParams::default(), &stale)
        .await
        .unwrap();
    bed.submit("st-1", PLATFORM).await.unwrap();
    let user = UserName::for_taskrun("st-1", bed.namespace()).to_string();
    let login = format!("{user}@{}", bed.host("h1").host.address());
    wait_until(DEFAULT_WAIT, "the stale Secret replaced", || async {
        matches!(bed.wait_for_secret("st-1").await, Ok(Issued::Access { host, .. }) if host == login)
    })
    .await
    .unwrap();
    assert_login_works(&bed, "st-1").await;
    bed.complete("st-1", true).await.unwrap();
    bed.wait_released("st-1").await.unwrap();
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_waits_for_an_unreachable_host_and_a_deleted_taskrun_is_left_to_the_reaper() {
    init_test_logging();
    let mut bed = Testbed::start("release-down", vec![HostSpec::new("h1", PLATFORM, 1)])
        .await
        .expect("test bed");
    let mut settings = bed.settings();
    settings.core.release_give_up = Duration::from_secs(3);
    let c = bed.start_controller(settings).await.unwrap();
    bed.wait_host_up(c, "h1").await.unwrap();
    let h1 = &bed.host("h1").host;

    // Finished while its host is down: nothing is released until the host is clean.
    bed.submit("rd-1", PLATFORM).await.unwrap();
    let first = wait_served_on(&bed, "rd-1", "h1").await;
    h1.stop_sshd().unwrap();
    bed.complete("rd-1", true).await.unwrap();
    let failed = bed.wait_event("rd-1", "CleanupFailed").await.unwrap();
    assert_eq!(failed.type_, "Warning");
    assert!(failed.note.contains("will retry"), "{failed:?}");
    assert!(bed.has_finalizer("rd-1").await.unwrap());
    assert!(bed.secret("rd-1").await.unwrap().is_some());
    assert_eq!(bed.users_on("h1").unwrap(), [user(&first)]);
    bed.submit("rd-2", PLATFORM).await.unwrap();
    bed.wait_waiting("rd-2").await.unwrap();

    h1.start_sshd().unwrap();
    bed.wait_released("rd-1").await.unwrap();
    let second = wait_served_on(&bed, "rd-2", "h1").await;

    // Deleted while its host is down: released after release_give_up, its user left
    // behind, and its slot kept until the reaper removed that user.
    h1.stop_sshd().unwrap();
    bed.delete("rd-2").await.unwrap();
    bed.wait_gone("rd-2").await.unwrap();
    assert_eq!(
        bed.users_on("h1").unwrap(),
        [user(&second)],
        "left to the reaper"
    );
    bed.submit("rd-3", PLATFORM).await.unwrap();
    bed.wait_waiting("rd-3").await.unwrap();
    h1.start_sshd().unwrap();
    let third = wait_served_on(&bed, "rd-3", "h1").await;
    assert_eq!(
        bed.users_on("h1").unwrap(),
        [user(&third)],
        "reaped, then reused"
    );
    assert_login_works(&bed, "rd-3").await;
    bed.complete("rd-3", true).await.unwrap();
    bed.wait_released("rd-3").await.unwrap();
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}
