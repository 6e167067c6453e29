//! The per-write rules of the API server that are not about storage: keys, scopes,
//! metadata validation, defaults of built-in kinds, and when a deleting object may go.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::{CRD_FINALIZER, NAMESPACE_FINALIZER, ObjKey};
use crate::error::{ApiError, ApiResult};
use crate::managed::Scope;
use crate::object::{self, meta, meta_mut};
use crate::resources::ResourceInfo;

pub(super) const GC_MANAGER: &str = "generic-garbage-collector";

/// The API server's limit on the total size of an object's annotations (256 KiB).
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

pub(super) fn key_for(info: &ResourceInfo, ns: Option<&str>, name: &str) -> ObjKey {
    let ns = if info.namespaced {
        ns.unwrap_or("").to_string()
    } else {
        String::new()
    };
    (ns, name.to_string())
}

pub(super) fn is_namespace(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "namespaces"
}

pub(super) fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

pub(super) fn scope_of(info: &ResourceInfo, status: bool) -> Scope {
    match (info.status_subresource, status) {
        (false, _) => Scope::Whole,
        (true, false) => Scope::MainOnly,
        (true, true) => Scope::StatusOnly,
    }
}

/// Everything but `metadata` and `status`: what `metadata.generation` counts changes of.
pub(super) fn spec_part(v: &Value) -> Value {
    let mut m = v.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "apiVersion", "kind"] {
        m.remove(k);
    }
    Value::Object(m)
}

pub(super) fn set_or_remove(m: &mut Map<String, Value>, k: &str, v: Option<&Value>) {
    match v {
        Some(v) => {
            m.insert(k.to_string(), v.clone());
        }
        None => {
            m.remove(k);
        }
    }
}

/// Checks labels, annotations and finalizers the way the API server validates metadata.
pub(super) fn validate_meta(info: &ResourceInfo, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    if let Some(labels) = meta(obj).and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(l) => {
                for (k, v) in l {
                    if let Some(p) = object::check_label_key(k) {
                        causes.push(format!("metadata.labels: Invalid value: {k:?}: {p}"));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Some(p) = object::check_label_value(s) {
                                causes.push(format!("metadata.labels: Invalid value: {s:?}: {p}"));
                            }
                        }
                        None => causes.push(format!(
                            "metadata.labels.{k}: Invalid value: {v}: label values must be strings"
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push("metadata.labels: Invalid value: must be a map".into()),
        }
    }
    if let Some(ann) = meta(obj).and_then(|m| m.get("annotations"))
        && !ann.is_null()
        && !ann
            .as_object()
            .is_some_and(|a| a.values().all(Value::is_string))
    {
        causes.push("metadata.annotations: Invalid value: must be a map of strings".into());
    }
    if let Some(ann) = meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let size: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > ANNOTATIONS_LIMIT {
            causes.push(format!(
                "metadata.annotations: Too long: must have at most {ANNOTATIONS_LIMIT} bytes"
            ));
        }
    }
    if let Some(f) = meta(obj).and_then(|m| m.get("finalizers"))
        && !f.is_null()
        && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        causes.push("metadata.finalizers: Invalid value: must be a list of strings".into());
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &info.group,
            &info.kind,
            object::name(obj),
            &causes,
        ))
    }
}

/// Defaults the API server adds when objects of some built-in kinds are created.
pub(super) fn create_defaults(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let name = object::name(obj).to_string();
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => {
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            obj["spec"] = json!({"finalizers": [NAMESPACE_FINALIZER]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "secrets")
            if obj
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty() =>
        {
            obj["type"] = json!("Opaque");
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "services") => {
            let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
                return Ok(());
            };
            spec.entry("type").or_insert_with(|| json!("ClusterIP"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    port.entry("protocol").or_insert_with(|| json!("TCP"));
                    if let Some(number) = port.get("port").cloned() {
                        port.entry("targetPort").or_insert(number);
                    }
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crate::resources::rows_from_crd(obj)
                .map_err(|causes| crate::resources::invalid_crd(&name, &causes))?;
            let m = meta_mut(obj);
            let fins = m.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = fins.as_array_mut()
                && !a.iter().any(|f| f == CRD_FINALIZER)
            {
                a.push(json!(CRD_FINALIZER));
            }
            obj["status"] = crd_status(obj);
        }
        _ => {}
    }
    Ok(())
}

/// What the API server does to every write of some built-in kinds: a Secret's write-only
/// `stringData` is folded into `data` (base64; it wins over `data` for the same key) and
/// never stored.
pub(super) fn normalize_write(info: &ResourceInfo, obj: &mut Value) {
    if !(info.group.is_empty() && info.plural == "secrets") {
        return;
    }
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = o.remove("stringData") else {
        return;
    };
    let data = o.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            data.insert(k, json!(BASE64.encode(text)));
        }
    }
}

/// The status the API server reports for an accepted, established CRD.
pub(super) fn crd_status(crd: &Value) -> Value {
    let now = object::now_rfc3339();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now}
        ],
        "storedVersions": stored,
    })
}

/// Whether a deleting object may go: no finalizers left (for namespaces also none in
/// `spec.finalizers`, which the namespace controller clears once the namespace is empty).
pub(super) fn drained(obj: &Value) -> bool {
    let spec_clear = !is_namespace_obj(obj)
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
    object::is_deleting(obj) && object::finalizers(obj).is_empty() && spec_clear
}

pub(super) fn is_namespace_obj(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Namespace")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}
