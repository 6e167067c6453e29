//! The patches the controller sends to TaskRuns, built as plain data.
//!
//! Tekton and other controllers write the same TaskRuns concurrently, so we never PUT a
//! TaskRun. Labels and annotations go in JSON merge patches, which touch only the keys
//! they name. Finalizers are a list, where a merge patch would replace everyone else's
//! entries, so they go in JSON patches whose `test` operation makes the API server refuse
//! the change if the list moved under us (the caller then re-reads and retries).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use serde_json::{Map, Value, json};

use crate::cloud::InstanceId;
use crate::naming::{
    ALLOCATION_START_TIME_ANNOTATION, ASSIGNED_HOST_LABEL, CLOUD_ADDRESS_ANNOTATION,
    CLOUD_DYNAMIC_PLATFORM_LABEL, CLOUD_INSTANCE_ID_ANNOTATION, CLOUD_LAUNCH_ATTEMPT_ANNOTATION,
    FAILED_HOSTS_ANNOTATION, FINALIZER, TARGET_PLATFORM_LABEL, WAITING_FOR_PLATFORM_LABEL,
};
use crate::platform::Platform;
use crate::time::Timestamp;

/// A JSON patch that adds our finalizer to `current` (the list as read; `None` when the
/// object has none), or `None` when it is already there.
pub fn add_finalizer(current: Option<&[String]>) -> Option<Patch> {
    let listed = current.unwrap_or_default();
    if listed.iter().any(|f| f == FINALIZER) {
        return None;
    }
    let ops = if listed.is_empty() {
        // The list as it was read: absent (what the API server returns for "no
        // finalizers", `test` against null passes), or an explicit empty list.
        let seen = if current.is_some() {
            json!([])
        } else {
            Value::Null
        };
        vec![
            test("/metadata/finalizers", seen),
            add("/metadata/finalizers", json!([FINALIZER])),
        ]
    } else {
        vec![
            test("/metadata/finalizers", json!(listed)),
            add("/metadata/finalizers/-", json!(FINALIZER)),
        ]
    };
    Some(Patch(ops))
}

/// A JSON patch that removes our finalizer from `current` (the list as read), or `None`
/// when it is absent.
pub fn remove_finalizer(current: Option<&[String]>) -> Option<Patch> {
    let index = current?.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(Patch(vec![
        // Fails instead of removing someone else's finalizer if the list shifted.
        test(&path, json!(FINALIZER)),
        PatchOperation::Remove(RemoveOperation {
            path: pointer(&path),
        }),
    ]))
}

/// The annotations an allocation and a wait both record: the allocation start time and
/// the failed hosts so far.
fn queue_annotations(
    failed: &[String],
    allocation_started: Option<Timestamp>,
    now: Timestamp,
) -> Map<String, Value> {
    let mut annotations = Map::new();
    // Always written: the core fills in the start it decided (or read back from this
    // annotation), so a recorded start is written again unchanged, never replaced.
    annotations.insert(
        ALLOCATION_START_TIME_ANNOTATION.into(),
        json!(allocation_started.unwrap_or(now).as_second().to_string()),
    );
    if !failed.is_empty() {
        annotations.insert(FAILED_HOSTS_ANNOTATION.into(), json!(failed.join(",")));
    }
    annotations
}

/// Merge patch recording an allocation: the `assigned-host` and `target-platform`
/// labels, no waiting label, the failed hosts so far, and the allocation start time
/// (the recorded one, else now).
pub fn mark_allocated(
    host: &str,
    platform: &Platform,
    failed: &[String],
    allocation_started: Option<Timestamp>,
    now: Timestamp,
) -> Value {
    let annotations = queue_annotations(failed, allocation_started, now);
    json!({"metadata": {
        "labels": {
            ASSIGNED_HOST_LABEL: host,
            TARGET_PLATFORM_LABEL: platform.label_value(),
            WAITING_FOR_PLATFORM_LABEL: null,
        },
        "annotations": annotations,
    }})
}

/// Merge patch putting a TaskRun in the queue: the waiting and target-platform labels,
/// no allocation (a failed host's label goes), the failed hosts so far, and the
/// allocation start time (the recorded one, else now: waiting time counts).
pub fn mark_waiting(
    platform: &Platform,
    failed: &[String],
    allocation_started: Option<Timestamp>,
    now: Timestamp,
) -> Value {
    let annotations = queue_annotations(failed, allocation_started, now);
    json!({"metadata": {
        "labels": {
            WAITING_FOR_PLATFORM_LABEL: platform.label_value(),
            TARGET_PLATFORM_LABEL: platform.label_value(),
            ASSIGNED_HOST_LABEL: null,
        },
        "annotations": annotations,
    }})
}

/// Merge patch for a TaskRun that gets an error Secret: no allocation or queue labels,
/// and the failed hosts so far (so the record shows what was tried).
pub fn mark_failed(failed: &[String]) -> Value {
    let mut annotations = Map::new();
    if !failed.is_empty() {
        annotations.insert(FAILED_HOSTS_ANNOTATION.into(), json!(failed.join(",")));
    }
    json!({"metadata": {
        "labels": {
            ASSIGNED_HOST_LABEL: null,
            WAITING_FOR_PLATFORM_LABEL: null,
        },
        "annotations": annotations,
    }})
}

/// Merge patch recording that `host` failed provisioning and freeing the allocation,
/// so the TaskRun can be allocated elsewhere. `failed` is the annotation's current list.
pub fn mark_host_failed(failed: &[String], host: &str) -> Value {
    let mut hosts: Vec<&str> = failed.iter().map(String::as_str).collect();
    if !hosts.contains(&host) {
        hosts.push(host);
    }
    json!({"metadata": {
        "labels": {ASSIGNED_HOST_LABEL: null},
        "annotations": {FAILED_HOSTS_ANNOTATION: hosts.join(",")},
    }})
}

/// Merge patch recording a VM slot before its instance is launched: the
/// `cloud-dynamic-platform` and `target-platform` labels, no waiting label, the launch
/// attempt (so a launch repeated after a crash sends the same client token) and the
/// allocation start.
pub fn mark_launching(
    platform: &Platform,
    attempt: u32,
    allocation_started: Option<Timestamp>,
    now: Timestamp,
) -> Value {
    let mut annotations = queue_annotations(&[], allocation_started, now);
    annotations.insert(
        CLOUD_LAUNCH_ATTEMPT_ANNOTATION.into(),
        json!(attempt.to_string()),
    );
    json!({"metadata": {
        "labels": {
            CLOUD_DYNAMIC_PLATFORM_LABEL: platform.label_value(),
            TARGET_PLATFORM_LABEL: platform.label_value(),
            WAITING_FOR_PLATFORM_LABEL: null,
        },
        "annotations": annotations,
    }})
}

/// Merge patch recording the launched instance: `assigned-host` = its id (the Go
/// controller's record) and the `cloud-instance-id` annotation.
pub fn mark_launched(instance: &InstanceId) -> Value {
    json!({"metadata": {
        "labels": {ASSIGNED_HOST_LABEL: instance.as_str()},
        "annotations": {CLOUD_INSTANCE_ID_ANNOTATION: instance.as_str()},
    }})
}

/// Merge patch recording the address the build logs in to.
pub fn mark_cloud_address(address: &str) -> Value {
    json!({"metadata": {"annotations": {CLOUD_ADDRESS_ANNOTATION: address}}})
}

/// Merge patch removing every cloud mark once the VM is terminated.
pub fn clear_cloud() -> Value {
    json!({"metadata": {
        "labels": {
            ASSIGNED_HOST_LABEL: null,
            WAITING_FOR_PLATFORM_LABEL: null,
            CLOUD_DYNAMIC_PLATFORM_LABEL: null,
        },
        "annotations": {
            CLOUD_INSTANCE_ID_ANNOTATION: null,
            CLOUD_ADDRESS_ANNOTATION: null,
        },
    }})
}

/// Merge patch removing the allocation and queue labels once a TaskRun is released.
/// `target-platform` and the annotations stay as a record of what happened.
pub fn clear_allocation() -> Value {
    json!({"metadata": {"labels": {
        ASSIGNED_HOST_LABEL: null,
        WAITING_FOR_PLATFORM_LABEL: null,
    }}})
}

fn test(path: &str, value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(path),
        value,
    })
}

fn add(path: &str, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(path),
        value,
    })
}

/// Our paths are fixed literals and indices, always valid pointers.
fn pointer(path: &str) -> PointerBuf {
    PointerBuf::parse(path).unwrap_or_else(|_| PointerBuf::root())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_unix_seconds as secs;

    fn apply(mut doc: Value, patch: &Patch) -> Result<Value, json_patch::PatchError> {
        json_patch::patch(&mut doc, patch)?;
        Ok(doc)
    }

    fn platform() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn add_finalizer_to_an_object_without_finalizers() {
        let patch = add_finalizer(None).unwrap();
        // The API server (evanphx/json-patch) lets `test` against null pass for an
        // absent field; the json_patch crate only for an explicit null, so test that.
        let out = apply(
            json!({"metadata": {"name": "x", "finalizers": null}}),
            &patch,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([FINALIZER]));
        let someone_added = json!({"metadata": {"finalizers": ["other"]}});
        assert!(apply(someone_added, &patch).is_err());
        // A list read back empty (the last finalizer was removed) is tested as such.
        let patch = add_finalizer(Some(&[])).unwrap();
        let out = apply(json!({"metadata": {"finalizers": []}}), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([FINALIZER]));
    }

    #[test]
    fn add_finalizer_keeps_other_finalizers_and_refuses_a_moved_list() {
        let current = vec!["chains.tekton.dev".to_owned()];
        let patch = add_finalizer(Some(&current)).unwrap();
        let doc = json!({"metadata": {"finalizers": ["chains.tekton.dev"]}});
        let out = apply(doc, &patch).unwrap();
        assert_eq!(
            out["metadata"]["finalizers"],
            json!(["chains.tekton.dev", FINALIZER])
        );
        let moved = json!({"metadata": {"finalizers": ["chains.tekton.dev", "other"]}});
        assert!(apply(moved, &patch).is_err(), "stale list must be refused");
    }

    #[test]
    fn add_finalizer_is_a_no_op_when_present() {
        assert!(add_finalizer(Some(&[FINALIZER.to_owned()])).is_none());
    }

    #[test]
    fn remove_finalizer_removes_only_ours_and_refuses_a_shifted_list() {
        let current = vec!["a".to_owned(), FINALIZER.to_owned(), "b".to_owned()];
        let patch = remove_finalizer(Some(&current)).unwrap();
        let out = apply(json!({"metadata": {"finalizers": current}}), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let shifted = json!({"metadata": {"finalizers": [FINALIZER, "a", "b"]}});
        assert!(apply(shifted, &patch).is_err());
        assert!(remove_finalizer(Some(&["a".to_owned()])).is_none());
        assert!(remove_finalizer(None).is_none());
    }

    #[test]
    fn mark_allocated_sets_labels_and_clears_waiting() {
        let patch = mark_allocated("host-1", &platform(), &[], None, secs(1_763_892_000));
        let mut doc = json!({"metadata": {"labels": {
            WAITING_FOR_PLATFORM_LABEL: "linux-arm64", "tekton.dev/task": "t"}}});
        json_patch::merge(&mut doc, &patch);
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels[ASSIGNED_HOST_LABEL], "host-1");
        assert_eq!(labels[TARGET_PLATFORM_LABEL], "linux-arm64");
        assert_eq!(labels["tekton.dev/task"], "t", "foreign labels untouched");
        assert!(labels.get(WAITING_FOR_PLATFORM_LABEL).is_none());
        assert_eq!(
            doc["metadata"]["annotations"][ALLOCATION_START_TIME_ANNOTATION],
            "1763892000"
        );
    }

    #[test]
    fn the_recorded_allocation_start_is_written_unchanged() {
        // The core always knows a start (it sets one when it first places a TaskRun),
        // so the annotation must be written from it, not only when it is unknown.
        let recorded = json!({ALLOCATION_START_TIME_ANNOTATION: "5"});
        let patch = mark_allocated("h", &platform(), &[], Some(secs(5)), secs(99));
        assert_eq!(patch["metadata"]["annotations"], recorded);
        let patch = mark_waiting(&platform(), &[], Some(secs(5)), secs(99));
        assert_eq!(patch["metadata"]["annotations"], recorded);
        let patch = mark_waiting(&platform(), &[], None, secs(99));
        assert_eq!(
            patch["metadata"]["annotations"][ALLOCATION_START_TIME_ANNOTATION],
            "99"
        );
    }

    #[test]
    fn waiting_and_failing_drop_a_stale_allocation_and_record_failed_hosts() {
        let failed = vec!["a1".to_owned(), "a2".to_owned()];
        for patch in [
            mark_waiting(&platform(), &failed, Some(secs(5)), secs(99)),
            mark_failed(&failed),
            mark_allocated("a3", &platform(), &failed, Some(secs(5)), secs(99)),
        ] {
            let mut doc = json!({"metadata": {"labels": {ASSIGNED_HOST_LABEL: "a2"}}});
            json_patch::merge(&mut doc, &patch);
            assert_eq!(
                doc["metadata"]["annotations"][FAILED_HOSTS_ANNOTATION],
                "a1,a2"
            );
            assert_ne!(doc["metadata"]["labels"][ASSIGNED_HOST_LABEL], "a2");
        }
        assert!(mark_failed(&failed)["metadata"]["labels"][WAITING_FOR_PLATFORM_LABEL].is_null());
    }

    #[test]
    fn mark_host_failed_appends_once_and_frees_the_allocation() {
        let patch = mark_host_failed(&["a".to_owned()], "b");
        assert_eq!(
            patch["metadata"]["annotations"][FAILED_HOSTS_ANNOTATION],
            "a,b"
        );
        assert!(patch["metadata"]["labels"][ASSIGNED_HOST_LABEL].is_null());
        let again = mark_host_failed(&["a".to_owned(), "b".to_owned()], "b");
        assert_eq!(
            again["metadata"]["annotations"][FAILED_HOSTS_ANNOTATION],
            "a,b"
        );
    }

    #[test]
    fn clear_allocation_removes_only_allocation_labels() {
        let mut doc = json!({"metadata": {"labels": {
            ASSIGNED_HOST_LABEL: "h", TARGET_PLATFORM_LABEL: "linux-arm64", "x": "y"}}});
        json_patch::merge(&mut doc, &clear_allocation());
        assert_eq!(
            doc["metadata"]["labels"],
            json!({TARGET_PLATFORM_LABEL: "linux-arm64", "x": "y"})
        );
    }

    #[test]
    fn cloud_marks_record_the_slot_then_the_instance_and_go_away() {
        let patch = mark_launching(&platform(), 2, None, secs(99));
        assert_eq!(
            patch["metadata"]["labels"][CLOUD_DYNAMIC_PLATFORM_LABEL],
            "linux-arm64"
        );
        assert_eq!(
            patch["metadata"]["annotations"][CLOUD_LAUNCH_ATTEMPT_ANNOTATION],
            "2"
        );
        let id = InstanceId::parse("i-0123456789abcdef0").unwrap();
        let mut doc = json!({"metadata": {"labels": {"tekton.dev/task": "t"}}});
        for p in [patch, mark_launched(&id), mark_cloud_address("127.77.1.5")] {
            json_patch::merge(&mut doc, &p);
        }
        assert_eq!(doc["metadata"]["labels"][ASSIGNED_HOST_LABEL], id.as_str());
        assert_eq!(
            doc["metadata"]["annotations"][CLOUD_ADDRESS_ANNOTATION],
            "127.77.1.5"
        );
        json_patch::merge(&mut doc, &clear_cloud());
        assert_eq!(
            doc["metadata"]["labels"],
            json!({"tekton.dev/task": "t", TARGET_PLATFORM_LABEL: "linux-arm64"})
        );
        let annotations = doc["metadata"]["annotations"].as_object().unwrap();
        assert!(!annotations.contains_key(CLOUD_INSTANCE_ID_ANNOTATION));
    }
}
