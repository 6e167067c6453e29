//! Crashes: a controller killed while it provisions a build user, or while builds
//! finish, leaves nothing behind once a new one starts — no leaked user, no slot given
//! twice, every TaskRun served or released.

mod common_controller;

use common_controller::{
    assert_hosts_clean, assert_login_works, assert_waiting, bed_with_controller, user,
    wait_served_on,
};
use kube_sim::wait_until;
use testbed::HostSpec;

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
