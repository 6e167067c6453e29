//! Lost state: a controller killed while it provisions a build user, or while builds
//! finish, leaves nothing behind once a new one starts — no leaked user, no slot given
//! twice, every TaskRun served or released; and a deletion the TaskRun watch never
//! delivered is learnt from the re-list.

use std::time::Duration;

use crate::common_controller::{
    assert_hosts_clean, assert_login_works, assert_never_allocated, assert_waiting,
    bed_with_controller, user, wait_first_served, wait_served_on,
};
use kube_sim::patch::PatchKind;
use kube_sim::store::{DeleteOptions, WriteOptions};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{FaultConfig, wait_until};
use serde_json::json;
use testbed::{DEFAULT_WAIT, HostSpec};

const PLATFORM: &str = "linux/arm64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_provisioning_is_resumed_without_leaks_or_double_allocation() {
    let (mut bed, first) = bed_with_controller(
        "kill-provisioning",
        vec![
            HostSpec::new("h1", PLATFORM, 1),
            HostSpec::new("h2", PLATFORM, 1),
        ],
    )
    .await;
    // h1 (chosen first: both free, tie broken by name) hangs: TCP connects, nothing
    // answers, so provisioning stops between the labels and the Secret.
    bed.host("h1").host.freeze_sshd().unwrap();
    bed.submit("kp-1", PLATFORM).await.unwrap();
    wait_until(
        testbed::DEFAULT_WAIT,
        "kp-1 labelled with its host",
        || async {
            matches!(bed.taskrun("kp-1").await, Ok(Some(tr)) if tr.assigned_host() == Some("h1"))
        },
    )
    .await
    .unwrap();
    assert!(bed.secret("kp-1").await.unwrap().is_none());
    bed.kill_controller(first).await;
    assert!(
        bed.secret("kp-1").await.unwrap().is_none(),
        "killed before the Secret"
    );
    bed.host("h1").host.thaw_sshd().unwrap();

    let second = bed.start_controller(bed.settings()).await.unwrap();
    let access = wait_served_on(&bed, "kp-1", "h1").await;
    assert_login_works(&bed, "kp-1").await;
    assert_eq!(bed.users_on("h1").unwrap(), [user(&access)]);
    assert!(bed.users_on("h2").unwrap().is_empty());
    let tr = bed.taskrun("kp-1").await.unwrap().expect("TaskRun");
    assert!(tr.failed_hosts().is_empty(), "h1 did not fail, it was slow");

    // The slot on h1 is counted once: the next TaskRun goes to h2, the one after waits.
    bed.wait_host_up(second, "h2").await.unwrap();
    bed.submit("kp-2", PLATFORM).await.unwrap();
    wait_served_on(&bed, "kp-2", "h2").await;
    bed.submit("kp-3", PLATFORM).await.unwrap();
    bed.wait_waiting("kp-3").await.unwrap();
    assert_waiting(&bed, "kp-3").await;

    bed.complete("kp-1", true).await.unwrap();
    wait_served_on(&bed, "kp-3", "h1").await;
    assert_login_works(&bed, "kp-3").await;
    bed.wait_released("kp-1").await.unwrap();
    for name in ["kp-2", "kp-3"] {
        bed.complete(name, true).await.unwrap();
    }
    for name in ["kp-2", "kp-3"] {
        bed.wait_released(name).await.unwrap();
    }
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskruns_that_finish_or_arrive_while_the_controller_is_down_are_handled_after_restart() {
    let (mut bed, first) = bed_with_controller(
        "finished-while-down",
        vec![HostSpec::new("h1", PLATFORM, 1)],
    )
    .await;
    bed.submit("fd-1", PLATFORM).await.unwrap();
    let access = wait_served_on(&bed, "fd-1", "h1").await;
    bed.kill_controller(first).await;

    // While no controller runs: Tekton finishes fd-1 and a new build arrives.
    bed.complete("fd-1", true).await.unwrap();
    bed.submit("fd-2", PLATFORM).await.unwrap();
    assert_eq!(bed.users_on("h1").unwrap(), [user(&access)]);

    bed.start_controller(bed.settings()).await.unwrap();
    bed.wait_released("fd-1").await.unwrap();
    wait_served_on(&bed, "fd-2", "h1").await;
    assert_login_works(&bed, "fd-2").await;
    assert_eq!(
        bed.users_on("h1").unwrap().len(),
        1,
        "only fd-2's user on the host"
    );
    bed.complete("fd-2", true).await.unwrap();
    bed.wait_released("fd-2").await.unwrap();
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_deleted_while_the_watch_was_down_leaves_the_queue_after_the_relist() {
    let (bed, c) = bed_with_controller("relist", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    let Some(server) = bed.env().server() else {
        skip_on_real_cluster(
            "a_waiter_deleted_while_the_watch_was_down",
            "needs kube-sim to cut the watch and compact its history",
        );
        bed.cleanup().await;
        return;
    };
    bed.submit("rl-hold", PLATFORM).await.unwrap();
    wait_served_on(&bed, "rl-hold", "h1").await;
    for name in ["rl-1-deleted", "rl-2-next"] {
        bed.submit(name, PLATFORM).await.unwrap();
        bed.wait_waiting(name).await.unwrap();
    }
    let waiting = || {
        bed.metric(
            c,
            "multi_platform_controller_waiting_tasks",
            &[("platform", PLATFORM)],
        )
    };
    wait_until(DEFAULT_WAIT, "two TaskRuns counted waiting", || async {
        waiting() == Some(2.0)
    })
    .await
    .unwrap();

    // From now on every TaskRun watch stream ends after one event, and every TaskRun
    // request waits 2 s before it is served, so the controller's watch, once cut, stays
    // down for 2 s. In that window: a change it sees as the last event of its stream,
    // a deletion it never sees, and a compaction, so the resumed watch gets 410 Gone and
    // the controller must re-list.
    server.faults().set(FaultConfig {
        watch_cut_after: Some(1),
        latency: Duration::from_secs(2),
        resources: vec!["taskruns".into()],
        ..FaultConfig::default()
    });
    let store = server.store();
    let info = store
        .resource("tekton.dev", "v1", "taskruns")
        .expect("TaskRuns served");
    let ns = Some(bed.namespace());
    store
        .patch(
            &info,
            ns,
            "rl-hold",
            PatchKind::Merge,
            &json!({"metadata": {"labels": {"example.com/touched": "yes"}}}),
            false,
            &WriteOptions::manager("test"),
        )
        .unwrap();
    store
        .delete(&info, ns, "rl-1-deleted", &DeleteOptions::default())
        .unwrap();
    server.compact();

    // Only the re-list can tell the controller that rl-1-deleted is gone.
    wait_until(
        DEFAULT_WAIT,
        "the deleted waiter dropped from the queue",
        || async { waiting() == Some(1.0) },
    )
    .await
    .unwrap();
    server.faults().clear();

    bed.complete("rl-hold", true).await.unwrap();
    let served = wait_first_served(&bed, &["rl-1-deleted", "rl-2-next"]).await;
    assert_eq!(served, ["rl-2-next"]);
    wait_served_on(&bed, "rl-2-next", "h1").await;
    assert_never_allocated(&bed, "rl-1-deleted").await;
    bed.wait_released("rl-hold").await.unwrap();
    bed.complete("rl-2-next", true).await.unwrap();
    bed.wait_released("rl-2-next").await.unwrap();
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}
