//! Scale benchmark: list latency at 10 000 TaskRuns and watch fan-out latency to 50 watchers.
//!
//! `cargo bench -p kube-sim --bench scale` runs the full sizes; `cargo test` runs the same
//! code once at small sizes (a smoke run, no figures worth reading).
//!
//! Everything goes through real HTTP with the real `kube` client, as a controller would.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{
    Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube_sim::{Options, Server};
use serde_json::json;
use tokio::sync::mpsc;

struct Sizes {
    taskruns: usize,
    watchers: usize,
    list_rounds: usize,
    updates: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.95)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

fn taskrun(i: usize) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": format!("tr-{i:05}"), "labels": {"batch": (i % 10).to_string()}},
        "spec": {
            "params": [{"name": "PLATFORM", "value": "linux/arm64"}],
            "taskRef": {"name": "buildah-remote"},
            "workspaces": [{"name": "source", "emptyDir": {}}]
        }
    }))
    .expect("a valid TaskRun")
}

async fn run(sizes: Sizes) {
    let server = Server::start(Options {
        with_tekton_crds: true,
        ..Default::default()
    })
    .await
    .expect("kube-sim starts");
    let client = server.client();
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube_sim::crds::taskrun_api_resource(),
    );

    let t = Instant::now();
    stream::iter(0..sizes.taskruns)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &taskrun(i))
                    .await
                    .expect("create");
            }
        })
        .await;
    let created = t.elapsed();
    println!(
        "created {} TaskRuns in {:.2} s ({:.0}/s, 32 concurrent clients)\n",
        sizes.taskruns,
        created.as_secs_f64(),
        sizes.taskruns as f64 / created.as_secs_f64()
    );

    println!("| operation | samples | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    // Full list, raw bytes: what the server costs plus transfer.
    let mut raw = Vec::new();
    let mut bytes = 0;
    for _ in 0..sizes.list_rounds {
        let req = http::Request::get("/apis/tekton.dev/v1/namespaces/default/taskruns")
            .body(Vec::new())
            .expect("request");
        let t = Instant::now();
        let text = client.request_text(req).await.expect("list");
        raw.push(t.elapsed());
        bytes = text.len();
    }
    report(
        &format!(
            "list {} (raw JSON, {:.1} MB)",
            sizes.taskruns,
            bytes as f64 / 1e6
        ),
        raw,
    );
    // Full list decoded into DynamicObjects, as `Api::list` does.
    let mut typed = Vec::new();
    for _ in 0..sizes.list_rounds {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await.expect("list");
        typed.push(t.elapsed());
        assert_eq!(l.items.len(), sizes.taskruns);
    }
    report(
        &format!("list {} (kube Api::list, decoded)", sizes.taskruns),
        typed,
    );
    let mut paged = Vec::new();
    for _ in 0..sizes.list_rounds {
        let t = Instant::now();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(c) = &token {
                lp = lp.continue_token(c);
            }
            let page = api.list(&lp).await.expect("page");
            token = page.metadata.continue_.filter(|c| !c.is_empty());
            if token.is_none() {
                break;
            }
        }
        paged.push(t.elapsed());
    }
    report(
        &format!("list {} in pages of 500 (decoded)", sizes.taskruns),
        paged,
    );
    let mut selected = Vec::new();
    for _ in 0..sizes.list_rounds {
        let t = Instant::now();
        api.list(&ListParams::default().labels("batch=3"))
            .await
            .expect("list");
        selected.push(t.elapsed());
    }
    report(
        &format!(
            "list by label selector ({} of {})",
            sizes.taskruns / 10,
            sizes.taskruns
        ),
        selected,
    );

    // Watch fan-out: time from sending a patch to each watcher receiving its event.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..sizes.watchers {
        let mut events = api
            .watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                if let WatchEvent::Modified(o) = e
                    && tx
                        .send((
                            o.metadata.resource_version.unwrap_or_default(),
                            Instant::now(),
                        ))
                        .is_err()
                {
                    return;
                }
            }
        }));
    }
    let mut each = Vec::new();
    let mut last = Vec::new();
    let started = Instant::now();
    for i in 0..sizes.updates {
        let name = format!("tr-{:05}", i % sizes.taskruns);
        let t0 = Instant::now();
        let p = Patch::Merge(json!({"metadata": {"labels": {"round": i.to_string()}}}));
        let updated = api
            .patch(&name, &PatchParams::default(), &p)
            .await
            .expect("patch");
        let want = updated.metadata.resource_version.expect("rv");
        let mut got = 0;
        let mut slowest = Duration::ZERO;
        while got < sizes.watchers {
            let (rv, at) = rx.recv().await.expect("watch events");
            if rv == want {
                got += 1;
                let d = at.duration_since(t0);
                each.push(d);
                slowest = slowest.max(d);
            }
        }
        last.push(slowest);
    }
    let total = started.elapsed();
    report(
        &format!("watch event, patch → each of {} watchers", sizes.watchers),
        each,
    );
    report(
        &format!("watch event, patch → last of {} watchers", sizes.watchers),
        last,
    );
    println!(
        "\n{} updates fanned out to {} watchers in {:.2} s ({:.0} events delivered/s)",
        sizes.updates,
        sizes.watchers,
        total.as_secs_f64(),
        (sizes.updates * sizes.watchers) as f64 / total.as_secs_f64()
    );
    for t in tasks {
        t.abort();
    }
    let stored = server
        .store()
        .count(&kube_sim::resources::GroupResource::new(
            "tekton.dev",
            "taskruns",
        ));
    assert_eq!(stored, sizes.taskruns);
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes = if bench {
        Sizes {
            taskruns: 10_000,
            watchers: 50,
            list_rounds: 20,
            updates: 200,
        }
    } else {
        Sizes {
            taskruns: 200,
            watchers: 5,
            list_rounds: 2,
            updates: 5,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run(sizes));
}
