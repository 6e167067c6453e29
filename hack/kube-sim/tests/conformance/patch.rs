//! PATCH: JSON merge, JSON patch (with `test`), strategic merge, server-side apply.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn merge_patch_merges_and_null_deletes() {
    let env = env("patch-merge").await;
    create_cm(&env, "m", &[("a", "1"), ("b", "2")]).await;
    let api = env.api::<ConfigMap>();
    let p =
        Patch::Merge(json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"n": "x"}}));
    let r = api.patch("m", &PatchParams::default(), &p).await.unwrap();
    let labels = r.metadata.labels.unwrap();
    assert!(!labels.contains_key("a"));
    assert_eq!((labels["b"].as_str(), labels["c"].as_str()), ("2", "3"));
    assert_eq!(r.data.unwrap().len(), 2);
    // A resourceVersion in a patch is a precondition.
    let stale = Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"d": "4"}}}));
    assert_api_error(
        api.patch("m", &PatchParams::default(), &stale).await,
        409,
        "Conflict",
    );
    assert_api_error(
        api.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
        404,
        "NotFound",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn json_patch_with_test_operations() {
    let env = env("patch-json").await;
    create_cm(&env, "j", &[]).await;
    let api = env.api::<ConfigMap>();
    let ops = |v: serde_json::Value| Patch::<()>::Json(serde_json::from_value(v).unwrap());
    // `test` of a missing path against null passes (what kube's finalizer helper relies on).
    let add = ops(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]}
    ]));
    let r = api.patch("j", &PatchParams::default(), &add).await.unwrap();
    assert_eq!(r.metadata.finalizers.unwrap(), ["example.com/f"]);
    let failing = ops(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "someone-else"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]));
    assert_api_error(
        api.patch("j", &PatchParams::default(), &failing).await,
        422,
        "Invalid",
    );
    let remove = ops(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/f"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]));
    let r = api
        .patch("j", &PatchParams::default(), &remove)
        .await
        .unwrap();
    assert!(r.metadata.finalizers.unwrap_or_default().is_empty());
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn strategic_merge_on_builtins_but_not_on_custom_resources() {
    let env = env("patch-strategic").await;
    create_cm(&env, "s", &[("a", "1")]).await;
    let api = env.api::<ConfigMap>();
    let p = Patch::Strategic(json!({"metadata": {"labels": {"b": "2"}}}));
    let r = api.patch("s", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(r.metadata.labels.unwrap().len(), 2);
    let trs = taskruns(&env).await;
    trs.create(&Default::default(), &taskrun("t", json!({})))
        .await
        .unwrap();
    assert_api_error(
        trs.patch(
            "t",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await,
        415,
        "UnsupportedMediaType",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn strategic_merge_orders_lists_like_the_api_server() {
    let env = env("patch-smp-order").await;
    let api = env.api::<ConfigMap>();
    let mut cm = cm("order", &[]);
    cm.metadata.finalizers = Some(vec!["example.com/a".into(), "example.com/b".into()]);
    api.create(&Default::default(), &cm).await.unwrap();
    let finalizers = |c: ConfigMap| c.metadata.finalizers.unwrap_or_default();
    // A union puts the patch's new item first.
    let r = api
        .patch(
            "order",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"finalizers": ["example.com/c"]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        finalizers(r),
        ["example.com/c", "example.com/a", "example.com/b"]
    );
    // `$setElementOrder` reorders, `$deleteFromPrimitiveList` removes.
    let r = api
        .patch(
            "order",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {
                "$setElementOrder/finalizers": ["example.com/b", "example.com/a"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/c"]
            }})),
        )
        .await
        .unwrap();
    assert_eq!(finalizers(r), ["example.com/b", "example.com/a"]);
    // A patch item that is not in `$setElementOrder` fails; the API server reports this
    // Go error as a 500 without a reason.
    let s = api_error(
        api.patch(
            "order",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {
                "$setElementOrder/finalizers": ["example.com/b"],
                "finalizers": ["example.com/d"]
            }})),
        )
        .await,
    );
    assert_eq!(s.code, 500, "{s:?}");
    assert!(
        s.message.contains("doesn't match $setElementOrder"),
        "{s:?}"
    );
    api.patch(
        "order",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn status_patch_touches_only_status() {
    let env = env("patch-status").await;
    let trs = taskruns(&env).await;
    trs.create(&Default::default(), &taskrun("st", json!({})))
        .await
        .unwrap();
    let p = Patch::Merge(json!({"status": {"podName": "p"}, "metadata": {"labels": {"x": "y"}}}));
    let r = trs
        .patch_status("st", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(r.data["status"]["podName"], "p");
    assert!(r.metadata.labels.is_none_or(|l| !l.contains_key("x")));
    let main =
        Patch::Merge(json!({"status": {"podName": "q"}, "metadata": {"labels": {"x": "y"}}}));
    let r = trs
        .patch("st", &PatchParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(r.data["status"]["podName"], "p");
    assert_eq!(r.metadata.labels.unwrap()["x"], "y");
    env.cleanup().await.unwrap();
}

fn lease(holder: &str) -> serde_json::Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "ssa"}, "spec": {"holderIdentity": holder}})
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_detects_conflicts() {
    let env = env("patch-apply").await;
    let api = env.api::<Lease>();
    let created = api
        .patch(
            "ssa",
            &PatchParams::apply("mgr-a"),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().holder_identity.as_deref(), Some("a"));
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"mgr-a".to_string()), "{managers:?}");
    // Another manager changing an owned field conflicts...
    let s = api_error(
        api.patch(
            "ssa",
            &PatchParams::apply("mgr-b"),
            &Patch::Apply(lease("b")),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(s.message.contains("mgr-a"), "{}", s.message);
    // ...unless forced.
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("mgr-b").force(),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // A manager that stops applying a field it owns removes it.
    let mut with_duration = lease("b");
    with_duration["spec"]["leaseDurationSeconds"] = json!(15);
    api.patch(
        "ssa",
        &PatchParams::apply("mgr-b"),
        &Patch::Apply(with_duration),
    )
    .await
    .unwrap();
    let r = api
        .patch(
            "ssa",
            &PatchParams::apply("mgr-b"),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap();
    assert_eq!(r.spec.unwrap().lease_duration_seconds, None);
    // An apply without a field manager is refused.
    let no_manager = PatchParams::default();
    assert!(
        api.patch("ssa", &no_manager, &Patch::Apply(lease("c")))
            .await
            .is_err()
    );
    env.cleanup().await.unwrap();
}
