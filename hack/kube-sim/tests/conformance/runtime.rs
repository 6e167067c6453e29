//! kube::runtime against kube-sim: reflector, Controller + finalizer helper, events
//! Recorder, and Lease-based leader election (kube-lease-manager).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use kube_sim::{wait_for, wait_until};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn reflector_mirrors_the_cluster() {
    let env = env("rt-reflector").await;
    let api = env.api::<ConfigMap>();
    create_cm(&env, "r1", &[("refl", "y")]).await;
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("refl=y")),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    create_cm(&env, "r2", &[("refl", "y")]).await;
    wait_until(SLOW, "the store holds both", || async {
        reader.state().len() == 2
    })
    .await
    .unwrap();
    api.patch(
        "r1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "new"}})),
    )
    .await
    .unwrap();
    wait_until(SLOW, "the store sees the update", || async {
        reader
            .state()
            .iter()
            .any(|c| c.data.as_ref().is_some_and(|d| d["k"] == "new"))
    })
    .await
    .unwrap();
    api.delete("r2", &DeleteParams::default()).await.unwrap();
    wait_until(SLOW, "the store drops the deleted object", || async {
        reader.state().len() == 1
    })
    .await
    .unwrap();
    task.abort();
    env.cleanup().await.unwrap();
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

struct Ctx {
    api: Api<ConfigMap>,
    applied: AtomicUsize,
    cleaned: AtomicUsize,
}

const FINALIZER: &str = "kube-sim.test/cleanup";

async fn reconcile(
    cm: Arc<ConfigMap>,
    ctx: Arc<Ctx>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    finalizer(&ctx.api, FINALIZER, cm, |event| async {
        match event {
            finalizer::Event::Apply(cm) => {
                if cm.labels().get("reconciled").is_none() {
                    let p = Patch::Merge(json!({"metadata": {"labels": {"reconciled": "yes"}}}));
                    ctx.api
                        .patch(&cm.name_any(), &PatchParams::default(), &p)
                        .await?;
                }
                ctx.applied.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
            finalizer::Event::Cleanup(_) => {
                ctx.cleaned.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(_: Arc<ConfigMap>, _: &finalizer::Error<ReconcileError>, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn controller_with_finalizer_runs_apply_and_cleanup() {
    let env = env("rt-controller").await;
    let api = env.api::<ConfigMap>();
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        applied: AtomicUsize::new(0),
        cleaned: AtomicUsize::new(0),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default().labels("ctl=yes"))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    create_cm(&env, "c1", &[("ctl", "yes")]).await;
    wait_until(
        SLOW,
        "the controller added its finalizer and label",
        || async {
            let c = api.get("c1").await.unwrap();
            c.finalizers().iter().any(|f| f == FINALIZER) && c.labels().contains_key("reconciled")
        },
    )
    .await
    .unwrap();
    api.delete("c1", &DeleteParams::default()).await.unwrap();
    wait_until(SLOW, "cleanup ran and the object is gone", || async {
        api.get_opt("c1").await.unwrap().is_none()
    })
    .await
    .unwrap();
    assert_eq!(ctx.cleaned.load(Ordering::SeqCst), 1);
    assert!(ctx.applied.load(Ordering::SeqCst) >= 1);
    task.abort();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn recorder_publishes_and_aggregates_events() {
    let env = env("rt-recorder").await;
    let cm = create_cm(&env, "evt", &[]).await;
    let recorder = Recorder::new(
        env.client(),
        Reporter {
            controller: "kube-sim-test".into(),
            instance: Some("test-1".into()),
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Checked".into(),
        note: Some("kube-sim conformance".into()),
        action: "Check".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events = env.api::<K8sEvent>();
    let ev = wait_for(SLOW, "the event is listed", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Checked"))
    })
    .await
    .unwrap();
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("evt")
    );
    assert_eq!(ev.reporting_controller.as_deref(), Some("kube-sim-test"));
    assert_eq!(
        ev.series.map(|s| s.count),
        Some(2),
        "the repeat is counted in the series"
    );
    // The same event through core/v1, as `kubectl get events` and `kubectl describe` see it.
    let core = env.api::<k8s_openapi::api::core::v1::Event>();
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=evt"))
        .await
        .unwrap();
    let e = listed
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Checked"))
        .expect("the event is visible as a core/v1 Event");
    assert_eq!(e.message.as_deref(), Some("kube-sim conformance"));
    assert_eq!(e.involved_object.kind.as_deref(), Some("ConfigMap"));
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn lease_updates_conflict_on_stale_resource_version() {
    let env = env("rt-lease").await;
    let api = env.api::<Lease>();
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {}})).unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut a = created.clone();
    a.spec.as_mut().unwrap().holder_identity = Some("a".into());
    let mut b = created.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("l", &PostParams::default(), &a).await.unwrap();
    assert_api_error(
        api.replace("l", &PostParams::default(), &b).await,
        409,
        "Conflict",
    );
    assert_eq!(
        api.get("l")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a")
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn lease_manager_elects_one_leader_and_hands_over() {
    let env = env("rt-leader").await;
    let (one, two) = (
        env.new_client().await.unwrap(),
        env.new_client().await.unwrap(),
    );
    let manager = |id: &str| {
        let client = if id == "first" {
            one.clone()
        } else {
            two.clone()
        };
        LeaseManagerBuilder::new(client, "leader")
            .with_namespace(env.namespace())
            .with_identity(id)
            .with_duration(3)
            .with_grace(1)
            .build()
    };
    let first = manager("first").await.unwrap();
    let (first_state, first_task) = first.watch().await;
    let mut s = first_state.clone();
    tokio::time::timeout(SLOW, s.wait_for(|leader| *leader))
        .await
        .unwrap()
        .unwrap();
    let second = manager("second").await.unwrap();
    let (second_state, second_task) = second.watch().await;
    let leases = env.api::<Lease>();
    let holder = || async {
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
    };
    assert_eq!(holder().await.as_deref(), Some("first"));
    assert!(!*second_state.borrow(), "only one leader");
    // The first steps down (closing its channel releases the lease): the second takes over.
    drop(s);
    drop(first_state);
    first_task.await.unwrap().unwrap();
    let mut s2 = second_state.clone();
    tokio::time::timeout(SLOW, s2.wait_for(|leader| *leader))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder().await.as_deref(), Some("second"));
    drop(s2);
    drop(second_state);
    second_task.await.unwrap().unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn metadata_watcher_sees_partial_objects() {
    let env = env("rt-metadata").await;
    let api = env.api::<ConfigMap>();
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(env.client(), env.namespace());
    let names = tokio::spawn(async move {
        watcher(meta_api, watcher::Config::default().labels("meta=y"))
            .default_backoff()
            .applied_objects()
            .map_ok(|m| m.metadata.name.unwrap_or_default())
            .try_filter(|n| futures::future::ready(n == "m2"))
            .boxed()
            .next()
            .await
    });
    create_cm(&env, "m1", &[("meta", "y")]).await;
    create_cm(&env, "m2", &[("meta", "y")]).await;
    let got = tokio::time::timeout(SLOW, names).await.unwrap().unwrap();
    assert_eq!(got.unwrap().unwrap(), "m2");
    let meta = api.get_metadata("m1").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["meta"], "y");
    env.cleanup().await.unwrap();
}
