//! The patch formats of the API: JSON merge (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge (merge semantics plus the common list directives).

use serde_json::{Map, Value};

use crate::error::{ApiError, Reason};

/// A patch content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type header to the patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch: maps merge, `null` deletes, everything else replaces.
pub fn merge(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// Applies an RFC 6902 JSON patch atomically. Like the Go implementation the API server
/// uses, a `test` of a missing path against `null` succeeds.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let ops: Vec<json_patch::PatchOperation> = serde_json::from_value(ops.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut work = doc.clone();
    for op in &ops {
        if let json_patch::PatchOperation::Test(t) = op {
            let actual = work.pointer(t.path.as_str()).unwrap_or(&Value::Null);
            if actual != &t.value {
                return Err(ApiError::new(
                    Reason::Invalid,
                    format!(
                        "the server rejected our request due to an error in our request: test operation for path {:?} failed: expected {}, found {}",
                        t.path.as_str(),
                        t.value,
                        actual
                    ),
                ));
            }
            continue;
        }
        json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
            ApiError::new(
                Reason::Invalid,
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    *doc = work;
    Ok(())
}

/// Merge keys of the lists strategic merge patches merge element-wise (the built-in types
/// kube-sim serves); other lists are replaced. `parent` is the field holding the map the
/// list is in: `ports` of a container merge by `containerPort`, a Service's by `port`.
fn merge_key(parent: &str, field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "secrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" if is_container_list(parent) => Some("containerPort"),
        "ports" => Some("port"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(
        field,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

/// Lists of scalars that strategic merge unions (`patchStrategy: merge`).
fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch. Implements map merging, `null` deletion, element-wise
/// merging of keyed lists, union of `finalizers`, `$patch: replace|delete`, and
/// `$deleteFromPrimitiveList/<field>`; ordering directives (`$setElementOrder`) and
/// `$retainKeys` are accepted and ignored.
pub fn strategic(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(d) = doc else {
        unreachable!("made an object above")
    };
    strategic_map(d, p, "")
}

/// Merges patch map `p` into `d`; `parent` is the field name `d` is the value (or a list
/// element) of, "" at the top.
fn strategic_map(
    d: &mut Map<String, Value>,
    p: &Map<String, Value>,
    parent: &str,
) -> Result<(), ApiError> {
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *d = clean;
            return Ok(());
        }
        Some("delete") => {
            d.clear();
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?} in map"
            )));
        }
        None => {}
    }
    for (k, v) in p {
        if k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(gone)) = (d.get_mut(field), v) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), v) {
            (Some(Value::Object(dm)), Value::Object(pm)) => strategic_map(dm, pm, k)?,
            (Some(Value::Array(dl)), Value::Array(pl)) => {
                if let Some(key) = merge_key(parent, k) {
                    merge_keyed_list(dl, pl, k, key)?;
                } else if is_primitive_merge_list(k) {
                    for x in pl {
                        if !dl.contains(x) {
                            dl.push(x.clone());
                        }
                    }
                } else {
                    *dl = pl.clone();
                }
            }
            (_, Value::Object(pm)) => {
                let mut fresh = Map::new();
                strategic_map(&mut fresh, pm, k)?;
                d.insert(k.clone(), Value::Object(fresh));
            }
            (_, Value::Array(pl)) => {
                // A new keyed list: drop directive-only entries.
                let items = pl
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .collect();
                d.insert(k.clone(), Value::Array(items));
            }
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// Merges the elements of list `field` by their `key` value.
fn merge_keyed_list(
    dl: &mut Vec<Value>,
    pl: &[Value],
    field: &str,
    key: &str,
) -> Result<(), ApiError> {
    for item in pl {
        let Some(Value::Object(pm)) = Some(item) else {
            return Err(ApiError::bad_request(format!(
                "list with merge key {key:?} must hold objects"
            )));
        };
        let id = pm.get(key).cloned().unwrap_or(Value::Null);
        let pos = dl.iter().position(|x| x.get(key) == Some(&id));
        match (pm.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                dl.remove(i);
            }
            (Some("delete"), None) => {}
            (Some("replace"), Some(i)) => {
                let mut clean = pm.clone();
                clean.remove("$patch");
                dl[i] = Value::Object(clean);
            }
            (_, Some(i)) => {
                if let Value::Object(existing) = &mut dl[i] {
                    strategic_map(existing, pm, field)?;
                }
            }
            (_, None) => {
                let mut fresh = Map::new();
                strategic_map(&mut fresh, pm, field)?;
                dl.push(Value::Object(fresh));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }

    #[test]
    fn json_patch_test_of_missing_path_against_null_passes() {
        let mut d = json!({"metadata": {"name": "a"}});
        json_patch(
            &mut d,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
            ]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn failed_test_is_invalid_and_leaves_the_document() {
        let mut d = json!({"a": 1});
        let err = json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/a", "value": 3}, {"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(d, json!({"a": 1}));
        let bad = json_patch(&mut d, &json!({"op": "add"})).unwrap_err();
        assert_eq!(bad.code(), 400);
    }

    #[test]
    fn strategic_merges_keyed_lists_and_finalizers() {
        let mut d = json!({
            "metadata": {"finalizers": ["a"]},
            "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "2"}], "args": ["p"]}
        });
        strategic(
            &mut d,
            &json!({
                "metadata": {"finalizers": ["b"]},
                "spec": {
                    "$setElementOrder/containers": [{"name": "x"}],
                    "containers": [{"name": "x", "image": "3"}, {"name": "y", "$patch": "delete"}],
                    "args": ["q"]
                }
            }),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            d["spec"]["containers"],
            json!([{"name": "x", "image": "3"}])
        );
        assert_eq!(d["spec"]["args"], json!(["q"]));
        strategic(
            &mut d,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
        strategic(&mut d, &json!({"spec": {"$patch": "replace", "z": 1}})).unwrap();
        assert_eq!(d["spec"], json!({"z": 1}));
    }

    #[test]
    fn ports_merge_by_container_port_in_containers_and_by_port_in_services() {
        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "ports": [{"name": "a", "containerPort": 80}]}
        ]}}}});
        strategic(
            &mut deploy,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c", "ports": [{"name": "b", "containerPort": 81}]}
            ]}}}}),
        )
        .unwrap();
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"name": "a", "containerPort": 80}, {"name": "b", "containerPort": 81}])
        );
        let mut svc = json!({"spec": {"ports": [
            {"name": "metrics", "port": 8080, "targetPort": 8080},
            {"name": "health", "port": 8081}
        ]}});
        strategic(
            &mut svc,
            &json!({"spec": {"ports": [
                {"port": 8080, "targetPort": "metrics"},
                {"port": 8081, "$patch": "delete"}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "metrics", "port": 8080, "targetPort": "metrics"}])
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..5).prop_map(Value::from),
            "[a-c]".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            proptest::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        /// Without lists or directives, strategic merge is exactly JSON merge.
        #[test]
        fn strategic_equals_merge_on_plain_maps(doc in arb_json(), p in arb_json()) {
            prop_assume!(p.is_object());
            let mut a = doc.clone();
            merge(&mut a, &p);
            let mut b = doc.clone();
            strategic(&mut b, &p).unwrap();
            // merge() turns a non-object document into an object first, like strategic().
            prop_assert_eq!(a, b);
        }

        /// Merge patches are idempotent.
        #[test]
        fn merge_is_idempotent(doc in arb_json(), p in arb_json()) {
            let mut once = doc.clone();
            merge(&mut once, &p);
            let mut twice = once.clone();
            merge(&mut twice, &p);
            prop_assert_eq!(once, twice);
        }
    }
}
