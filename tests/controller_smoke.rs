//! End-to-end smoke test: kube-sim (or a real cluster), a real sshd build host, the
//! controller in-process, and one TaskRun driven the way Tekton drives it.

use testbed::{HostSpec, Issued, Testbed, init_test_logging};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskrun_gets_a_working_secret_and_leaves_nothing_behind() {
    init_test_logging();
    let mut bed = Testbed::start("smoke", vec![HostSpec::new("h1", "linux/arm64", 2)])
        .await
        .expect("test bed");
    bed.start_controller(bed.settings())
        .await
        .expect("controller");

    bed.submit("build-1", "linux/arm64").await.expect("TaskRun");
    let access = bed.wait_for_secret("build-1").await.expect("Secret");
    let Issued::Access { user, user_dir, .. } = &access else {
        panic!("expected SSH access, got {access:?}");
    };
    assert_eq!(user_dir, &format!("/home/{user}"));
    let out = bed.ssh(&access, "id -un").expect("ssh");
    assert!(out.success(), "login failed: {}", out.stderr);
    assert_eq!(out.stdout.trim(), user);

    bed.complete("build-1", true).await.expect("complete");
    bed.wait_released("build-1").await.expect("released");
    assert!(bed.users_on("h1").unwrap().is_empty());
    bed.cleanup().await;
}
