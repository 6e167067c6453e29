//! Create, get, update, status subresource, delete, and their errors.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn create_sets_server_fields_and_get_returns_them() {
    let env = env("crud-create").await;
    let created = create_cm(&env, "a", &[]).await;
    let m = &created.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(m.creation_timestamp.is_some());
    assert!(
        m.resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
    );
    assert_eq!(m.namespace.as_deref(), Some(env.namespace()));
    let got = env.api::<ConfigMap>().get("a").await.unwrap();
    assert_eq!(got.metadata.uid, m.uid);
    assert_eq!(got.metadata.resource_version, m.resource_version);
    assert_eq!(got.data, created.data);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn generate_name_creates_unique_names() {
    let env = env("crud-genname").await;
    let api = env.api::<ConfigMap>();
    let mut cm = cm("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &cm).await.unwrap();
    let b = api.create(&PostParams::default(), &cm).await.unwrap();
    let (na, nb) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(na.starts_with("gen-") && na.len() == 9, "{na}");
    assert_ne!(na, nb);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn create_errors_have_real_reasons() {
    let env = env("crud-errors").await;
    let api = env.api::<ConfigMap>();
    create_cm(&env, "dup", &[]).await;
    assert_api_error(
        api.create(&PostParams::default(), &cm("dup", &[])).await,
        409,
        "AlreadyExists",
    );
    assert_api_error(
        api.create(&PostParams::default(), &cm("Not_Valid", &[]))
            .await,
        422,
        "Invalid",
    );
    let mut no_name = cm("x", &[]);
    no_name.metadata.name = None;
    assert_api_error(
        api.create(&PostParams::default(), &no_name).await,
        422,
        "Invalid",
    );
    assert_api_error(
        api.create(&PostParams::default(), &cm("bad-label", &[("a b", "c")]))
            .await,
        422,
        "Invalid",
    );
    let missing: Api<ConfigMap> = Api::namespaced(env.client(), "no-such-namespace-kube-sim");
    let s = api_error(missing.create(&PostParams::default(), &cm("x", &[])).await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert!(
        s.message
            .contains("namespaces \"no-such-namespace-kube-sim\" not found"),
        "{}",
        s.message
    );
    let s = api_error(api.get("nothing-here").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "configmaps \"nothing-here\" not found");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let env = env("crud-update").await;
    let api = env.api::<ConfigMap>();
    let first = create_cm(&env, "u", &[]).await;
    let mut second = first.clone();
    second.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = api
        .replace("u", &PostParams::default(), &second)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );
    // `first` carries the old resourceVersion now.
    let s = api_error(api.replace("u", &PostParams::default(), &first).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    // Built-ins accept an unconditional update (no resourceVersion).
    let mut unconditional = updated.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data = Some([("k".to_string(), "3".to_string())].into());
    let u = api
        .replace("u", &PostParams::default(), &unconditional)
        .await
        .unwrap();
    assert_eq!(u.data.unwrap()["k"], "3");
    // An update that changes nothing keeps the resourceVersion.
    let same = api
        .replace("u", &PostParams::default(), &api.get("u").await.unwrap())
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, u.metadata.resource_version);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn custom_resources_track_generation_and_need_resource_version() {
    let env = env("crud-generation").await;
    let api = taskruns(&env).await;
    let tr = api
        .create(&PostParams::default(), &taskrun("g", json!({})))
        .await
        .unwrap();
    assert_eq!(tr.metadata.generation, Some(1));
    let mut changed = tr.clone();
    changed.data["spec"]["timeout"] = json!("1h");
    let tr2 = api
        .replace("g", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(tr2.metadata.generation, Some(2));
    let mut labelled = tr2.clone();
    labelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let tr3 = api
        .replace("g", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(
        tr3.metadata.generation,
        Some(2),
        "metadata changes keep the generation"
    );
    let mut unconditional = tr3.clone();
    unconditional.metadata.resource_version = None;
    assert_api_error(
        api.replace("g", &PostParams::default(), &unconditional)
            .await,
        422,
        "Invalid",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn status_subresource_is_separate() {
    let env = env("crud-status").await;
    let api = taskruns(&env).await;
    // Status in a create is dropped.
    let tr = api
        .create(
            &PostParams::default(),
            &taskrun("s", json!({"status": {"podName": "dropped"}})),
        )
        .await
        .unwrap();
    assert!(
        tr.data
            .get("status")
            .is_none_or(|s| s.get("podName").is_none()),
        "{:?}",
        tr.data
    );
    // The status endpoint writes only status.
    let mut st = tr.clone();
    st.data["status"] = json!({"podName": "p1"});
    st.data["spec"]["timeout"] = json!("5m");
    st.metadata.labels = Some([("ignored".to_string(), "yes".to_string())].into());
    let after = api
        .replace_status("s", &PostParams::default(), &st)
        .await
        .unwrap();
    assert_eq!(after.data["status"]["podName"], "p1");
    assert!(after.data["spec"].get("timeout").is_none());
    assert!(
        after
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("ignored"))
    );
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );
    // The main endpoint ignores status.
    let mut main = after.clone();
    main.data["status"] = json!({"podName": "p2"});
    main.data["spec"]["timeout"] = json!("5m");
    let after = api
        .replace("s", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(after.data["status"]["podName"], "p1");
    assert_eq!(after.data["spec"]["timeout"], "5m");
    let got = api.get_status("s").await.unwrap();
    assert_eq!(got.data["status"]["podName"], "p1");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn delete_removes_and_preconditions_guard() {
    let env = env("crud-delete").await;
    let api = env.api::<Secret>();
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}}))
            .unwrap();
    let created = api.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let wrong = DeleteParams::default().preconditions(Preconditions {
        uid: Some("00000000-0000-0000-0000-000000000000".into()),
        resource_version: None,
    });
    assert_api_error(api.delete("s", &wrong).await, 409, "Conflict");
    let dry = api.delete("s", &DeleteParams::default().dry_run()).await;
    assert!(dry.is_ok());
    assert!(
        api.get_opt("s").await.unwrap().is_some(),
        "dry run keeps the object"
    );
    api.delete("s", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("s").await.unwrap().is_none());
    assert_api_error(
        api.delete("s", &DeleteParams::default()).await,
        404,
        "NotFound",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn dry_run_create_keeps_nothing() {
    let env = env("crud-dryrun").await;
    let api = env.api::<ConfigMap>();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let r = api.create(&pp, &cm("dry", &[])).await.unwrap();
    assert_eq!(r.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.unwrap().is_none());
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn default_namespaces_exist() {
    let env = env("crud-default-ns").await;
    let nss: Api<Namespace> = Api::all(env.client());
    for ns in ["default", "kube-system"] {
        let n = nss.get(ns).await.unwrap();
        assert_eq!(n.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    }
    let mine = nss.get(env.namespace()).await.unwrap();
    assert_eq!(
        mine.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        env.namespace()
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn secret_string_data_is_merged_into_data_and_not_stored() {
    use std::collections::BTreeMap;
    let env = env("crud-stringdata").await;
    let api = env.api::<Secret>();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"a": "YWFh", "b": "YmJi"},
        "stringData": {"b": "override", "c": "plain"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    let text = |s: &Secret| -> BTreeMap<String, String> {
        s.data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    };
    let expected = BTreeMap::from([
        ("a".to_owned(), "aaa".to_owned()),
        ("b".to_owned(), "override".to_owned()),
        ("c".to_owned(), "plain".to_owned()),
    ]);
    assert_eq!(text(&created), expected);
    let got = api.get("s").await.unwrap();
    assert_eq!(text(&got), expected);
    assert!(got.string_data.is_none(), "stringData is write-only");
    // Also on update.
    let mut changed = got.clone();
    changed.string_data = Some(BTreeMap::from([("a".to_owned(), "new".to_owned())]));
    let updated = api
        .replace("s", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(text(&updated)["a"], "new");
    assert!(updated.string_data.is_none());
    env.cleanup().await.unwrap();
}
