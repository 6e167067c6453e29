//! The API server's in-flight limit: beyond it requests get 429 Too Many Requests with
//! `Retry-After: 1`; watches do not count; kube clients retry and get through. kube-sim
//! only (the limits and a slow server are kube-sim options and faults): a real cluster
//! exempts cluster admins and shares its limits with everyone else.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{FaultConfig, Options, TestEnv};
use serde_json::json;

use crate::common::*;

fn cm_body(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string()
}

/// A kube-sim whose configmap requests each take `latency`, with these limits.
async fn slow_env(
    prefix: &str,
    readonly: usize,
    mutating: usize,
    latency: Duration,
) -> Option<TestEnv> {
    let env = TestEnv::start_with(
        prefix,
        Options {
            max_requests_inflight: readonly,
            max_mutating_requests_inflight: mutating,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let Some(faults) = env.faults() else {
        skip_on_real_cluster(prefix, "the in-flight limits are kube-sim options");
        return None;
    };
    faults.set(FaultConfig {
        latency,
        resources: vec!["configmaps".into()],
        ..Default::default()
    });
    Some(env)
}

#[test]
fn the_default_limits_are_the_api_servers() {
    let o = Options::default();
    assert_eq!(
        (o.max_requests_inflight, o.max_mutating_requests_inflight),
        (400, 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_limit_get_429_with_retry_after() {
    let Some(env) = slow_env("throttle-429", 3, 2, Duration::from_millis(400)).await else {
        return;
    };
    let server = env.server().unwrap();
    let raw_client = client_without_retries(server, env.namespace());
    let path = format!("/api/v1/namespaces/{}/configmaps", env.namespace());
    let answers = join_all((0..8).map(|i| {
        let (c, path) = (raw_client.clone(), path.clone());
        async move {
            raw(
                &c,
                "POST",
                &path,
                "application/json",
                &cm_body(&format!("t{i}")),
            )
            .await
        }
    }))
    .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let throttled: Vec<&Raw> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(created + throttled.len(), 8, "{answers:?}");
    assert!(created >= 2, "two writes fit in the limit: {answers:?}");
    assert!(!throttled.is_empty(), "{answers:?}");
    let t = throttled[0];
    assert_eq!(t.header_values("retry-after"), ["1"]);
    assert_eq!(t.body, "Too many requests, please try again later.\n");
    assert!(
        t.header_values("content-type")[0].starts_with("text/plain"),
        "{t:?}"
    );
    assert_eq!(server.throttled_requests(), throttled.len() as u64);
    // What a kube client sees when it does not retry: a 429 it can retry.
    let api: Api<ConfigMap> = Api::namespaced(raw_client.clone(), env.namespace());
    let results = join_all((0..6).map(|i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &cm(&format!("k{i}"), &[]))
                .await
        }
    }))
    .await;
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(kube::Error::Api(s)) if s.code == 429)),
        "{results:?}"
    );
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_do_not_count_and_clients_retry_through_the_limit() {
    let Some(env) = slow_env("throttle-retry", 2, 2, Duration::from_millis(400)).await else {
        return;
    };
    let server = env.server().unwrap();
    let api = env.api::<ConfigMap>();
    // Five watches open at once with room for two reads: watches are not counted.
    let watches = join_all((0..5).map(|_| {
        let api = api.clone();
        async move { api.watch(&WatchParams::default(), "0").await }
    }))
    .await;
    assert!(watches.iter().all(Result::is_ok));
    // kube clients retry 429 (honouring Retry-After), so a burst gets through.
    let results = join_all((0..8).map(|i| {
        let api = api.clone();
        let create = move || {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(&format!("r{i}"), &[]))
                    .await
            }
        };
        retrying(create)
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(server.throttled_requests() > 0, "the burst met the limit");
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        8
    );
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_mutating_limit_is_reached_at_two_hundred() {
    let Some(env) = slow_env("throttle-default", 400, 200, Duration::from_secs(2)).await else {
        return;
    };
    let raw_client = client_without_retries(env.server().unwrap(), env.namespace());
    let path = format!("/api/v1/namespaces/{}/configmaps", env.namespace());
    let answers = join_all((0..230).map(|i| {
        let (c, path) = (raw_client.clone(), path.clone());
        async move {
            raw(
                &c,
                "POST",
                &path,
                "application/json",
                &cm_body(&format!("d{i}")),
            )
            .await
            .status
        }
    }))
    .await;
    let created = answers.iter().filter(|s| **s == 201).count();
    let throttled = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(created + throttled, 230);
    assert!(
        throttled > 0 && created >= 200,
        "{created} created, {throttled} throttled"
    );
    env.cleanup().await.unwrap();
}
