//! Fault injection (kube-sim only: skipped with a note on a real cluster).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{FaultConfig, Faults, Options, Server, TestEnv};

use crate::common::*;

/// The test's environment and its fault handle, or `None` (after a note) on a real cluster.
async fn sim_env(prefix: &str) -> Option<(TestEnv, Faults)> {
    let env = env(prefix).await;
    match env.faults().cloned() {
        Some(f) => Some((env, f)),
        None => {
            skip_on_real_cluster(prefix, "fault injection");
            None
        }
    }
}

#[tokio::test]
async fn injected_write_errors_and_conflicts() {
    let Some((env, faults)) = sim_env("faults-writes").await else {
        return;
    };
    let api = env.api::<ConfigMap>();
    faults.set(FaultConfig {
        write_error_rate: 1.0,
        resources: vec!["configmaps".into()],
        ..Default::default()
    });
    assert_api_error(
        api.create(&PostParams::default(), &cm("e", &[])).await,
        500,
        "InternalError",
    );
    faults.set(FaultConfig {
        write_conflict_rate: 1.0,
        ..Default::default()
    });
    assert_api_error(
        api.create(&PostParams::default(), &cm("e", &[])).await,
        409,
        "Conflict",
    );
    // Reads are never failed, and the failed writes did not happen.
    assert!(api.get_opt("e").await.unwrap().is_none());
    let stats = faults.stats();
    assert_eq!((stats.write_errors, stats.write_conflicts), (1, 1));
    // Turned off for the next phase.
    faults.clear();
    api.create(&PostParams::default(), &cm("e", &[]))
        .await
        .unwrap();
}

/// Outcomes of a fixed sequence of creates against a fresh server with `seed`.
async fn outcomes(seed: u64) -> Vec<bool> {
    let server = Server::start(Options {
        faults: FaultConfig {
            seed,
            write_error_rate: 0.5,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let api: kube::Api<ConfigMap> = kube::Api::default_namespaced(server.client());
    let mut out = Vec::new();
    for i in 0..24 {
        out.push(
            api.create(&PostParams::default(), &cm(&format!("s{i}"), &[]))
                .await
                .is_ok(),
        );
    }
    out
}

#[tokio::test]
async fn faults_are_reproducible_from_the_seed() {
    let a = outcomes(42).await;
    assert_eq!(a, outcomes(42).await);
    assert_ne!(a, outcomes(43).await);
    assert!(a.iter().any(|ok| *ok) && a.iter().any(|ok| !*ok), "{a:?}");
}

#[tokio::test]
async fn latency_is_added() {
    let Some((env, faults)) = sim_env("faults-latency").await else {
        return;
    };
    let api = env.api::<ConfigMap>();
    faults.set(FaultConfig {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    let t = Instant::now();
    api.get_opt("x").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(faults.stats().delayed_requests, 1);
}

#[tokio::test]
async fn cut_watch_streams_do_not_lose_events() {
    let Some((env, faults)) = sim_env("faults-watch").await else {
        return;
    };
    let api = env.api::<ConfigMap>();
    faults.set(FaultConfig {
        seed: 7,
        watch_cut_after: Some(3),
        watch_cut_rate: 0.2,
        ..Default::default()
    });
    let seen = tokio::spawn({
        let api = api.clone();
        async move {
            watcher(api, watcher::Config::default().labels("cut=y"))
                .default_backoff()
                .applied_objects()
                .map_ok(|c: ConfigMap| c.metadata.name.unwrap())
                .try_filter(|n| futures::future::ready(n == "c19"))
                .boxed()
                .next()
                .await
        }
    });
    for i in 0..20 {
        create_cm(&env, &format!("c{i}"), &[("cut", "y")]).await;
    }
    let last = tokio::time::timeout(SLOW, seen).await.unwrap().unwrap();
    assert_eq!(last.unwrap().unwrap(), "c19");
    assert!(faults.stats().watches_cut >= 1, "{:?}", faults.stats());
}
