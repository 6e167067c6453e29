//! The patch formats of the API: JSON merge (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge (the algorithm of apimachinery's `strategicpatch`, in [`strategic`]).

use serde_json::Value;

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

mod gosort;
mod strategic;

pub use strategic::{ListStrategy, list_strategy, strategic};

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
        // New items come first, as on the API server.
        assert_eq!(d["metadata"]["finalizers"], json!(["b", "a"]));
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
            json!([{"name": "b", "containerPort": 81}, {"name": "a", "containerPort": 80}])
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
