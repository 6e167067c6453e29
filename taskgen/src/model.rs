//! Typed model of a Tekton `tekton.dev/v1` Task, shaped like the Go structs the
//! upstream generator decodes into.
//!
//! Why typed: the Go tool decodes into `v1.Task`, so every value has a type — an
//! annotation `2024-11-13T00:00:00Z` or a label `0.1` stays a string, unknown fields are
//! dropped, and zero values follow Go's `omitempty` rules on the way out. Kubernetes core
//! types come from `k8s-openapi`; Tekton's own types and the two core types whose Go
//! `omitempty` rules matter in steps (`EnvVar`, `VolumeMount`) are defined here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerPort, EnvFromSource, EnvVarSource, Lifecycle, Probe, ResourceRequirements,
    SecurityContext, Volume, VolumeDevice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Accepts YAML `null` where Go would leave the zero value (Go's JSON decoder does).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A Tekton Task (`apiVersion: tekton.dev/v1`, `kind: Task`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Always `tekton.dev/v1` for an accepted input.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Always `Task` for an accepted input.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Name, labels and annotations.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The Task body.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: TaskSpec,
}

/// `spec` of a Task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Declared parameters, in order.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub params: Vec<ParamSpec>,
    /// Human-readable name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub display_name: String,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Steps, in execution order.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub steps: Vec<Step>,
    /// Pod volumes.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volumes: Vec<Volume>,
    /// Defaults merged into every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_template: Option<StepTemplate>,
    /// Sidecar containers.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sidecars: Vec<Sidecar>,
    /// Declared workspaces, in order.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workspaces: Vec<WorkspaceDeclaration>,
    /// Declared results.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub results: Vec<TaskResult>,
}

/// A declared parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamSpec {
    /// Parameter name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `string`, `array` or `object`; kept as written (Go does not default it when decoding).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Keys of an object parameter.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, PropertySpec>,
    /// Default value; a parameter without one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ParamValue>,
    /// Allowed values.
    #[serde(
        default,
        rename = "enum",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enum_: Vec<String>,
}

/// Type of one key of an object parameter or result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PropertySpec {
    /// Value type.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
}

/// A parameter or result value: a string, an array of strings or a string map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// `default: text`
    String(String),
    /// `default: [a, b]`
    Array(Vec<String>),
    /// `default: {key: value}`
    Object(BTreeMap<String, String>),
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::String(s) => serializer.serialize_str(s),
            ParamValue::Array(a) => a.serialize(serializer),
            ParamValue::Object(o) => o.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParamValueVisitor)
    }
}

/// Scalars of any YAML type become their text, as Tekton's `ParamValue.UnmarshalJSON`
/// does with non-string JSON values.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarTextVisitor)
    }
}

struct ScalarTextVisitor;

impl Visitor<'_> for ScalarTextVisitor {
    type Value = ScalarText;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(ScalarText(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(ScalarText(v.to_string()))
    }
}

struct ParamValueVisitor;

impl<'de> Visitor<'de> for ParamValueVisitor {
    type Value = ParamValue;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, a list of strings or a map of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(ParamValue::String(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(ScalarText(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(ParamValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, ScalarText(value))) = map.next_entry::<String, ScalarText>()? {
            entries.insert(key, value);
        }
        Ok(ParamValue::Object(entries))
    }
}

/// A declared Task result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Result name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `string`, `array` or `object`.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
    /// Keys of an object result.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, PropertySpec>,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Value taken from a step result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ParamValue>,
}

/// A declared workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDeclaration {
    /// Workspace name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Where it is mounted (default `/workspace/<name>`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_path: String,
    /// Mounted read-only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub read_only: bool,
    /// The TaskRun may leave it unbound.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub optional: bool,
}

/// An environment variable (Go `corev1.EnvVar`: an empty `value` is omitted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Literal value (Tekton substitutes `$(params.…)` in it).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub value: String,
    /// Value taken from a Secret, ConfigMap or field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

impl EnvVar {
    /// A variable with a literal value.
    pub fn new(name: &str, value: &str) -> Self {
        EnvVar {
            name: name.to_owned(),
            value: value.to_owned(),
            value_from: None,
        }
    }
}

/// A volume mount (Go `corev1.VolumeMount`: `readOnly: false` is omitted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Volume name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Mounted read-only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub read_only: bool,
    /// Recursive read-only mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_read_only: Option<String>,
    /// Where it is mounted in the container.
    #[serde(default, deserialize_with = "nullable")]
    pub mount_path: String,
    /// Sub-path of the volume to mount.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub sub_path: String,
    /// Mount propagation mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<String>,
    /// Sub-path with environment expansion.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub sub_path_expr: String,
}

/// A step's exclusive access to a workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUsage {
    /// Workspace name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Where the step sees it.
    #[serde(default, deserialize_with = "nullable")]
    pub mount_path: String,
}

/// Where a step's stdout/stderr is copied to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepOutputConfig {
    /// File path.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub path: String,
}

/// A name/value pair passed to a StepAction or resolver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Parameter name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Parameter value.
    pub value: ParamValue,
}

/// Reference to a StepAction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    /// StepAction name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Remote resolver.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub resolver: String,
    /// Resolver parameters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub params: Vec<Param>,
}

/// A result a step produces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Result name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Value type.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
    /// Keys of an object result.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, PropertySpec>,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
}

/// A `when` guard of a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WhenExpression {
    /// Left-hand side.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub input: String,
    /// `in` or `notin`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub operator: String,
    /// Right-hand side values.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
    /// CEL expression.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub cel: String,
}

/// One step of a Task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Step name (always written, as Go's tag has no `omitempty`).
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Human-readable name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub display_name: String,
    /// Container image.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    /// Entrypoint.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Arguments (passed to `script` as `$@`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// Working directory.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Environment from Secrets/ConfigMaps.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env_from: Vec<EnvFromSource>,
    /// Environment variables.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<EnvVar>,
    /// Resources (always written: a non-pointer struct in Go).
    #[serde(default, deserialize_with = "nullable")]
    pub compute_resources: ResourceRequirements,
    /// Volume mounts.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_mounts: Vec<VolumeMount>,
    /// Block devices.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_devices: Vec<VolumeDevice>,
    /// Image pull policy.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    /// Security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Script body.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub script: String,
    /// Timeout (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<crate::duration::GoDuration>,
    /// Workspaces this step uses exclusively.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workspaces: Vec<WorkspaceUsage>,
    /// `continue` or `stopAndFail`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub on_error: String,
    /// Copy of stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_config: Option<StepOutputConfig>,
    /// Copy of stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_config: Option<StepOutputConfig>,
    /// StepAction reference.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<Ref>,
    /// StepAction parameters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub params: Vec<Param>,
    /// Step results.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub results: Vec<StepResult>,
    /// Guards.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub when: Vec<WhenExpression>,
}

/// Defaults merged into every step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTemplate {
    /// Default image.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    /// Default entrypoint.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Default arguments.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// Default working directory.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Environment from Secrets/ConfigMaps.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env_from: Vec<EnvFromSource>,
    /// Environment shared by all steps.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<EnvVar>,
    /// Resources (always written).
    #[serde(default, deserialize_with = "nullable")]
    pub compute_resources: ResourceRequirements,
    /// Mounts shared by all steps.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_mounts: Vec<VolumeMount>,
    /// Block devices.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_devices: Vec<VolumeDevice>,
    /// Image pull policy.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    /// Security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

/// A sidecar container (left untouched by the generator).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Sidecar name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Image.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    /// Entrypoint.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// Working directory.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Ports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<ContainerPort>,
    /// Environment from Secrets/ConfigMaps.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env_from: Vec<EnvFromSource>,
    /// Environment.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<EnvVar>,
    /// Resources (always written).
    #[serde(default, deserialize_with = "nullable")]
    pub compute_resources: ResourceRequirements,
    /// Volume mounts.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_mounts: Vec<VolumeMount>,
    /// Block devices.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_devices: Vec<VolumeDevice>,
    /// Liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Startup probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    /// Lifecycle hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Termination message path.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub termination_message_path: String,
    /// Termination message policy.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub termination_message_policy: String,
    /// Image pull policy.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    /// Security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Allocate stdin.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub stdin: bool,
    /// Close stdin after the first attach.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub stdin_once: bool,
    /// Allocate a TTY.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub tty: bool,
    /// Script body.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub script: String,
    /// Workspaces this sidecar uses exclusively.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workspaces: Vec<WorkspaceUsage>,
    /// Restart policy (native sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}
