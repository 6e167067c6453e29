//! End-to-end smoke test: kube-sim, a real sshd build host, the controller in-process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube_sim::crds::taskrun_api_resource;
use kube_sim::testenv::TestEnv;
use kube_sim::wait_for;
use multi_platform_controller::controller::{RunSettings, run};
use multi_platform_controller::metrics::Metrics;
use multi_platform_controller::naming::{CONFIG_LABEL, FINALIZER, SECRET_LABEL, UserName};
use multi_platform_controller::server::Health;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskrun_gets_a_working_secret_and_leaves_nothing_behind() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let env = TestEnv::start("smoke").await.expect("test environment");
    env.ensure_taskrun_crd().await.expect("TaskRun CRD");
    let host = test_hosts::TestHost::start().expect("sshd host");
    let ns = env.namespace().to_owned();
    let client = env.client();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let admin = Secret {
        metadata: ObjectMeta {
            name: Some("admin-key".into()),
            labels: Some(BTreeMap::from([(SECRET_LABEL.into(), "true".into())])),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(
            "id_rsa".into(),
            host.root().private_key.clone(),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &admin)
        .await
        .expect("admin Secret");
    let data = BTreeMap::from([
        ("host.h1.address".to_owned(), host.address().to_string()),
        ("host.h1.platform".to_owned(), "linux/arm64".to_owned()),
        ("host.h1.user".to_owned(), "root".to_owned()),
        ("host.h1.secret".to_owned(), "admin-key".to_owned()),
        ("host.h1.concurrency".to_owned(), "2".to_owned()),
        ("host.h1.host-key".to_owned(), host.host_key().to_owned()),
    ]);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("host-config".into()),
            labels: Some(BTreeMap::from([(CONFIG_LABEL.into(), "hosts".into())])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("host-config");

    let mut settings = RunSettings::new(&ns);
    settings.taskrun_namespace = Some(ns.clone());
    let metrics = Arc::new(Metrics::new().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(
        client.clone(),
        settings,
        metrics,
        Arc::new(Health::default()),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // Tekton: create the TaskRun, then fill status.taskSpec once it resolved the Task.
    let taskruns: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &taskrun_api_resource());
    let tr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": "build-1"},
        "spec": {"params": [{"name": "PLATFORM", "value": "linux/arm64"}], "taskRef": {"name": "buildah-remote"}},
    }))
    .unwrap();
    taskruns
        .create(&PostParams::default(), &tr)
        .await
        .expect("TaskRun");
    taskruns
        .patch_status(
            "build-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"taskSpec": {"volumes": [
                {"name": "ssh", "secret": {"secretName": "multi-platform-ssh-build-1"}}
            ]}}})),
        )
        .await
        .expect("status");

    let secret = wait_for(WAIT, "the SSH Secret", || async {
        secrets
            .get_opt("multi-platform-ssh-build-1")
            .await
            .ok()
            .flatten()
    })
    .await
    .expect("Secret written");
    let data = secret.data.expect("data");
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    let user = UserName::for_taskrun("build-1", &ns);
    assert_eq!(text("host"), format!("{user}@{}", host.address()));
    assert_eq!(text("user-dir"), format!("/home/{user}"));
    let out = host
        .ssh(user.as_str(), &text("id_rsa"), "uname -m")
        .expect("ssh with the issued key");
    assert!(out.success(), "login failed: {}", out.stderr);

    // Tekton completes the run; the controller cleans up.
    taskruns
        .patch_status(
            "build-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "completionTime": "2026-11-23T12:00:00Z",
                "conditions": [{"type": "Succeeded", "status": "True"}],
            }})),
        )
        .await
        .expect("complete");
    wait_for(WAIT, "user, Secret and finalizer gone", || async {
        let users = host.build_users().ok()?;
        let secret = secrets.get_opt("multi-platform-ssh-build-1").await.ok()?;
        let tr = taskruns.get("build-1").await.ok()?;
        let finalizers = tr.metadata.finalizers.unwrap_or_default();
        (users.is_empty() && secret.is_none() && !finalizers.iter().any(|f| f == FINALIZER))
            .then_some(())
    })
    .await
    .expect("released");
    let _ = stop_tx.send(());
    controller.await.unwrap().unwrap();
    env.cleanup().await.unwrap();
}
