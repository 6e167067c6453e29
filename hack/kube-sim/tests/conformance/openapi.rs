//! The OpenAPI documents kubectl reads: `/openapi/v3` and its group-version documents, and
//! `/openapi/v2`, describing built-in kinds and CRDs, with the `fieldValidation` parameter
//! that makes kubectl leave validation to the server.

use serde_json::Value;

use crate::common::*;

async fn get_json(client: &kube::Client, path: &str) -> Value {
    let r = raw(client, "GET", path, "application/json", "").await;
    assert_eq!(r.status, 200, "{path}: {r:?}");
    serde_json::from_str(&r.body).unwrap()
}

/// The schema of a kind in a document's definitions, found by its GVK extension.
fn schema_of<'a>(definitions: &'a Value, group: &str, kind: &str) -> &'a Value {
    definitions
        .as_object()
        .unwrap()
        .values()
        .find(|d| {
            d["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|gvks| {
                    gvks.iter()
                        .any(|g| g["group"] == group && g["kind"] == kind && g["version"] == "v1")
                })
        })
        .unwrap_or_else(|| panic!("no schema for {group}/{kind}"))
}

fn patch_has_field_validation(paths: &Value, path: &str) -> bool {
    paths[path]["patch"]["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
}

#[tokio::test]
async fn openapi_v3_describes_built_ins_and_crds() {
    let env = env("openapi-v3").await;
    env.ensure_tekton_crds().await.unwrap();
    let client = env.client();
    let index = get_json(&client, "/openapi/v3").await;
    let url = |gv: &str| {
        index["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{gv} is not in the index"))
            .to_string()
    };
    let tekton = get_json(&client, &url("apis/tekton.dev/v1")).await;
    let taskrun = schema_of(&tekton["components"]["schemas"], "tekton.dev", "TaskRun");
    assert_eq!(taskrun["properties"]["status"]["required"][0], "podName");
    assert!(patch_has_field_validation(
        &tekton["paths"],
        "/apis/tekton.dev/v1/namespaces/{namespace}/taskruns/{name}"
    ));
    let core = get_json(&client, &url("api/v1")).await;
    let cm = schema_of(&core["components"]["schemas"], "", "ConfigMap");
    assert!(cm["properties"]["data"].is_object(), "{cm}");
    assert!(patch_has_field_validation(
        &core["paths"],
        "/api/v1/namespaces/{namespace}/configmaps/{name}"
    ));
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn openapi_v2_describes_built_ins_and_crds() {
    let env = env("openapi-v2").await;
    env.ensure_tekton_crds().await.unwrap();
    let doc = get_json(&env.client(), "/openapi/v2").await;
    assert_eq!(doc["swagger"], "2.0");
    schema_of(&doc["definitions"], "tekton.dev", "TaskRun");
    let deploy = schema_of(&doc["definitions"], "apps", "Deployment");
    assert!(deploy["properties"]["spec"].is_object(), "{deploy}");
    assert!(patch_has_field_validation(
        &doc["paths"],
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    ));
    env.cleanup().await.unwrap();
}
