//! What the controller reads from a Tekton TaskRun, and nothing more.
//!
//! [`TaskRun`] deserialises only the fields the controller looks at: everything else in
//! a real TaskRun (the resolved Task's steps, results, pod templates…) is dropped while
//! parsing, which keeps the reflector cache small with 10 000 TaskRuns in a cluster.
//! Because this type is lossy it must never be written back whole: the controller only
//! PATCHes its own labels, annotations and finalizer (contract §2.2).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use crate::cloud::InstanceId;
use crate::naming::{
    ALLOCATION_START_TIME_ANNOTATION, ASSIGNED_HOST_LABEL, CLOUD_ADDRESS_ANNOTATION,
    CLOUD_DYNAMIC_PLATFORM_LABEL, CLOUD_INSTANCE_ID_ANNOTATION, CLOUD_LAUNCH_ATTEMPT_ANNOTATION,
    FAILED_HOSTS_ANNOTATION, FINALIZER, PLATFORM_PARAM, SECRET_PREFIX, TARGET_PLATFORM_LABEL,
    WAITING_FOR_PLATFORM_LABEL,
};
use crate::platform::{InvalidPlatform, Platform};
use crate::time::Timestamp;

/// `spec.status` value with which a user cancels a TaskRun.
pub const CANCELLED_SPEC_STATUS: &str = "TaskRunCancelled";

/// A tekton.dev/v1 TaskRun, reduced to the fields the controller reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct TaskRun {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The few spec fields we read.
    #[serde(default)]
    pub spec: TaskRunSpec,
    /// The few status fields we read; absent until Tekton first reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskRunStatus>,
}

/// `spec` of a TaskRun: its params and the user's cancel request.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunSpec {
    /// Params as given; Tekton values are strings, arrays or objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// `TaskRunCancelled` when a user cancelled the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One TaskRun param.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Param {
    /// Param name.
    pub name: String,
    /// Param value: a JSON string, array or object.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// `status` of a TaskRun.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunStatus {
    /// Set by Tekton when the run completed in any way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Knative-style conditions; `Succeeded` is the one that matters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The resolved Task spec; only its volumes are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<ResolvedTaskSpec>,
}

/// A status condition.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Condition {
    /// Condition type, e.g. `Succeeded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, e.g. `TaskRunTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `status.taskSpec`, reduced to its volumes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ResolvedTaskSpec {
    /// Volumes the Task declares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// A pod volume, reduced to its Secret source.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Volume {
    /// Volume name.
    #[serde(default)]
    pub name: String,
    /// Set for Secret volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolume>,
}

/// The Secret source of a volume.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolume {
    /// Name of the mounted Secret (may contain Tekton variables before resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Why a candidate TaskRun's `PLATFORM` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformParamError {
    /// The param is an array or object instead of a string.
    #[error("the PLATFORM param must be a string such as `linux/arm64`, but it is {0}")]
    NotAString(&'static str),
    /// The string is not a valid platform.
    #[error(transparent)]
    Invalid(#[from] InvalidPlatform),
}

impl TaskRun {
    /// Namespace and name, the TaskRun's identity.
    pub fn key(&self) -> (&str, &str) {
        (
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The first `PLATFORM` param's raw value, if the TaskRun has one.
    pub fn platform_param(&self) -> Option<&serde_json::Value> {
        self.spec
            .params
            .iter()
            .find(|p| p.name == PLATFORM_PARAM)
            .map(|p| &p.value)
    }

    /// Whether the resolved Task mounts a `multi-platform-ssh-*` Secret.
    pub fn mounts_ssh_secret(&self) -> bool {
        self.status
            .iter()
            .filter_map(|s| s.task_spec.as_ref())
            .flat_map(|spec| &spec.volumes)
            .filter_map(|v| v.secret.as_ref()?.secret_name.as_deref())
            .any(|name| name.starts_with(SECRET_PREFIX))
    }

    /// contract §2.1: a `PLATFORM` param and a mounted `multi-platform-ssh-*` Secret.
    /// Labels copied from the Task are deliberately not consulted.
    pub fn is_candidate(&self) -> bool {
        self.platform_param().is_some() && self.mounts_ssh_secret()
    }

    /// The requested platform, validated.
    ///
    /// Returns `None` for a TaskRun without a `PLATFORM` param.
    pub fn platform(&self) -> Option<Result<Platform, PlatformParamError>> {
        Some(match self.platform_param()? {
            serde_json::Value::String(s) => Platform::parse(s).map_err(PlatformParamError::from),
            serde_json::Value::Array(_) => Err(PlatformParamError::NotAString("an array")),
            serde_json::Value::Object(_) => Err(PlatformParamError::NotAString("an object")),
            _ => Err(PlatformParamError::NotAString("not a string")),
        })
    }

    /// Whether the user asked Tekton to cancel the run.
    pub fn is_cancelled(&self) -> bool {
        self.spec.status.as_deref() == Some(CANCELLED_SPEC_STATUS)
    }

    /// contract §2.1 plus cancellation: the run needs no host any more.
    pub fn is_finished(&self) -> bool {
        if self.metadata.deletion_timestamp.is_some() || self.is_cancelled() {
            return true;
        }
        let Some(status) = &self.status else {
            return false;
        };
        status.completion_time.is_some()
            || status
                .conditions
                .iter()
                .any(|c| c.type_ == "Succeeded" && (c.status == "True" || c.status == "False"))
    }

    /// When the TaskRun was created (queue order); `None` only for objects not yet stored.
    pub fn created(&self) -> Option<&Time> {
        self.metadata.creation_timestamp.as_ref()
    }

    /// Whether our finalizer is on the TaskRun.
    pub fn has_finalizer(&self) -> bool {
        self.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FINALIZER)
    }

    /// The `assigned-host` label: the allocation record.
    pub fn assigned_host(&self) -> Option<&str> {
        self.label(ASSIGNED_HOST_LABEL)
    }

    /// The `cloud-dynamic-platform` label: it holds (or held) a cloud VM slot.
    pub fn cloud_platform(&self) -> Option<&str> {
        self.label(CLOUD_DYNAMIC_PLATFORM_LABEL)
    }

    /// The `cloud-instance-id` annotation, when it is an instance id.
    pub fn cloud_instance(&self) -> Option<InstanceId> {
        InstanceId::parse(self.annotation(CLOUD_INSTANCE_ID_ANNOTATION)?.trim()).ok()
    }

    /// Our launch-attempt annotation (1 when absent or malformed).
    pub fn launch_attempt(&self) -> u32 {
        self.annotation(CLOUD_LAUNCH_ATTEMPT_ANNOTATION)
            .and_then(|a| a.trim().parse().ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1)
    }

    /// Whether the TaskRun carries the waiting label.
    pub fn is_waiting(&self) -> bool {
        self.label(WAITING_FOR_PLATFORM_LABEL).is_some()
    }

    /// Hosts that already failed provisioning for this TaskRun.
    pub fn failed_hosts(&self) -> Vec<String> {
        parse_host_list(self.annotation(FAILED_HOSTS_ANNOTATION).unwrap_or_default())
    }

    /// When allocation started (the Unix-seconds annotation), if recorded and well-formed.
    pub fn allocation_start(&self) -> Option<Timestamp> {
        let seconds: i64 = self
            .annotation(ALLOCATION_START_TIME_ANNOTATION)?
            .trim()
            .parse()
            .ok()?;
        Timestamp::from_second(seconds).ok()
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Drops what the controller never reads, for the reflector cache: managed fields,
    /// owner references and every label and annotation that is not ours, and the
    /// status of TaskRuns that are not candidates beyond what `is_finished` needs.
    pub fn strip_for_cache(mut self) -> Self {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.owner_references = None;
        meta.generate_name = None;
        retain_keys(&mut meta.labels, OUR_LABELS);
        retain_keys(&mut meta.annotations, OUR_ANNOTATIONS);
        if let Some(status) = &mut self.status {
            status.conditions.retain(|c| c.type_ == "Succeeded");
            if let Some(spec) = &mut status.task_spec {
                spec.volumes.retain(|v| {
                    v.secret
                        .as_ref()
                        .and_then(|s| s.secret_name.as_deref())
                        .is_some_and(|n| n.starts_with(SECRET_PREFIX))
                });
            }
        }
        self.spec.params.retain(|p| p.name == PLATFORM_PARAM);
        self
    }
}

const OUR_LABELS: &[&str] = &[
    ASSIGNED_HOST_LABEL,
    TARGET_PLATFORM_LABEL,
    WAITING_FOR_PLATFORM_LABEL,
    CLOUD_DYNAMIC_PLATFORM_LABEL,
];
const OUR_ANNOTATIONS: &[&str] = &[
    FAILED_HOSTS_ANNOTATION,
    ALLOCATION_START_TIME_ANNOTATION,
    CLOUD_INSTANCE_ID_ANNOTATION,
    CLOUD_ADDRESS_ANNOTATION,
    CLOUD_LAUNCH_ATTEMPT_ANNOTATION,
];

fn retain_keys(map: &mut Option<BTreeMap<String, String>>, keep: &[&str]) {
    if let Some(m) = map {
        m.retain(|k, _| keep.contains(&k.as_str()));
        if m.is_empty() {
            *map = None;
        }
    }
}

/// Parses the comma list of the `failed-hosts` annotation, ignoring blanks.
pub fn parse_host_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taskrun(value: serde_json::Value) -> TaskRun {
        serde_json::from_value(value).expect("valid TaskRun JSON")
    }

    /// A TaskRun as Tekton leaves it once it resolved a buildah-remote Task.
    fn resolved() -> serde_json::Value {
        json!({
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {
                "name": "build-1", "namespace": "tenant",
                "creationTimestamp": "2026-11-23T10:00:00Z",
                "labels": {"tekton.dev/task": "buildah-remote", ASSIGNED_HOST_LABEL: "h1"},
                "annotations": {FAILED_HOSTS_ANNOTATION: "h2, h3,,", "other": "x"},
                "managedFields": [{"manager": "tekton"}],
            },
            "spec": {
                "params": [
                    {"name": "IMAGE", "value": "quay.io/x/y"},
                    {"name": "PLATFORM", "value": "linux/arm64"},
                    {"name": "PLATFORM", "value": "linux/s390x"},
                ],
                "taskRef": {"name": "buildah-remote"},
            },
            "status": {
                "podName": "build-1-pod",
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}],
                "taskSpec": {
                    "steps": [{"name": "build", "image": "x", "script": "echo"}],
                    "volumes": [
                        {"name": "varlibcontainers", "emptyDir": {}},
                        {"name": "ssh", "secret": {"secretName": "multi-platform-ssh-build-1"}},
                    ],
                },
            },
        })
    }

    #[test]
    fn a_resolved_remote_taskrun_is_a_candidate_with_the_first_platform() {
        let tr = taskrun(resolved());
        assert!(tr.is_candidate());
        assert_eq!(
            tr.platform(),
            Some(Ok(Platform::parse("linux/arm64").unwrap()))
        );
        assert!(!tr.is_finished());
        assert_eq!(tr.key(), ("tenant", "build-1"));
        assert_eq!(tr.assigned_host(), Some("h1"));
        assert_eq!(tr.failed_hosts(), vec!["h2", "h3"]);
    }

    #[test]
    fn platform_param_alone_is_not_enough() {
        let mut v = resolved();
        v["status"]["taskSpec"]["volumes"] =
            json!([{"name": "ssh", "secret": {"secretName": "other"}}]);
        assert!(!taskrun(v.clone()).is_candidate());
        v["status"] = json!(null);
        assert!(
            !taskrun(v).is_candidate(),
            "before Tekton resolved the Task"
        );
    }

    #[test]
    fn the_secret_alone_is_not_enough() {
        let mut v = resolved();
        v["spec"]["params"] = json!([{"name": "IMAGE", "value": "x"}]);
        let tr = taskrun(v);
        assert!(!tr.is_candidate());
        assert_eq!(tr.platform(), None);
    }

    #[test]
    fn non_string_and_malformed_platforms_are_reported() {
        let mut v = resolved();
        v["spec"]["params"] = json!([{"name": "PLATFORM", "value": ["linux/arm64"]}]);
        let err = taskrun(v.clone()).platform().unwrap().unwrap_err();
        assert!(err.to_string().contains("must be a string"), "{err}");
        v["spec"]["params"] = json!([{"name": "PLATFORM", "value": "linux/ARM64"}]);
        assert!(matches!(
            taskrun(v).platform(),
            Some(Err(PlatformParamError::Invalid(_)))
        ));
    }

    #[test]
    fn finished_in_every_way_spec_2_1_names_plus_cancel() {
        let finished = [
            json!({"completionTime": "2026-11-23T10:05:00Z"}),
            json!({"conditions": [{"type": "Succeeded", "status": "True"}]}),
            json!({"conditions": [{"type": "Succeeded", "status": "False", "reason": "TaskRunTimeout"}]}),
        ];
        for status in finished {
            let mut v = resolved();
            v["status"] = status.clone();
            assert!(taskrun(v).is_finished(), "{status}");
        }
        let mut v = resolved();
        v["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:06:00Z");
        assert!(taskrun(v).is_finished());
        let mut v = resolved();
        v["spec"]["status"] = json!(CANCELLED_SPEC_STATUS);
        let tr = taskrun(v);
        assert!(tr.is_cancelled() && tr.is_finished());
        let mut v = resolved();
        v["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        assert!(!taskrun(v).is_finished(), "only Succeeded counts");
    }

    #[test]
    fn strip_for_cache_keeps_every_answer_and_drops_the_rest() {
        let full = taskrun(resolved());
        let stripped = full.clone().strip_for_cache();
        assert_eq!(stripped.is_candidate(), full.is_candidate());
        assert_eq!(stripped.platform(), full.platform());
        assert_eq!(stripped.is_finished(), full.is_finished());
        assert_eq!(stripped.failed_hosts(), full.failed_hosts());
        assert_eq!(stripped.assigned_host(), full.assigned_host());
        assert_eq!(stripped.metadata.managed_fields, None);
        let labels = stripped.metadata.labels.unwrap();
        assert!(!labels.contains_key("tekton.dev/task"));
        assert!(!stripped.metadata.annotations.unwrap().contains_key("other"));
        assert_eq!(stripped.spec.params.len(), 2);
    }

    #[test]
    fn our_marks_are_read_from_labels_annotations_and_finalizers() {
        let mut v = resolved();
        v["metadata"]["finalizers"] = json!(["other", FINALIZER]);
        v["metadata"]["labels"][WAITING_FOR_PLATFORM_LABEL] = json!("linux-arm64");
        v["metadata"]["annotations"][ALLOCATION_START_TIME_ANNOTATION] = json!("1763892000");
        let tr = taskrun(v);
        assert!(tr.has_finalizer());
        assert!(tr.is_waiting());
        assert_eq!(
            tr.allocation_start(),
            Timestamp::from_second(1_763_892_000).ok()
        );
    }
}
