//! Watch: event order, resuming from a resourceVersion, selectors, bookmarks, and the watch
//! cache window: a resourceVersion inside it replays the changes since, an older one gets
//! 410 Gone, and a kube::runtime watcher given such a version re-lists and goes on.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube_sim::store::WatchCacheWindow;
use kube_sim::{Options, Server, TestEnv, wait_for, wait_until};
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

/// A small watch cache window on kube-sim, so a resourceVersion leaves it after a few
/// changes (a real API server keeps every change of the last 75 s, at least 100).
fn small_window() -> Options {
    Options {
        watch_cache: WatchCacheWindow::events(10),
        ..Default::default()
    }
}

/// Changes a ConfigMap the test's watchers do not select until a watch from `rv` answers
/// 410 Gone (the server no longer has `rv` in its watch cache), and returns that answer.
/// kube-sim needs a few changes; a real API server needs about two minutes of them.
async fn change_until_expired(api: &Api<ConfigMap>, rv: &str) -> kube::core::Status {
    let round = std::sync::atomic::AtomicU64::new(0);
    wait_for(
        Duration::from_secs(600),
        "the resourceVersion leaves the watch cache",
        || async {
            for _ in 0..20 {
                let n = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = Patch::Merge(json!({"data": {"round": n.to_string()}}));
                api.patch("churn", &PatchParams::default(), &p)
                    .await
                    .unwrap();
            }
            let mut stream = api.watch(&WatchParams::default(), rv).await.ok()?.boxed();
            let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .ok()??;
            match first {
                Ok(WatchEvent::Error(s)) if s.code == 410 => Some(*s),
                _ => None,
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_old_resource_version_replays_inside_the_window_and_is_gone_after_it() {
    let env = TestEnv::start_with("watch-gone", small_window())
        .await
        .unwrap();
    let api = env.api::<ConfigMap>();
    let first = create_cm(&env, "g0", &[]).await;
    let old = first.metadata.resource_version.unwrap();
    create_cm(&env, "g1", &[]).await;
    create_cm(&env, "churn", &[]).await;
    // Still inside the watch cache: the changes since are replayed.
    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "g1".into())
    );
    drop(stream);
    // Once the window has moved past it: 410 Gone, in the stream.
    let gone = change_until_expired(&api, &old).await;
    assert_eq!(
        (gone.code, gone.reason.as_str()),
        (410, "Expired"),
        "{gone:?}"
    );
    assert!(
        gone.message
            .starts_with(&format!("too old resource version: {old} (")),
        "{gone:?}"
    );
    env.cleanup().await.unwrap();
}

/// What a watcher reported, for the test to wait on.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Listed,
    Object(String),
    Error(u16),
}

#[tokio::test]
async fn a_watcher_relists_after_410_and_goes_on() {
    let env = TestEnv::start_with("watch-relist", small_window())
        .await
        .unwrap();
    let api = env.api::<ConfigMap>();
    create_cm(&env, "kept", &[("relist", "yes")]).await;
    create_cm(&env, "churn", &[]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Watches of one second end before any bookmark could move the watcher's
    // resourceVersion on: it resumes from the version of its list.
    let config = watcher::Config::default().labels("relist=yes").timeout(1);
    let task = tokio::spawn({
        let seen = seen.clone();
        watcher(api.clone(), config).for_each(move |e| {
            let s = match e {
                Ok(watcher::Event::InitDone) => Some(Seen::Listed),
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    Some(Seen::Object(o.metadata.name.unwrap_or_default()))
                }
                Err(watcher::Error::WatchError(s)) => Some(Seen::Error(s.code)),
                _ => None,
            };
            seen.lock().unwrap().extend(s);
            futures::future::ready(())
        })
    });
    let count = |what: Seen| seen.lock().unwrap().iter().filter(|s| **s == what).count();
    wait_until(SLOW, "the watcher listed", || async {
        count(Seen::Listed) == 1
    })
    .await
    .unwrap();
    // A version at least as new as the watcher's: once it is gone, so is the watcher's.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    change_until_expired(&api, &rv).await;
    wait_until(SLOW, "the watcher got 410 and listed again", || async {
        count(Seen::Error(410)) >= 1 && count(Seen::Listed) >= 2
    })
    .await
    .unwrap();
    create_cm(&env, "after", &[("relist", "yes")]).await;
    wait_until(SLOW, "the watcher sees a new object", || async {
        count(Seen::Object("after".into())) >= 1
    })
    .await
    .unwrap();
    assert!(count(Seen::Object("kept".into())) >= 2, "listed twice");
    task.abort();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn bounded_history_compacts_and_watchers_recover() {
    // kube-sim only: an etcd compaction (`compact`) on top of a tiny watch cache.
    let server = Server::start(Options {
        watch_cache: WatchCacheWindow::events(5),
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
