//! End-to-end happy path: kube-sim (or a real cluster), a real sshd build host, the
//! controller in-process, and one TaskRun driven the way Tekton drives it — checked the
//! way the build uses it (ssh with the Secret) and the way an admin sees it (labels,
//! Events, the host's own user list).

use mpc_core::naming::{
    ALLOCATION_START_TIME_ANNOTATION, ASSIGNED_HOST_LABEL, SECRET_LABEL, TARGET_PLATFORM_LABEL,
    UserName, secret_name,
};
use testbed::{HostSpec, Issued, Testbed, init_test_logging};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskrun_gets_a_working_secret_and_leaves_nothing_behind() {
    init_test_logging();
    let mut bed = Testbed::start("smoke", vec![HostSpec::new("h1", "linux/arm64", 2)])
        .await
        .expect("test bed");
    let c = bed
        .start_controller(bed.settings())
        .await
        .expect("controller");
    bed.wait_host_up(c, "h1").await.expect("h1 probed");

    bed.submit("build-1", "linux/arm64").await.expect("TaskRun");
    let access = bed.wait_for_secret("build-1").await.expect("Secret");
    let Issued::Access {
        user,
        host,
        user_dir,
        ..
    } = &access
    else {
        panic!("expected SSH access, got {access:?}");
    };
    let expected_user = UserName::for_taskrun("build-1", bed.namespace()).to_string();
    assert_eq!(user, &expected_user);
    assert_eq!(host, &format!("{user}@{}", bed.host("h1").host.address()));
    assert_eq!(user_dir, &format!("/home/{user}"));

    // The build: log in with the Secret's key, trusting only the Secret's known_hosts
    // line, and run what buildah-remote runs first.
    let out = bed
        .ssh_as_task("build-1", "uname -m; id -un; cd && pwd")
        .await
        .expect("ssh");
    assert!(out.success(), "login failed: {}", out.stderr);
    let host_arch = bed.host("h1").host.run(&["uname", "-m"]).unwrap().stdout;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, [host_arch.trim(), user.as_str(), user_dir.as_str()]);

    // What an admin sees while it runs.
    let tr = bed.taskrun("build-1").await.unwrap().expect("TaskRun");
    let labels = tr.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(ASSIGNED_HOST_LABEL).map(String::as_str),
        Some("h1")
    );
    assert_eq!(
        labels.get(TARGET_PLATFORM_LABEL).map(String::as_str),
        Some("linux-arm64")
    );
    assert!(!tr.is_waiting());
    assert!(tr.has_finalizer());
    assert!(
        tr.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ALLOCATION_START_TIME_ANNOTATION))
    );
    let secret = bed.secret("build-1").await.unwrap().expect("Secret");
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some(secret_name("build-1").as_str())
    );
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SECRET_LABEL))
            .map(String::as_str),
        Some("true")
    );
    let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("TaskRun", "build-1")
    );
    assert_eq!(Some(&owner.uid), tr.metadata.uid.as_ref());
    assert_eq!(bed.users_on("h1").unwrap(), vec![user.clone()]);
    assert!(bed.exists_on("h1", user_dir).unwrap());
    bed.wait_event("build-1", "Provisioned")
        .await
        .expect("Provisioned Event");

    bed.complete("build-1", true).await.expect("complete");
    bed.wait_released("build-1").await.expect("released");
    assert!(bed.users_on("h1").unwrap().is_empty());
    assert!(!bed.exists_on("h1", user_dir).unwrap(), "home left behind");
    assert!(bed.secret("build-1").await.unwrap().is_none());
    let tr = bed.taskrun("build-1").await.unwrap().expect("TaskRun");
    assert!(!tr.has_finalizer());
    assert!(tr.assigned_host().is_none());
    bed.wait_event("build-1", "Released")
        .await
        .expect("Released Event");
    let mut events = bed.events_for("build-1").await.unwrap();
    assert!(events.iter().all(|e| e.type_ == "Normal"), "{events:?}");
    // Published concurrently: timestamps of close Events may swap; compare the set.
    events.sort_by(|a, b| a.reason.cmp(&b.reason));
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Allocated", "Provisioned", "Released"]);
    bed.cleanup().await;
}
