//! Allocation as builds and admins see it: a full pool queues TaskRuns (waiting label,
//! Waiting Event with the queue position) and hands freed slots on strictly in creation
//! order; cancelling or deleting a TaskRun, running or waiting, frees what it held.

use crate::common_controller::{
    assert_hosts_clean, assert_login_works, assert_never_allocated, assert_waiting,
    bed_with_controller, created_secs, event_reasons, user, wait_first_served, wait_not_waiting,
    wait_past_creation_of, wait_served_on,
};
use testbed::HostSpec;

const PLATFORM: &str = "linux/arm64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_taskruns_and_serves_them_in_creation_order() {
    let (bed, _) = bed_with_controller("fifo", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    bed.submit("holder", PLATFORM).await.unwrap();
    wait_served_on(&bed, "holder", "h1").await;

    // Created a second apart and named against that order, so serving by name (or by
    // arrival of events) would be caught.
    let waiters = ["fifo-c", "fifo-b", "fifo-a"];
    for (i, name) in waiters.iter().enumerate() {
        if i > 0 {
            wait_past_creation_of(&bed, waiters[i - 1]).await;
        }
        bed.submit(name, PLATFORM).await.unwrap();
        bed.wait_waiting(name).await.unwrap();
        assert_waiting(&bed, name).await;
        let event = bed.wait_event(name, "Waiting").await.unwrap();
        let position = match i {
            0 => "next in the queue".to_owned(),
            n => format!("{n} TaskRun(s) ahead in the queue"),
        };
        assert!(
            event.note.contains(&position) && event.note.contains(PLATFORM),
            "{name}: Waiting Event should say `{position}`: {event:?}"
        );
    }
    let mut created = Vec::new();
    for name in waiters {
        created.push(created_secs(&bed, name).await);
    }
    assert!(
        created.windows(2).all(|w| w[0] < w[1]),
        "creation times {created:?}"
    );

    let mut running = "holder";
    for (i, name) in waiters.iter().enumerate() {
        bed.complete(running, true).await.unwrap();
        let served = wait_first_served(&bed, &waiters[i..]).await;
        assert_eq!(served, [*name], "the oldest waiter must be served first");
        wait_served_on(&bed, name, "h1").await;
        assert_login_works(&bed, name).await;
        bed.wait_released(running).await.unwrap();
        for later in &waiters[i + 1..] {
            assert_waiting(&bed, later).await;
        }
        running = name;
    }
    bed.complete(running, true).await.unwrap();
    bed.wait_released(running).await.unwrap();
    assert_hosts_clean(&bed);

    for name in waiters {
        bed.wait_event(name, "Released").await.unwrap();
        assert_eq!(
            event_reasons(&bed, name).await,
            ["Allocated", "Provisioned", "Released", "Waiting"],
            "{name}"
        );
    }
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_deleting_a_running_taskrun_frees_its_host_and_hands_the_slot_on() {
    let (bed, _) =
        bed_with_controller("stop-running", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    bed.submit("run-a", PLATFORM).await.unwrap();
    let a = wait_served_on(&bed, "run-a", "h1").await;
    bed.submit("run-b", PLATFORM).await.unwrap();
    bed.wait_waiting("run-b").await.unwrap();
    bed.submit("run-c", PLATFORM).await.unwrap();
    bed.wait_waiting("run-c").await.unwrap();

    // A user cancels run-a: its user, Secret and finalizer go, run-b takes the slot.
    bed.cancel("run-a").await.unwrap();
    bed.wait_released("run-a").await.unwrap();
    let tr = bed
        .taskrun("run-a")
        .await
        .unwrap()
        .expect("a cancelled TaskRun stays");
    assert_eq!(tr.assigned_host(), None);
    assert!(!tr.has_finalizer());
    assert!(!bed.users_on("h1").unwrap().contains(&user(&a)));
    let b = wait_served_on(&bed, "run-b", "h1").await;
    assert_login_works(&bed, "run-b").await;
    assert_waiting(&bed, "run-c").await;

    // A user deletes run-b while it runs: the finalizer holds the TaskRun until the
    // host is clean, then it goes, and run-c takes the slot.
    bed.delete("run-b").await.unwrap();
    bed.wait_gone("run-b").await.unwrap();
    assert!(bed.secret("run-b").await.unwrap().is_none());
    assert!(!bed.users_on("h1").unwrap().contains(&user(&b)));
    wait_served_on(&bed, "run-c", "h1").await;
    assert_login_works(&bed, "run-c").await;

    bed.complete("run-c", true).await.unwrap();
    bed.wait_released("run-c").await.unwrap();
    assert_hosts_clean(&bed);
    assert_eq!(
        event_reasons(&bed, "run-a").await,
        ["Allocated", "Provisioned", "Released"]
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_deleting_a_waiting_taskrun_gives_up_its_place_in_the_queue() {
    let (bed, _) =
        bed_with_controller("stop-waiting", vec![HostSpec::new("h1", PLATFORM, 1)]).await;
    bed.submit("hold", PLATFORM).await.unwrap();
    wait_served_on(&bed, "hold", "h1").await;
    // Queue order is creation time, then name: w1 and w2 are ahead of w3.
    for name in ["w1-cancel", "w2-delete", "w3-next"] {
        bed.submit(name, PLATFORM).await.unwrap();
        bed.wait_waiting(name).await.unwrap();
    }

    bed.cancel("w1-cancel").await.unwrap();
    wait_not_waiting(&bed, "w1-cancel").await;
    let tr = bed.taskrun("w1-cancel").await.unwrap().expect("TaskRun");
    assert!(!tr.has_finalizer());
    bed.delete("w2-delete").await.unwrap();
    bed.wait_gone("w2-delete").await.unwrap();

    // The slot goes past the two that left to the next waiter.
    bed.complete("hold", true).await.unwrap();
    let served = wait_first_served(&bed, &["w1-cancel", "w2-delete", "w3-next"]).await;
    assert_eq!(served, ["w3-next"]);
    wait_served_on(&bed, "w3-next", "h1").await;
    bed.wait_released("hold").await.unwrap();

    // Their places are gone too: a newcomer is next in line, nobody ahead of it.
    bed.submit("w4-late", PLATFORM).await.unwrap();
    bed.wait_waiting("w4-late").await.unwrap();
    let event = bed.wait_event("w4-late", "Waiting").await.unwrap();
    assert!(event.note.contains("next in the queue"), "{event:?}");

    bed.complete("w3-next", true).await.unwrap();
    wait_served_on(&bed, "w4-late", "h1").await;
    bed.complete("w4-late", true).await.unwrap();
    bed.wait_released("w4-late").await.unwrap();
    bed.wait_released("w3-next").await.unwrap();
    assert_never_allocated(&bed, "w1-cancel").await;
    assert_never_allocated(&bed, "w2-delete").await;
    assert_hosts_clean(&bed);
    bed.cleanup().await;
}
