//! Finalizers, garbage collection through ownerReferences, deletecollection, namespaces.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_sim::wait_until;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_removed() {
    let env = env("gc-finalizers").await;
    let api = env.api::<ConfigMap>();
    let mut c = cm("f", &[]);
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // No new finalizers on a deleting object.
    let add =
        Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}));
    assert_api_error(
        api.patch("f", &PatchParams::default(), &add).await,
        422,
        "Invalid",
    );
    // Deleting again changes nothing.
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let drop = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("f", &PatchParams::default(), &drop)
        .await
        .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
    env.cleanup().await.unwrap();
}

fn secret_owned_by(name: &str, owner: &ConfigMap, block: bool) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": owner.metadata.name, "uid": owner.metadata.uid,
            "blockOwnerDeletion": block
        }]},
        "stringData": {"a": "b"}
    }))
    .unwrap()
}

#[tokio::test]
async fn background_gc_deletes_dependents_of_a_deleted_owner() {
    let env = env("gc-background").await;
    let owner = create_cm(&env, "owner", &[]).await;
    let other = create_cm(&env, "other-owner", &[]).await;
    let secrets = env.api::<Secret>();
    secrets
        .create(
            &PostParams::default(),
            &secret_owned_by("dep", &owner, false),
        )
        .await
        .unwrap();
    let mut two = secret_owned_by("two-owners", &owner, false);
    let mut refs = two.metadata.owner_references.take().unwrap();
    refs.extend(
        secret_owned_by("x", &other, false)
            .metadata
            .owner_references
            .unwrap(),
    );
    two.metadata.owner_references = Some(refs);
    secrets.create(&PostParams::default(), &two).await.unwrap();
    env.api::<ConfigMap>()
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_until(SLOW, "the dependent is collected", || async {
        secrets.get_opt("dep").await.unwrap().is_none()
    })
    .await
    .unwrap();
    // A dependent with a living owner stays and loses only the dangling reference.
    wait_until(SLOW, "the dangling owner reference is dropped", || async {
        let s = secrets.get("two-owners").await.unwrap();
        s.metadata.owner_references.unwrap_or_default().len() == 1
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_first() {
    let env = env("gc-foreground").await;
    let owner = create_cm(&env, "fg", &[]).await;
    let secrets = env.api::<Secret>();
    let mut dep = secret_owned_by("fg-dep", &owner, true);
    dep.metadata.finalizers = Some(vec!["example.com/slow".into()]);
    secrets.create(&PostParams::default(), &dep).await.unwrap();
    let cms = env.api::<ConfigMap>();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    // The dependent is being deleted, and holds its owner.
    wait_until(SLOW, "the dependent is marked for deletion", || async {
        secrets
            .get("fg-dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await
    .unwrap();
    let o = cms.get("fg").await.unwrap();
    assert!(
        o.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    secrets
        .patch(
            "fg-dep",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_until(SLOW, "the owner is gone after its dependent", || async {
        cms.get_opt("fg").await.unwrap().is_none()
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents() {
    let env = env("gc-orphan").await;
    let owner = create_cm(&env, "orph", &[]).await;
    let secrets = env.api::<Secret>();
    secrets
        .create(
            &PostParams::default(),
            &secret_owned_by("kept", &owner, false),
        )
        .await
        .unwrap();
    env.api::<ConfigMap>()
        .delete("orph", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_until(SLOW, "the owner is gone", || async {
        env.api::<ConfigMap>()
            .get_opt("orph")
            .await
            .unwrap()
            .is_none()
    })
    .await
    .unwrap();
    wait_until(SLOW, "the dependent lost its owner reference", || async {
        secrets
            .get("kept")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn delete_collection_with_a_label_selector() {
    let env = env("gc-collection").await;
    for i in 0..4 {
        create_cm(
            &env,
            &format!("dc{i}"),
            &[("batch", if i < 3 { "x" } else { "y" })],
        )
        .await;
    }
    let api = env.api::<ConfigMap>();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=x"),
    )
    .await
    .unwrap();
    let left = api
        .list(&ListParams::default().labels("batch"))
        .await
        .unwrap();
    let names: Vec<_> = left
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["dc3"]);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn deleting_a_namespace_terminates_it_and_its_content() {
    let env = env("gc-namespace").await;
    let nss: Api<Namespace> = Api::all(env.client());
    let name = format!("{}-sub", env.namespace());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client(), &name);
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.create(&PostParams::default(), &cm("free", &[]))
        .await
        .unwrap();
    nss.delete(&name, &DeleteParams::default()).await.unwrap();
    let terminating = nss.get(&name).await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    // Nothing new in a terminating namespace.
    wait_until(
        SLOW,
        "creating in a terminating namespace is forbidden",
        || async {
            matches!(cms.create(&PostParams::default(), &cm("new", &[])).await,
                 Err(kube::Error::Api(s)) if s.code == 403 && s.reason == "Forbidden")
        },
    )
    .await
    .unwrap();
    wait_until(SLOW, "content without finalizers is gone", || async {
        cms.get_opt("free").await.unwrap().is_none()
    })
    .await
    .unwrap();
    assert!(
        nss.get_opt(&name).await.unwrap().is_some(),
        "the held object keeps the namespace"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_until(SLOW, "the namespace is gone", || async {
        nss.get_opt(&name).await.unwrap().is_none()
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}
