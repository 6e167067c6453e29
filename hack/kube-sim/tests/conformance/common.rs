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

/// The TaskRun API of the test namespace (installs the upstream Tekton CRDs first).
pub async fn taskruns(env: &TestEnv) -> Api<DynamicObject> {
    env.ensure_tekton_crds().await.unwrap();
    Api::namespaced_with(
        env.client(),
        env.namespace(),
        &kube_sim::crds::taskrun_api_resource(),
    )
}

/// A TaskRun object as a Tekton user would write it (Tekton's webhook wants exactly one of
/// `taskRef` and `taskSpec`).
pub fn taskrun(name: &str, extra: Value) -> DynamicObject {
    let mut v = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name},
        "spec": {
            "params": [{"name": "PLATFORM", "value": "linux/arm64"}],
            "taskRef": {"name": "kube-sim-conformance"}
        }
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

/// Retries a request the API server throttled (429) or could not serve for the moment
/// (503, 504), as kube clients do: exponential backoff from 50 ms with full jitter, at
/// least the second the API server asks for, at most 12 attempts. This comes on top of
/// kube's own client retries, for bursts that outlast them.
pub async fn retrying<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut pause = std::time::Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match request().await {
            Err(kube::Error::Api(s)) if matches!(s.code, 429 | 503 | 504) && attempt < 12 => {
                let floor = if s.code == 429 {
                    std::time::Duration::from_secs(1)
                } else {
                    std::time::Duration::ZERO
                };
                let jitter = pause.mul_f64(rand::random::<f64>());
                tokio::time::sleep(floor.max(jitter)).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(10));
                attempt += 1;
            }
            other => return other,
        }
    }
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

/// An HTTP answer as it came over the wire (kube's typed calls hide headers like
/// `Warning` and `Retry-After`).
#[derive(Debug)]
pub struct Raw {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Raw {
    /// The values of a header.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

/// Sends one request through `client` (path relative to the server) and returns the raw
/// answer, whatever its status.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Raw {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let response = client.send(request).await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    Raw {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A client for kube-sim that does not retry 429 by itself (kube clients do by default).
pub fn client_without_retries(server: &kube_sim::RunningServer, namespace: &str) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_namespace = namespace.to_string();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}
