//! Scale: 10 000 TaskRuns and 50 concurrent watchers. Functional only (everything arrives,
//! paging covers everything); the latency figures come from `benches/scale.rs`. The burst
//! meets the API server's in-flight limit like any client's: throttled creates (429) are
//! retried, as kube clients do, until they get through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, stream};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::common::*;

const TASKRUNS: usize = 10_000;
const WATCHERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_taskruns_and_fifty_watchers() {
    let env = env("scale").await;
    let api = taskruns(&env).await;
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let stream = api.watch(&WatchParams::default(), &rv).await.unwrap();
        let done = done.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut added = 0;
            while let Some(e) = stream.next().await {
                if let WatchEvent::Added(_) = e.unwrap() {
                    added += 1;
                    if added == TASKRUNS {
                        done.fetch_add(1, Ordering::SeqCst);
                        return added;
                    }
                }
            }
            added
        }));
    }
    stream::iter(0..TASKRUNS)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            async move {
                let tr = taskrun(
                    &format!("tr-{i:05}"),
                    json!({"metadata": {"labels": {"batch": (i % 10).to_string()}}}),
                );
                // A create the server throttled was not carried out: send it again. One that
                // timed out on a real cluster may have been: AlreadyExists is its answer.
                let create = || {
                    let (api, tr) = (api.clone(), tr.clone());
                    async move { api.create(&PostParams::default(), &tr).await }
                };
                match retrying(create).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {}
                    Err(e) => panic!("creating tr-{i:05}: {e}"),
                }
            }
        })
        .await;
    for w in watchers {
        assert_eq!(
            tokio::time::timeout(SLOW, w).await.unwrap().unwrap(),
            TASKRUNS
        );
    }
    assert_eq!(done.load(Ordering::SeqCst), WATCHERS);
    // Paging covers all of them; a label selector picks a tenth.
    let mut total = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        total += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(total, TASKRUNS);
    let tenth = api
        .list(&ListParams::default().labels("batch=3"))
        .await
        .unwrap();
    assert_eq!(tenth.items.len(), TASKRUNS / 10);
    env.cleanup().await.unwrap();
}
