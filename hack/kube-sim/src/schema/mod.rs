//! CRD schemas applied the way the apiextensions API server applies them: structural pruning
//! of unknown fields (unless `x-kubernetes-preserve-unknown-fields`), defaults, and OpenAPI
//! v3 validation with the API server's field paths and messages ("status.podName: Required
//! value"), with ratcheting on updates (an unchanged invalid value does not fail a write).
//!
//! A schema is compiled once, when its CRD is written; writes then run
//! [`Structural::prune`], [`Structural::apply_defaults`] and [`Structural::validate`].
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

mod prune;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

pub use validate::FieldError;

/// The schema of one served CRD version: compiled for writes, as written for the OpenAPI
/// documents.
#[derive(Debug, Clone)]
pub struct VersionSchema {
    /// The compiled schema.
    pub structural: Arc<Structural>,
    /// `openAPIV3Schema` as the CRD has it.
    pub openapi: Arc<Value>,
}

impl VersionSchema {
    /// Pairs a compiled schema with its source.
    pub fn new(structural: Structural, openapi: Value) -> Self {
        VersionSchema {
            structural: Arc::new(structural),
            openapi: Arc::new(openapi),
        }
    }
}

impl PartialEq for VersionSchema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.openapi, &other.openapi) || self.openapi == other.openapi
    }
}

/// A compiled `openAPIV3Schema` node.
#[derive(Debug, Clone, Default)]
pub struct Structural {
    /// `type` (`object`, `array`, `string`, `integer`, `number`, `boolean`), if any.
    pub type_: Option<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Structural>,
    /// `additionalProperties` as a schema (`true` counts as an empty schema).
    pub additional: Option<Box<Structural>>,
    /// `items`.
    pub items: Option<Box<Structural>>,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`.
    pub enum_: Vec<Value>,
    /// `default`.
    pub default: Option<Value>,
    /// `nullable`.
    pub nullable: bool,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `format`.
    pub format: Option<String>,
    /// `pattern`, compiled.
    pub pattern: Option<Pattern>,
    /// `minimum`/`maximum` and whether they are exclusive.
    pub minimum: Option<(f64, bool)>,
    /// `maximum` and whether it is exclusive.
    pub maximum: Option<(f64, bool)>,
    /// `minLength`.
    pub min_length: Option<u64>,
    /// `maxLength`.
    pub max_length: Option<u64>,
    /// `minItems`.
    pub min_items: Option<u64>,
    /// `maxItems`.
    pub max_items: Option<u64>,
    /// `minProperties`.
    pub min_properties: Option<u64>,
    /// `maxProperties`.
    pub max_properties: Option<u64>,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`).
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `anyOf`, `allOf`, `oneOf` and `not` (value validations).
    pub any_of: Vec<Structural>,
    /// `allOf`.
    pub all_of: Vec<Structural>,
    /// `oneOf`.
    pub one_of: Vec<Structural>,
    /// `not`.
    pub not: Option<Box<Structural>>,
}

/// A `pattern` with its source text (for messages).
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as written in the schema.
    pub source: String,
    /// The compiled expression.
    pub regex: regex::Regex,
}

impl Structural {
    /// Compiles an `openAPIV3Schema`. Errors are `Invalid` causes with the schema path
    /// (`spec.versions[0].schema.openAPIV3Schema…`) below `path`.
    pub fn compile(schema: &Value, path: &str) -> Result<Structural, Vec<String>> {
        let mut causes = Vec::new();
        let s = compile_node(schema, path, &mut causes);
        if causes.is_empty() {
            Ok(s)
        } else {
            Err(causes)
        }
    }

    /// The schema a property of an object has: a declared property, else
    /// `additionalProperties`.
    pub fn child(&self, key: &str) -> Option<&Structural> {
        self.properties.get(key).or(self.additional.as_deref())
    }
}

fn compile_node(v: &Value, path: &str, causes: &mut Vec<String>) -> Structural {
    let Some(m) = v.as_object() else {
        return Structural::default();
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let b = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    let u = |k: &str| m.get(k).and_then(Value::as_u64);
    let f = |k: &str| m.get(k).and_then(Value::as_f64);
    let mut list = |k: &str| -> Vec<Structural> {
        m.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, x)| compile_node(x, &format!("{path}.{k}[{i}]"), causes))
                    .collect()
            })
            .unwrap_or_default()
    };
    let any_of = list("anyOf");
    let all_of = list("allOf");
    let one_of = list("oneOf");
    let pattern = s("pattern").and_then(|p| match regex::Regex::new(&p) {
        Ok(regex) => Some(Pattern { source: p, regex }),
        Err(e) => {
            causes.push(format!(
                "{path}.pattern: Invalid value: {p:?}: must be a valid regular expression, but isn't: {e}"
            ));
            None
        }
    });
    let properties = m
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        compile_node(v, &format!("{path}.properties[{k}]"), causes),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let additional = match m.get("additionalProperties") {
        Some(Value::Bool(true)) => Some(Box::new(Structural::default())),
        Some(v @ Value::Object(_)) => Some(Box::new(compile_node(
            v,
            &format!("{path}.additionalProperties"),
            causes,
        ))),
        _ => None,
    };
    let items = m
        .get("items")
        .map(|v| Box::new(compile_node(v, &format!("{path}.items"), causes)));
    let not = m
        .get("not")
        .map(|v| Box::new(compile_node(v, &format!("{path}.not"), causes)));
    Structural {
        type_: s("type"),
        properties,
        additional,
        items,
        required: m
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        enum_: m
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        default: m.get("default").cloned(),
        nullable: b("nullable"),
        preserve_unknown: b("x-kubernetes-preserve-unknown-fields"),
        int_or_string: b("x-kubernetes-int-or-string"),
        embedded_resource: b("x-kubernetes-embedded-resource"),
        format: s("format"),
        pattern,
        minimum: f("minimum").map(|x| (x, b("exclusiveMinimum"))),
        maximum: f("maximum").map(|x| (x, b("exclusiveMaximum"))),
        min_length: u("minLength"),
        max_length: u("maxLength"),
        min_items: u("minItems"),
        max_items: u("maxItems"),
        min_properties: u("minProperties"),
        max_properties: u("maxProperties"),
        list_type: s("x-kubernetes-list-type"),
        list_map_keys: m
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        any_of,
        all_of,
        one_of,
        not,
    }
}

/// The fields of `metadata` (`ObjectMeta`); anything else there is an unknown field.
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Appends `key` to a field path (`spec` + `params` → `spec.params`).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_and_reports_bad_patterns() {
        let s = Structural::compile(
            &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x+$"}},
                    "required": ["a"]}),
            "openAPIV3Schema",
        )
        .unwrap();
        assert_eq!(s.required, ["a"]);
        assert!(s.properties["a"].pattern.is_some());
        let err = Structural::compile(
            &json!({"properties": {"a": {"pattern": "(unclosed"}}}),
            "openAPIV3Schema",
        )
        .unwrap_err();
        assert!(
            err[0].starts_with("openAPIV3Schema.properties[a].pattern: Invalid value"),
            "{err:?}"
        );
    }
}
