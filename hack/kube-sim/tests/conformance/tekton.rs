//! TaskRuns under the upstream Tekton CRDs' v1 schema, as a cluster with Tekton serves them:
//! a status needs `podName`, wrong types and missing required fields are 422 Invalid with
//! the field paths, unknown fields are pruned, defaults are filled in.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_taskrun_status_without_pod_name_is_invalid() {
    let env = env("tekton-podname").await;
    let trs = taskruns(&env).await;
    trs.create(&PostParams::default(), &taskrun("no-pod", json!({})))
        .await
        .unwrap();
    let without = Patch::Merge(json!({"status": {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}]
    }}));
    let s = api_error(
        trs.patch_status("no-pod", &PatchParams::default(), &without)
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert_eq!(
        s.message,
        "TaskRun.tekton.dev \"no-pod\" is invalid: status.podName: Required value"
    );
    let cause = &s.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldValueRequired", "status.podName")
    );
    // What Tekton writes: podName is always there (empty before a pod exists).
    let with = Patch::Merge(json!({"status": {
        "podName": "",
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}]
    }}));
    let r = trs
        .patch_status("no-pod", &PatchParams::default(), &with)
        .await
        .unwrap();
    assert_eq!(r.data["status"]["podName"], "");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn wrong_types_and_missing_required_fields_are_invalid() {
    let env = env("tekton-types").await;
    let trs = taskruns(&env).await;
    let bad = taskrun(
        "bad",
        json!({"spec": {"retries": "three", "params": [{"name": "ONLY-NAME"}]}}),
    );
    let s = api_error(trs.create(&PostParams::default(), &bad).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    for part in [
        "spec.params[0].value: Required value",
        r#"spec.retries: Invalid value: "string": spec.retries in body must be of type integer: "string""#,
    ] {
        assert!(s.message.contains(part), "{part} in {}", s.message);
    }
    trs.create(&PostParams::default(), &taskrun("good", json!({})))
        .await
        .unwrap();
    let s = api_error(
        trs.patch_status(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podName": "p", "completionTime": "soon"}})),
        )
        .await,
    );
    assert!(
        s.message.contains(
            r#"status.completionTime: Invalid value: "soon": status.completionTime in body must be of type date-time: "soon""#
        ),
        "{}",
        s.message
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn unknown_fields_are_pruned_and_defaults_filled_in() {
    let env = env("tekton-prune").await;
    let trs = taskruns(&env).await;
    let tr = taskrun(
        "pruned",
        json!({
            "spec": {
                "notATaskRunField": 1,
                "workspaces": [{"name": "config", "configMap": {}}],
                // spec.taskSpec keeps unknown fields (x-kubernetes-preserve-unknown-fields).
                "taskRef": null,
                "taskSpec": {"steps": [{"name": "s", "image": "i", "anything": {"goes": true}}]}
            },
            "extraTopLevel": "x"
        }),
    );
    let created = trs.create(&PostParams::default(), &tr).await.unwrap();
    assert!(created.data["spec"].get("notATaskRunField").is_none());
    assert!(created.data.get("extraTopLevel").is_none());
    assert_eq!(
        created.data["spec"]["workspaces"][0]["configMap"]["name"],
        ""
    );
    assert_eq!(
        created.data["spec"]["taskSpec"]["steps"][0]["anything"]["goes"],
        true
    );
    // Status is pruned the same way.
    let r = trs
        .patch_status(
            "pruned",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podName": "p", "madeUp": 1,
                "taskSpec": {"steps": [{"name": "s", "image": "i", "bogus": 1}],
                             "volumes": [{"name": "v", "anything": {}}]}}})),
        )
        .await
        .unwrap();
    assert!(r.data["status"].get("madeUp").is_none());
    assert!(
        r.data["status"]["taskSpec"]["steps"][0]
            .get("bogus")
            .is_none()
    );
    assert!(r.data["status"]["taskSpec"]["volumes"][0]["anything"].is_object());
    env.cleanup().await.unwrap();
}
