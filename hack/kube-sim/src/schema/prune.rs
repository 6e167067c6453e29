//! Structural pruning and defaulting (apiextensions-apiserver's `structural/pruning` and
//! `structural/defaulting`).

use serde_json::{Map, Value};

use super::{OBJECT_META_FIELDS, Structural, join};

impl Structural {
    /// Drops the fields the schema does not declare, as the API server does when it decodes
    /// a custom resource (`self` is the resource's root schema). Returns the dropped fields'
    /// paths (`spec.foo`, `spec.ports[0].bar`) in document order, for field validation.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune(obj, Some(self), "", &mut pruned, true);
        pruned
    }

    /// Removes `null`s the schema does not allow and has no default for, then fills in
    /// defaults, as the API server does to every custom resource it decodes.
    pub fn apply_defaults(&self, obj: &mut Value) {
        prune_nulls(obj, self);
        default(obj, self);
    }
}

/// `root`: the resource root, which keeps apiVersion, kind and metadata like an embedded
/// resource.
fn prune(x: &mut Value, s: Option<&Structural>, path: &str, pruned: &mut Vec<String>, root: bool) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(x, s, path, pruned, root);
        return;
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                pruned.extend(m.keys().map(|k| join(path, k)));
                m.clear();
                return;
            };
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || s.embedded_resource) && keeps_meta_field(&k, m, path, pruned) {
                    continue;
                }
                let child = join(path, &k);
                match s.child(&k) {
                    Some(c) => {
                        if let Some(v) = m.get_mut(&k) {
                            prune(v, Some(c), &child, pruned, false);
                        }
                    }
                    None => {
                        m.remove(&k);
                        pruned.push(child);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                prune(v, item_schema, &format!("{path}[{i}]"), pruned, false);
            }
        }
        _ => {}
    }
}

/// `x-kubernetes-preserve-unknown-fields`: keep unknown fields, prune below declared ones.
fn skip_prune(x: &mut Value, s: &Structural, path: &str, pruned: &mut Vec<String>, root: bool) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || s.embedded_resource)
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                if let (Some(c), Some(v)) = (s.child(&k), m.get_mut(&k)) {
                    prune(v, Some(c), &join(path, &k), pruned, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.items.as_deref() {
                for (i, v) in items.iter_mut().enumerate() {
                    skip_prune(v, item, &format!("{path}[{i}]"), pruned, false);
                }
            }
        }
        _ => {}
    }
}

/// apiVersion/kind (strings) and metadata of an embedded resource or the root stay; unknown
/// fields inside metadata go, as `ObjectMeta` cannot hold them.
fn keeps_meta_field(
    k: &str,
    m: &mut Map<String, Value>,
    path: &str,
    pruned: &mut Vec<String>,
) -> bool {
    match k {
        "apiVersion" | "kind" => m.get(k).is_some_and(Value::is_string),
        "metadata" => {
            if let Some(Value::Object(meta)) = m.get_mut(k) {
                let unknown: Vec<String> = meta
                    .keys()
                    .filter(|f| !OBJECT_META_FIELDS.contains(&f.as_str()))
                    .cloned()
                    .collect();
                for f in unknown {
                    meta.remove(&f);
                    pruned.push(join(&join(path, "metadata"), &f));
                }
                true
            } else {
                false
            }
        }
        _ => false,
    }
}

fn prune_nulls(x: &mut Value, s: &Structural) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let Some(c) = s.child(&k) else { continue };
                if m.get(&k).is_some_and(Value::is_null) {
                    if !c.nullable && c.default.is_none() {
                        m.remove(&k);
                    }
                } else if let Some(v) = m.get_mut(&k) {
                    prune_nulls(v, c);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.items.as_deref() {
                for v in items {
                    prune_nulls(v, item);
                }
            }
        }
        _ => {}
    }
}

fn default(x: &mut Value, s: &Structural) {
    match x {
        Value::Object(m) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                let missing = match m.get(k) {
                    None => true,
                    Some(v) => v.is_null() && !prop.nullable,
                };
                if missing {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default(v, prop);
                } else if let Some(extra) = s.additional.as_deref() {
                    if v.is_null()
                        && !extra.nullable
                        && let Some(d) = &extra.default
                    {
                        *v = d.clone();
                    }
                    default(v, extra);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.items.as_deref() {
                for v in items {
                    if v.is_null()
                        && !item.nullable
                        && let Some(d) = &item.default
                    {
                        *v = d.clone();
                    }
                    default(v, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Structural {
        Structural::compile(
            &json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object", "properties": {
                        "known": {"type": "string"},
                        "mode": {"type": "string", "default": "fast"},
                        "ports": {"type": "array", "items": {"type": "object",
                            "properties": {"port": {"type": "integer"},
                                           "protocol": {"type": "string", "default": "TCP"}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }}
                }
            }),
            "openAPIV3Schema",
        )
        .unwrap()
    }

    #[test]
    fn prunes_unknown_fields_but_not_preserved_or_meta() {
        let mut o = json!({
            "apiVersion": "x/v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"l": "v"}, "app": "stray"},
            "spec": {"known": "k", "unknown": 1,
                     "ports": [{"port": 1, "extra": true}],
                     "free": {"anything": {"goes": 1}, "typed": {"a": "x", "b": "gone"}},
                     "labels": {"any": "key"}},
            "top": 1
        });
        let pruned = schema().prune(&mut o);
        assert_eq!(
            pruned,
            [
                "metadata.app",
                "spec.free.typed.b",
                "spec.ports[0].extra",
                "spec.unknown",
                "top"
            ]
        );
        assert_eq!(o["spec"]["free"]["anything"]["goes"], 1);
        assert_eq!(o["spec"]["labels"]["any"], "key");
        assert_eq!(o["metadata"], json!({"name": "a", "labels": {"l": "v"}}));
    }

    #[test]
    fn defaults_fill_missing_and_null_fields() {
        let mut o = json!({"spec": {"known": null, "mode": null, "ports": [{"port": 1}]}});
        schema().apply_defaults(&mut o);
        assert_eq!(
            o,
            json!({"spec": {"mode": "fast", "ports": [{"port": 1, "protocol": "TCP"}]}})
        );
    }
}
