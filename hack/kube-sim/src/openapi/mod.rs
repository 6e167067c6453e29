//! The OpenAPI documents kubectl reads: `/openapi/v2` (JSON, or gnostic protobuf, which is
//! what kubectl asks for) and `/openapi/v3` (an index of `/openapi/v3/api/v1`,
//! `/openapi/v3/apis/<group>/<version>`). They describe every served kind — the built-ins
//! with their real schemas, each CRD version with its `openAPIV3Schema` — and every path
//! with its operations, including the `fieldValidation` parameter that tells kubectl the
//! server validates fields itself (so `kubectl create/apply` work without `--validate=false`
//! and `kubectl explain` works). Documents are built once per set of served resources.

mod builtin;
mod gnostic;
mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::resources::{ResourceInfo, ResourceTable};
use crate::store::Store;

pub use builtin::builtin;

/// Content type of `/openapi/v2` in protobuf.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The documents of one resource table, built on first use.
#[derive(Default)]
pub struct Cache(Mutex<Option<(u64, Arc<Docs>)>>);

/// Every document, serialized.
pub struct Docs {
    v2_json: Bytes,
    v2_protobuf: Bytes,
    v3_index: Bytes,
    /// `api/v1`, `apis/<group>/<version>` → document.
    v3: BTreeMap<String, Bytes>,
}

/// Answers an `/openapi/…` request: content type and body, or `None` (404).
pub fn serve(
    cache: &Cache,
    store: &Store,
    path: &str,
    accept: &str,
) -> Option<(&'static str, Bytes)> {
    let docs = docs(cache, store);
    let rest = path.trim_end_matches('/');
    match rest {
        "/openapi/v2" if accept.contains("protobuf") => {
            Some((V2_PROTOBUF, docs.v2_protobuf.clone()))
        }
        "/openapi/v2" => Some(("application/json", docs.v2_json.clone())),
        "/openapi/v3" => Some(("application/json", docs.v3_index.clone())),
        _ => {
            let gv = rest.strip_prefix("/openapi/v3/")?;
            docs.v3.get(gv).map(|d| ("application/json", d.clone()))
        }
    }
}

fn docs(cache: &Cache, store: &Store) -> Arc<Docs> {
    let generation = store.table_generation();
    let mut slot = cache.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((g, d)) = slot.as_ref()
        && *g == generation
    {
        return d.clone();
    }
    let docs = Arc::new(build(&store.table()));
    *slot = Some((generation, docs.clone()));
    docs
}

/// A served kind: its row and the names of its definitions.
struct Served {
    info: Arc<ResourceInfo>,
    definition: String,
    list: String,
}

/// Definition name of a custom kind: the group reversed (`tekton.dev` → `dev.tekton`).
fn custom_definition(info: &ResourceInfo) -> String {
    let group: Vec<&str> = info.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), info.version, info.kind)
}

fn gvk(info: &ResourceInfo, kind: &str) -> Value {
    json!({"group": info.group, "kind": kind, "version": info.version})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// All definitions (v3 form) and the served kinds.
fn definitions(table: &ResourceTable) -> (Map<String, Value>, Vec<Served>) {
    let b = builtin();
    let mut defs = b.definitions.clone();
    defs.insert(
        PATCH.into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    let mut served = Vec::new();
    for info in table.all() {
        let definition =
            if info.custom {
                let name = custom_definition(info);
                defs.insert(name.clone(), custom_schema(info));
                name
            } else {
                match b.kinds.iter().find(|k| {
                    k.group == info.group && k.version == info.version && k.kind == info.kind
                }) {
                    Some(k) => k.definition.clone(),
                    None => continue,
                }
            };
        let list = format!("{definition}List");
        defs.entry(list.clone()).or_insert_with(|| {
            json!({
                "description": format!("{} is a list of {}", info.list_kind, info.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "items": {"type": "array", "items": reference(&definition), "description": format!("List of {}.", info.plural)},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "metadata": {"allOf": [reference(LIST_META)], "description": "Standard list metadata."}
                },
                "x-kubernetes-group-version-kind": [gvk(info, &info.list_kind)]
            })
        });
        served.push(Served {
            info: info.clone(),
            definition,
            list,
        });
    }
    (defs, served)
}

/// The definition of a CRD version: its schema with `metadata` as ObjectMeta.
fn custom_schema(info: &ResourceInfo) -> Value {
    let mut s = info
        .schema
        .as_ref()
        .map(|v| (*v.openapi).clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let m = match s.as_object_mut() {
        Some(m) => m,
        None => return s,
    };
    let props = m
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(props) = props {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."}),
        );
        props.insert(
            "metadata".into(),
            json!({"allOf": [reference(OBJECT_META)], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
    }
    m.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([gvk(info, &info.kind)]),
    );
    s
}

/// The names `value` refers to, transitively, within `defs`.
fn closure(defs: &Map<String, Value>, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str)
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    out.push(name.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(d) = defs.get(&n) {
            refs(d, &mut todo);
        }
    }
    seen
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build(table: &ResourceTable) -> Docs {
    let (defs, served) = definitions(table);
    let info = json!({"title": "Kubernetes", "version": concat!("v1.33.0-kube-sim.", env!("CARGO_PKG_VERSION"))});

    // v3: one document per group version.
    let mut by_gv: BTreeMap<String, Vec<&Served>> = BTreeMap::new();
    for s in &served {
        by_gv
            .entry(gv_path(&s.info.group, &s.info.version))
            .or_default()
            .push(s);
    }
    let mut v3 = BTreeMap::new();
    let mut index = Map::new();
    for (gv, kinds) in &by_gv {
        let mut path_items = Map::new();
        for s in kinds {
            paths::v3(s, &mut path_items);
        }
        let roots = kinds
            .iter()
            .flat_map(|s| [s.definition.clone(), s.list.clone()])
            .chain([STATUS.into(), DELETE_OPTIONS.into(), PATCH.into()]);
        let schemas: Map<String, Value> = closure(&defs, roots)
            .into_iter()
            .filter_map(|n| defs.get(&n).map(|d| (n, d.clone())))
            .collect();
        let doc = json!({"openapi": "3.0.0", "info": info, "paths": path_items,
                         "components": {"schemas": schemas}});
        let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let hash = format!("{:016X}", fnv(&bytes));
        index.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
        );
        v3.insert(gv.clone(), bytes);
    }
    let v3_index = Bytes::from(serde_json::to_vec(&json!({"paths": index})).unwrap_or_default());

    // v2: one document with everything.
    let mut v2_paths = Map::new();
    for s in &served {
        paths::v2(s, &mut v2_paths);
    }
    let v2_defs: Map<String, Value> = defs.iter().map(|(k, v)| (k.clone(), to_v2(v))).collect();
    let v2 = json!({"swagger": "2.0", "info": info, "paths": v2_paths, "definitions": v2_defs});
    let v2_protobuf = Bytes::from(gnostic::encode(&v2));
    Docs {
        v2_json: Bytes::from(serde_json::to_vec(&v2).unwrap_or_default()),
        v2_protobuf,
        v3_index,
        v3,
    }
}

/// FNV-1a, for the `hash` of the v3 URLs (clients cache documents by URL).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A v3 schema as swagger 2.0 has it: `#/definitions/` references, a reference with
/// siblings instead of `allOf: [$ref]`, int-or-string as `string`/`int-or-string`, and
/// nothing v2 lacks (`nullable`, `anyOf`, `oneOf`, `not`).
pub fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                match k.as_str() {
                    "nullable" | "anyOf" | "oneOf" | "not" | "x-kubernetes-validations" => {}
                    "$ref" => {
                        let r = x
                            .as_str()
                            .unwrap_or("")
                            .replace("#/components/schemas/", "#/definitions/");
                        out.insert(k.clone(), Value::String(r));
                    }
                    "allOf" => match x.as_array().map(Vec::as_slice) {
                        Some([single]) if single.get("$ref").is_some() => {
                            if let Value::Object(r) = to_v2(single) {
                                out.extend(r);
                            }
                        }
                        _ => {
                            out.insert(k.clone(), to_v2(x));
                        }
                    },
                    "properties" => {
                        let props = x
                            .as_object()
                            .map(|p| p.iter().map(|(n, s)| (n.clone(), to_v2(s))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_v2(x));
                    }
                }
            }
            if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                out.insert("type".into(), json!("string"));
                out.insert("format".into(), json!("int-or-string"));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_cover_builtins_and_crds() {
        let mut table = ResourceTable::builtin();
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema":
                {"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}}}}}}]}});
        for r in crate::resources::rows_from_crd(&crd).unwrap() {
            table.insert(r);
        }
        let docs = build(&table);
        let index: Value = serde_json::from_slice(&docs.v3_index).unwrap();
        assert!(
            index["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        let widgets: Value = serde_json::from_slice(&docs.v3["apis/example.com/v1"]).unwrap();
        let w = &widgets["components"]["schemas"]["com.example.v1.Widget"];
        assert_eq!(w["x-kubernetes-group-version-kind"][0]["kind"], "Widget");
        assert!(widgets["components"]["schemas"].get(OBJECT_META).is_some());
        let patch = &widgets["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
            ["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        let core: Value = serde_json::from_slice(&docs.v3["api/v1"]).unwrap();
        let cm_patch = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert!(
            cm_patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
        let v2: Value = serde_json::from_slice(&docs.v2_json).unwrap();
        let size =
            &v2["definitions"]["com.example.v1.Widget"]["properties"]["spec"]["properties"]["size"];
        assert_eq!(
            (size["type"].as_str(), size["format"].as_str()),
            (Some("string"), Some("int-or-string"))
        );
        assert!(!docs.v2_protobuf.is_empty());
        // Every v2 reference resolves (kubectl's parser refuses unknown models).
        let text = String::from_utf8_lossy(&docs.v2_json).into_owned();
        for r in text.split("\"$ref\":\"#/definitions/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(v2["definitions"].get(name).is_some(), "{name} missing");
        }
    }
}
