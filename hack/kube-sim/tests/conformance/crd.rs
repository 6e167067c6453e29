//! CustomResourceDefinitions: serving, discovery, status subresource, deletion.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::discovery::{Discovery, Scope};
use kube_sim::{wait_for, wait_until};
use serde_json::json;

use crate::common::*;

fn widget_crd(group: &str, status: bool) -> CustomResourceDefinition {
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    });
    if status {
        version["subresources"] = json!({"status": {}});
    }
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [version]
        }
    }))
    .unwrap()
}

fn widgets(env: &kube_sim::TestEnv, group: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(env.client(), env.namespace(), &ar)
}

fn widget(name: &str, group: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": 1}, "status": {"ok": true}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_crd_serves_its_resource_until_it_is_deleted() {
    let env = env("crd-lifecycle").await;
    // A group of its own, so tests on a shared real cluster do not collide.
    let group = format!("{}.kube-sim.test", env.namespace());
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    crds.create(&PostParams::default(), &widget_crd(&group, true))
        .await
        .unwrap();
    let api = widgets(&env, &group);
    wait_until(SLOW, "widgets are served", || async {
        api.list(&Default::default()).await.is_ok()
    })
    .await
    .unwrap();
    let crd = wait_for(SLOW, "the CRD is established", || async {
        let c = crds.get(&format!("widgets.{group}")).await.ok()?;
        let established = c
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(c)
    })
    .await
    .unwrap();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some(format!("widgets.{group}").as_str())
    );

    let discovery = Discovery::new(env.client())
        .filter(&[&group])
        .run()
        .await
        .unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.plural == "widgets")
        .expect("discovery lists widgets");
    assert_eq!(ar.kind, "Widget");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"),
        "{:?}",
        caps.subresources
    );

    let w = api
        .create(&PostParams::default(), &widget("w1", &group))
        .await
        .unwrap();
    assert!(
        w.data.get("status").is_none(),
        "status subresource: create drops status"
    );

    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
    wait_until(SLOW, "the CRD and its objects are gone", || async {
        crds.get_opt(&format!("widgets.{group}"))
            .await
            .unwrap()
            .is_none()
    })
    .await
    .unwrap();
    wait_until(SLOW, "widgets are no longer served", || async {
        matches!(api.list(&Default::default()).await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn without_status_subresource_status_is_plain_data() {
    let env = env("crd-nostatus").await;
    let group = format!("{}.kube-sim.test", env.namespace());
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    crds.create(&PostParams::default(), &widget_crd(&group, false))
        .await
        .unwrap();
    let api = widgets(&env, &group);
    wait_until(SLOW, "widgets are served", || async {
        api.list(&Default::default()).await.is_ok()
    })
    .await
    .unwrap();
    let w = api
        .create(&PostParams::default(), &widget("w2", &group))
        .await
        .unwrap();
    assert_eq!(w.data["status"]["ok"], true);
    assert!(
        api.get_status("w2").await.is_err(),
        "no /status without the subresource"
    );
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn invalid_crds_are_refused() {
    let env = env("crd-invalid").await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let mut bad = widget_crd("nodot", true);
    bad.metadata.name = Some("wrong-name.example.com".into());
    assert_api_error(
        crds.create(&PostParams::default(), &bad).await,
        422,
        "Invalid",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_tekton_crds_install_once_and_serve_taskruns() {
    let env = env("crd-taskrun").await;
    env.ensure_tekton_crds().await.unwrap();
    env.ensure_tekton_crds().await.unwrap();
    let api = taskruns(&env).await;
    let tr = api
        .create(
            &PostParams::default(),
            &taskrun("tr1", json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(tr.types.unwrap().kind, "TaskRun");
    let listed = api.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    env.cleanup().await.unwrap();
}
