//! The Go types of the built-in kinds, through k8s-openapi: the API server decodes a
//! built-in object into its Go struct, so fields the struct lacks vanish (they are the
//! unknown fields of field validation) and a value of the wrong type fails the request
//! with 400 BadRequest. Decoding into the k8s-openapi type and back shows both.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::schema::join;

fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The object as k8s-openapi's type for `info` would hold it, or `None` for kinds kube-sim
/// has no type for (custom resources).
fn decoded(info: &ResourceInfo, obj: &Value) -> Option<Result<Value, String>> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(
        match (
            info.group.as_str(),
            info.version.as_str(),
            info.kind.as_str(),
        ) {
            ("", "v1", "Namespace") => round_trip::<api::core::v1::Namespace>(obj),
            ("", "v1", "ConfigMap") => round_trip::<api::core::v1::ConfigMap>(obj),
            ("", "v1", "Secret") => round_trip::<api::core::v1::Secret>(obj),
            ("", "v1", "Pod") => round_trip::<api::core::v1::Pod>(obj),
            ("", "v1", "ServiceAccount") => round_trip::<api::core::v1::ServiceAccount>(obj),
            ("", "v1", "Service") => round_trip::<api::core::v1::Service>(obj),
            ("", "v1", "Event") => round_trip::<api::core::v1::Event>(obj),
            ("events.k8s.io", "v1", "Event") => round_trip::<api::events::v1::Event>(obj),
            ("coordination.k8s.io", "v1", "Lease") => {
                round_trip::<api::coordination::v1::Lease>(obj)
            }
            ("apps", "v1", "Deployment") => round_trip::<api::apps::v1::Deployment>(obj),
            ("rbac.authorization.k8s.io", "v1", "Role") => round_trip::<api::rbac::v1::Role>(obj),
            ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
                round_trip::<api::rbac::v1::RoleBinding>(obj)
            }
            ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
                round_trip::<api::rbac::v1::ClusterRole>(obj)
            }
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
                round_trip::<api::rbac::v1::ClusterRoleBinding>(obj)
            }
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
                round_trip::<apiext::CustomResourceDefinition>(obj)
            }
            _ => return None,
        },
    )
}

/// Drops the fields of a built-in object its Go type does not have, and the `null`s it
/// would not keep; returns the dropped fields' paths. Fails like the API server's decoder
/// when a value has the wrong type. Objects of kinds without a type are left alone.
pub fn prune_builtin(info: &ResourceInfo, obj: &mut Value) -> ApiResult<Vec<String>> {
    let Some(decoded) = decoded(info, obj) else {
        return Ok(Vec::new());
    };
    let typed = decoded.map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = info.kind,
            version = info.version
        ))
    })?;
    let mut unknown = Vec::new();
    drop_absent(obj, &typed, "", &mut unknown);
    Ok(unknown)
}

/// Removes what `obj` has and `typed` lacks (recording non-null ones).
fn drop_absent(obj: &mut Value, typed: &Value, path: &str, unknown: &mut Vec<String>) {
    match (obj, typed) {
        (Value::Object(m), Value::Object(t)) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                match t.get(&k) {
                    None => {
                        if m.remove(&k).is_some_and(|v| !v.is_null()) {
                            unknown.push(join(path, &k));
                        }
                    }
                    Some(tv) => {
                        if let Some(v) = m.get_mut(&k) {
                            drop_absent(v, tv, &join(path, &k), unknown);
                        }
                    }
                }
            }
        }
        (Value::Array(items), Value::Array(t)) if items.len() == t.len() => {
            for (i, (v, tv)) in items.iter_mut().zip(t).enumerate() {
                drop_absent(v, tv, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceTable;
    use serde_json::json;

    #[test]
    fn unknown_fields_of_built_ins_are_found_and_dropped() {
        let t = ResourceTable::builtin();
        let deploy = t.get("apps", "v1", "deployments").unwrap();
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "app": "x", "labels": null},
            "spec": {"unknown1": 1, "paused": true, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "unknownNested": "v"}]}}}});
        let unknown = prune_builtin(&deploy, &mut d).unwrap();
        assert_eq!(
            unknown,
            [
                "metadata.app",
                "spec.template.spec.containers[0].unknownNested",
                "spec.unknown1"
            ]
        );
        assert!(d["metadata"].get("labels").is_none());
        assert_eq!(d["spec"]["paused"], true);
        let mut bad =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "two"}});
        let err = prune_builtin(&deploy, &mut bad).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(
            err.message
                .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: "),
            "{}",
            err.message
        );
    }
}
