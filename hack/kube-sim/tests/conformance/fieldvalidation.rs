//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`) for built-in kinds and
//! custom resources: Strict refuses unknown and duplicate fields with 400, Warn (the
//! default) writes and warns in `Warning` headers, Ignore drops them silently.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject};

use crate::common::*;

fn configmaps(env: &kube_sim::TestEnv) -> String {
    format!("/api/v1/namespaces/{}/configmaps", env.namespace())
}

#[tokio::test]
async fn strict_refuses_unknown_and_duplicate_fields_of_built_ins() {
    let env = env("fv-builtin-strict").await;
    let client = env.client();
    let body = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "app": "x"},
                   "extra": 1, "data": {"a": "1", "a": "2"}}"#;
    let r = raw(
        &client,
        "POST",
        &format!("{}?fieldValidation=Strict", configmaps(&env)),
        "application/json",
        body,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let status: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(status["reason"], "BadRequest");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error:"
        ),
        "{message}"
    );
    for part in [
        r#"unknown field "extra""#,
        r#"unknown field "metadata.app""#,
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    assert!(
        message.contains("duplicate field") && message.contains("a\""),
        "{message}"
    );
    assert!(env.api::<ConfigMap>().get_opt("s").await.unwrap().is_none());
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn warn_is_the_default_and_ignore_is_silent() {
    let env = env("fv-builtin-warn").await;
    let client = env.client();
    let body = |name: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{name}"}}, "extra": 1}}"#
        )
    };
    for (query, name) in [("?fieldValidation=Warn", "w"), ("", "d")] {
        let r = raw(
            &client,
            "POST",
            &format!("{}{query}", configmaps(&env)),
            "application/json",
            &body(name),
        )
        .await;
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(
            r.header_values("warning"),
            [r#"299 - "unknown field \"extra\"""#],
            "{query}"
        );
        let stored: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(
            stored.get("extra").is_none(),
            "unknown fields are never stored"
        );
    }
    let r = raw(
        &client,
        "POST",
        &format!("{}?fieldValidation=Ignore", configmaps(&env)),
        "application/json",
        &body("i"),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header_values("warning").is_empty(), "{r:?}");
    // A patch that adds an unknown field: Strict refuses it.
    let r = raw(
        &client,
        "PATCH",
        &format!("{}/i?fieldValidation=Strict", configmaps(&env)),
        "application/merge-patch+json",
        r#"{"spec": {"replicas": 1}}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains(r#"strict decoding error: unknown field \"spec\""#),
        "{}",
        r.body
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn custom_resources_are_checked_against_their_schema() {
    let env = env("fv-crd").await;
    let trs: Api<DynamicObject> = taskruns(&env).await;
    let path = format!(
        "/apis/tekton.dev/v1/namespaces/{}/taskruns",
        env.namespace()
    );
    let body = r#"{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": "fv"},
                   "spec": {"params": [{"name": "PLATFORM", "value": "linux/arm64", "typo": true}],
                            "serviceAccountNme": "x"}}"#;
    let client = env.client();
    let r = raw(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains(
            r#"TaskRun in version \"v1\" cannot be handled as a TaskRun: strict decoding error: "#
        ),
        "{}",
        r.body
    );
    for f in [
        r#"unknown field \"spec.params[0].typo\""#,
        r#"unknown field \"spec.serviceAccountNme\""#,
    ] {
        assert!(r.body.contains(f), "{f} in {}", r.body);
    }
    let r = raw(&client, "POST", &path, "application/json", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header_values("warning").len(), 2, "{r:?}");
    let stored = trs.get("fv").await.unwrap();
    assert!(stored.data["spec"].get("serviceAccountNme").is_none());
    assert!(stored.data["spec"]["params"][0].get("typo").is_none());
    env.cleanup().await.unwrap();
}
