//! Shared helpers of the conformance tests.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, PostParams};
use kube_sim::TestEnv;
use serde_json::{Value, json};

/// Deadline for conditions that a real cluster fulfils in seconds (GC, namespace cleanup).
pub const SLOW: Duration = Duration::from_secs(60);

/// Starts a test environment, failing the test with the reason when it cannot.
pub async fn env(prefix: &str) -> TestEnv {
    match TestEnv::start(prefix).await {
        Ok(e) => e,
        Err(e) => panic!("test environment: {e}"),
    }
}

/// A ConfigMap with labels and one data key.
pub fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

/// Creates a ConfigMap in the test namespace.
pub async fn create_cm(env: &TestEnv, name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm(name, labels))
        .await
        .unwrap()
}

/// The TaskRun API of the test namespace (installs the CRD first).
pub async fn taskruns(env: &TestEnv) -> Api<DynamicObject> {
    env.ensure_taskrun_crd().await.unwrap();
    Api::namespaced_with(
        env.client(),
        env.namespace(),
        &kube_sim::crds::taskrun_api_resource(),
    )
}

/// A TaskRun object as a Tekton user would write it.
pub fn taskrun(name: &str, extra: Value) -> DynamicObject {
    let mut v = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name},
        "spec": {"params": [{"name": "PLATFORM", "value": "linux/arm64"}]}
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

/// The `kube::Error::Api` status of a failed call (panics on success or other errors).
pub fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts an API error's code and reason.
pub fn assert_api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>, code: u16, reason: &str) {
    let s = api_error(r);
    assert_eq!((s.code, s.reason.as_str()), (code, reason), "{s:?}");
}
