//! Watch: event order, resuming from a resourceVersion, selectors, bookmarks, 410 Gone.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube_sim::{Options, Server, TestEnv};
use serde_json::json;

use crate::common::*;

/// The next non-bookmark event, within a deadline.
async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a watch event within 30s")
            .expect("the stream is open")
            .expect("no stream error");
        if !matches!(e, WatchEvent::Bookmark(_)) {
            return e;
        }
    }
}

fn name_of(e: &WatchEvent<ConfigMap>) -> (&'static str, String) {
    match e {
        WatchEvent::Added(o) => ("ADDED", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => ("MODIFIED", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Deleted(o) => ("DELETED", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => ("BOOKMARK", String::new()),
        WatchEvent::Error(e) => panic!("watch error {e:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_list_sees_every_change_in_order() {
    let env = env("watch-order").await;
    let api = env.api::<ConfigMap>();
    create_cm(&env, "before", &[]).await;
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    create_cm(&env, "w", &[]).await;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(name_of(&next_event(&mut stream).await));
    }
    assert_eq!(
        got,
        [
            ("ADDED", "w".into()),
            ("MODIFIED", "w".into()),
            ("DELETED", "w".into())
        ]
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn watch_resumes_from_an_older_resource_version() {
    let env = env("watch-resume").await;
    let api = env.api::<ConfigMap>();
    let a = create_cm(&env, "r1", &[]).await;
    create_cm(&env, "r2", &[]).await;
    create_cm(&env, "r3", &[]).await;
    // Resuming from r1's version replays what happened after it.
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "r2".into())
    );
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "r3".into())
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let env = env("watch-labels").await;
    let api = env.api::<ConfigMap>();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("team=a"), &rv)
        .await
        .unwrap()
        .boxed();
    create_cm(&env, "x", &[("team", "b")]).await;
    let relabel = |t: &str| Patch::Merge(json!({"metadata": {"labels": {"team": t}}}));
    api.patch("x", &PatchParams::default(), &relabel("a"))
        .await
        .unwrap();
    api.patch("x", &PatchParams::default(), &relabel("c"))
        .await
        .unwrap();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "x".into())
    );
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("DELETED", "x".into())
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn compacted_resource_version_gives_410_gone() {
    let env = env("watch-gone").await;
    let api = env.api::<ConfigMap>();
    create_cm(&env, "g", &[]).await;
    // resourceVersion 1 is long compacted on any cluster (kube-sim starts compacted).
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    let e = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match e {
        WatchEvent::Error(s) => assert_eq!(s.code, 410, "{s:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn bounded_history_compacts_and_watchers_recover() {
    // kube-sim only: the history bound is kube-sim's stand-in for etcd compaction.
    let server = Server::start(Options {
        history_limit: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&Default::default(), &cm("h0", &[]))
        .await
        .unwrap();
    for i in 1..10 {
        api.create(&Default::default(), &cm(&format!("h{i}"), &[]))
            .await
            .unwrap();
    }
    let old = first.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // A kube-runtime watcher re-lists after 410 and ends up with every object.
    server.compact();
    let names: Vec<String> = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .map_ok(|c: ConfigMap| c.metadata.name.unwrap())
        .take(10)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names.len(), 10);
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let env = env("watch-stream-list").await;
    create_cm(&env, "s1", &[]).await;
    create_cm(&env, "s2", &[]).await;
    let api = env.api::<ConfigMap>();
    let mut stream = api
        .watch(&WatchParams::default().initial_events(), "")
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match e {
            WatchEvent::Added(o) => added.push(o.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                if b.metadata
                    .annotations
                    .contains_key("k8s.io/initial-events-end")
                {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, ["s1", "s2"]);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn periodic_bookmarks_carry_the_current_resource_version() {
    // kube-sim only: the bookmark interval is a kube-sim option (real clusters send one
    // about every minute, too slow for a test).
    let env = TestEnv::start_with(
        "watch-bookmarks",
        Options {
            bookmark_interval: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    if !env.is_kube_sim() {
        kube_sim::testenv::skip_on_real_cluster(
            "periodic bookmarks",
            "the bookmark interval is a kube-sim option",
        );
        return;
    }
    let api = env.api::<ConfigMap>();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let created = create_cm(&env, "b", &[]).await;
    let created_rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a bookmark within 10s")
            .unwrap()
            .unwrap();
        if let WatchEvent::Bookmark(b) = e {
            let brv: u64 = b.metadata.resource_version.parse().unwrap();
            if brv >= created_rv {
                break;
            }
        }
    }
}
