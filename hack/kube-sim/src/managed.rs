//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A simplified model of the API server's structured-merge-diff: the owned units are leaf
//! fields (scalars, lists — lists are atomic — and empty maps). Updates transfer ownership of
//! the fields they change to their manager; an apply merges the applied configuration, removes
//! fields the manager applied before but no longer applies (unless someone else owns them),
//! and reports conflicts with other managers' fields unless forced.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// A path of map keys from the object root to a leaf.
pub type FieldPath = Vec<String>;

/// A set of owned leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// `Apply` or `Update`, as in `managedFields[].operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// Operation kind.
    pub operation: Operation,
    /// apiVersion the fields were written in.
    pub api_version: String,
    /// Last time this entry changed.
    pub time: String,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Which part of the object an operation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (resources without a status subresource).
    Whole,
    /// Everything except `status` (main endpoint of a resource with a status subresource).
    MainOnly,
    /// Only `status` (the status subresource).
    StatusOnly,
}

impl Scope {
    fn subresource(self) -> Option<String> {
        (self == Scope::StatusOnly).then(|| "status".to_string())
    }
}

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

fn in_scope(path: &[String], scope: Scope) -> bool {
    match path.first().map(String::as_str) {
        Some("apiVersion" | "kind") => false,
        Some("metadata") => {
            scope != Scope::StatusOnly
                && !path
                    .get(1)
                    .is_some_and(|f| IGNORED_META.contains(&f.as_str()))
        }
        Some("status") => scope != Scope::MainOnly,
        Some(_) => scope != Scope::StatusOnly,
        None => false,
    }
}

/// Leaf paths of an object with their values, limited to `scope`.
pub fn leaves(obj: &Value, scope: Scope) -> BTreeMap<FieldPath, Value> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeMap<FieldPath, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(obj, &mut Vec::new(), &mut out);
    out.retain(|p, _| in_scope(p, scope));
    out
}

/// Encodes a field set as `fieldsV1` (`{"f:spec": {"f:x": {}}}`).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            cur = entry.as_object_mut().expect("made an object above");
        }
    }
    Value::Object(root)
}

/// Decodes `fieldsV1` into leaf paths (inner nodes without children count as leaves).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, child) in children {
            path.push(k[2..].to_string());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Reads `metadata.managedFields`.
pub fn read_entries(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(ManagedEntry {
                manager: s("manager")?,
                operation: if s("operation").as_deref() == Some("Apply") {
                    Operation::Apply
                } else {
                    Operation::Update
                },
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `metadata.managedFields` (removed when empty).
pub fn write_entries(obj: &mut Value, entries: &[ManagedEntry]) {
    let meta = crate::object::meta_mut(obj);
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": match e.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = Value::String(sub.clone());
            }
            v
        })
        .collect();
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Records an Update by `manager` that turned `old` into `new`: changed and added fields
/// become the manager's, removed fields leave every entry.
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    now: &str,
) {
    let before = old.map(|o| leaves(o, scope)).unwrap_or_default();
    let after = leaves(new, scope);
    let changed: FieldSet = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: FieldSet = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    let sub = scope.subresource();
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !removed.contains(p) && !changed.contains(p));
    }
    // Paths that turned from a leaf into a map (or back) leave stale prefixes behind.
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !in_scope(p, scope) || after.contains_key(p));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == Operation::Update && e.subresource == sub
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: sub,
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field, as `.spec.x`.
    pub field: String,
}

/// The result of a server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The new object.
    pub object: Value,
    /// The new managedFields entries.
    pub entries: Vec<ManagedEntry>,
}

/// Merges `applied` into `live` for `manager`. Conflicts are returned unless `force`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: &Value,
    applied: &Value,
    mut entries: Vec<ManagedEntry>,
    manager: &str,
    api_version: &str,
    force: bool,
    scope: Scope,
    now: &str,
) -> Result<Applied, Vec<Conflict>> {
    let sub = scope.subresource();
    let applied_leaves = leaves(applied, scope);
    let live_leaves = leaves(live, scope);
    let applied_set: FieldSet = applied_leaves.keys().cloned().collect();

    let mut conflicts = Vec::new();
    for (path, value) in &applied_leaves {
        let differs = live_leaves.get(path).is_some_and(|v| v != value);
        if !differs {
            continue;
        }
        for e in &entries {
            let same = e.manager == manager && e.operation == Operation::Apply;
            if !same && e.subresource == sub && e.fields.contains(path) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    field: format!(".{}", path.join(".")),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        let taken: FieldSet = conflicts
            .iter()
            .map(|c| c.field[1..].split('.').map(str::to_string).collect())
            .collect();
        for e in entries.iter_mut() {
            if !(e.manager == manager && e.operation == Operation::Apply) {
                e.fields.retain(|p| !taken.contains(p));
            }
        }
    }

    let previous: FieldSet = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == Operation::Apply && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut object = live.clone();
    merge_applied(&mut object, applied, scope);
    for path in previous.difference(&applied_set) {
        let owned_by_other = entries.iter().any(|e| {
            !(e.manager == manager && e.operation == Operation::Apply) && e.fields.contains(path)
        });
        if !owned_by_other {
            remove_path(&mut object, path);
        }
    }
    // Fields that vanished leave every entry.
    let after = leaves(&object, scope);
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !in_scope(p, scope) || after.contains_key(p));
    }
    entries.retain(|e| {
        !(e.manager == manager && e.operation == Operation::Apply && e.subresource == sub)
    });
    let applied_owned: FieldSet = applied_set
        .into_iter()
        .filter(|p| after.contains_key(p))
        .collect();
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: sub,
        fields: applied_owned,
    });
    entries.retain(|e| !e.fields.is_empty());
    Ok(Applied { object, entries })
}

/// Merges an applied configuration: maps merge, lists and scalars replace, `null` removes.
fn merge_applied(doc: &mut Value, applied: &Value, scope: Scope) {
    fn rec(d: &mut Value, a: &Value, path: &mut FieldPath, scope: Scope) {
        let Value::Object(am) = a else {
            *d = a.clone();
            return;
        };
        if !d.is_object() {
            *d = Value::Object(Map::new());
        }
        let dm = d.as_object_mut().expect("made an object above");
        for (k, v) in am {
            path.push(k.clone());
            let top_level_skip =
                path.len() == 1 && !matches!(k.as_str(), "metadata") && !in_scope(path, scope);
            let meta_skip = path.len() == 2 && path[0] == "metadata" && !in_scope(path, scope);
            if !(top_level_skip || meta_skip) {
                if v.is_null() {
                    dm.remove(k);
                } else if v.is_object() && dm.get(k).is_some_and(Value::is_object) {
                    rec(dm.get_mut(k).expect("checked above"), v, path, scope);
                } else if v.is_object() {
                    let mut fresh = Value::Object(Map::new());
                    rec(&mut fresh, v, path, scope);
                    dm.insert(k.clone(), fresh);
                } else {
                    dm.insert(k.clone(), v.clone());
                }
            }
            path.pop();
        }
    }
    rec(doc, applied, &mut Vec::new(), scope);
}

/// Removes a leaf and then any maps it leaves empty.
fn remove_path(doc: &mut Value, path: &[String]) {
    fn rec(v: &mut Value, path: &[String]) {
        let Some(m) = v.as_object_mut() else { return };
        if path.len() == 1 {
            m.remove(&path[0]);
            return;
        }
        if let Some(child) = m.get_mut(&path[0]) {
            rec(child, &path[1..]);
            if child.as_object().is_some_and(Map::is_empty) {
                m.remove(&path[0]);
            }
        }
    }
    rec(doc, path);
}

/// The message of a 409 apply conflict, worded like the API server's.
pub fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "conflict" } else { "conflicts" };
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {api_version}: {}",
                c.manager, c.field
            )
        })
        .collect();
    if n == 1 {
        format!("Apply failed with 1 conflict: {}", list[0])
    } else {
        format!("Apply failed with {n} {plural}: {}", list.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn lease(holder: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "l"}, "spec": {"holderIdentity": holder}})
    }

    #[test]
    fn apply_conflicts_with_another_managers_field_unless_forced() {
        let live = json!({"metadata": {"name": "l"}});
        let a = apply(
            &live,
            &lease("a"),
            vec![],
            "a",
            "v1",
            false,
            Scope::Whole,
            NOW,
        )
        .unwrap();
        let err = apply(
            &a.object,
            &lease("b"),
            a.entries.clone(),
            "b",
            "v1",
            false,
            Scope::Whole,
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "a".into(),
                field: ".spec.holderIdentity".into()
            }]
        );
        // Same value: shared ownership, no conflict.
        let shared = apply(
            &a.object,
            &lease("a"),
            a.entries.clone(),
            "b",
            "v1",
            false,
            Scope::Whole,
            NOW,
        )
        .unwrap();
        assert_eq!(shared.entries.len(), 2);
        let forced = apply(
            &a.object,
            &lease("b"),
            a.entries,
            "b",
            "v1",
            true,
            Scope::Whole,
            NOW,
        )
        .unwrap();
        assert_eq!(forced.object["spec"]["holderIdentity"], "b");
        assert!(forced.entries.iter().all(|e| e.manager == "b"));
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying() {
        let live = json!({"metadata": {"name": "c"}});
        let first =
            json!({"metadata": {"name": "c", "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}});
        let a = apply(&live, &first, vec![], "m", "v1", false, Scope::Whole, NOW).unwrap();
        let second = json!({"metadata": {"name": "c", "labels": {"x": "1"}}});
        let b = apply(
            &a.object,
            &second,
            a.entries,
            "m",
            "v1",
            false,
            Scope::Whole,
            NOW,
        )
        .unwrap();
        assert_eq!(b.object["metadata"]["labels"], json!({"x": "1"}));
        assert!(b.object.get("data").is_none());
    }

    #[test]
    fn updates_take_ownership_and_removals_release_it() {
        let mut entries = Vec::new();
        let old = json!({"metadata": {"name": "l"}});
        let new = lease("a");
        record_update(&mut entries, Some(&old), &new, "a", "v1", Scope::Whole, NOW);
        assert_eq!(entries[0].operation, Operation::Update);
        let err = apply(
            &new,
            &lease("b"),
            entries.clone(),
            "b",
            "v1",
            false,
            Scope::Whole,
            NOW,
        );
        assert!(err.is_err(), "update ownership conflicts with apply");
        let released = json!({"metadata": {"name": "l"}, "spec": {}});
        record_update(
            &mut entries,
            Some(&new),
            &released,
            "a",
            "v1",
            Scope::Whole,
            NOW,
        );
        assert!(entries.iter().all(|e| {
            !e.fields
                .contains(&vec!["spec".to_string(), "holderIdentity".to_string()])
        }));
        assert!(
            apply(
                &released,
                &lease("b"),
                entries,
                "b",
                "v1",
                false,
                Scope::Whole,
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn status_scope_only_sees_status() {
        let live = json!({"spec": {"a": 1}, "status": {"s": 1}});
        let applied = json!({"spec": {"a": 2}, "status": {"s": 2}});
        let r = apply(
            &live,
            &applied,
            vec![],
            "m",
            "v1",
            false,
            Scope::StatusOnly,
            NOW,
        )
        .unwrap();
        assert_eq!(r.object, json!({"spec": {"a": 1}, "status": {"s": 2}}));
        assert_eq!(r.entries[0].subresource.as_deref(), Some("status"));
    }

    #[test]
    fn a_status_write_keeps_ownership_of_the_rest() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}});
        let mut entries = Vec::new();
        record_update(
            &mut entries,
            None,
            &obj,
            "creator",
            "v1",
            Scope::MainOnly,
            NOW,
        );
        let mut with_status = obj.clone();
        with_status["status"] = json!({"s": 1});
        record_update(
            &mut entries,
            Some(&obj),
            &with_status,
            "ctl",
            "v1",
            Scope::StatusOnly,
            NOW,
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].fields.len(), 2, "{entries:?}");
        let applied = apply(
            &with_status,
            &json!({"status": {"s": 2}}),
            entries,
            "ssa",
            "v1",
            true,
            Scope::StatusOnly,
            NOW,
        )
        .unwrap();
        assert!(
            applied
                .entries
                .iter()
                .any(|e| e.manager == "creator" && e.fields.len() == 2)
        );
    }

    #[test]
    fn managed_fields_round_trip_through_the_object() {
        let mut obj = lease("a");
        let mut entries = Vec::new();
        record_update(
            &mut entries,
            None,
            &obj.clone(),
            "a",
            "v1",
            Scope::Whole,
            NOW,
        );
        write_entries(&mut obj, &entries);
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:holderIdentity": {}}})
        );
        assert_eq!(read_entries(&obj), entries);
    }

    fn arb_obj() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            (0i64..3).prop_map(Value::from),
            "[x-z]".prop_map(Value::from)
        ];
        let inner = leaf.prop_recursive(2, 8, 3, |inner| {
            proptest::collection::btree_map("[a-c]", inner, 1..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        proptest::collection::btree_map("[a-c]", inner, 0..3)
            .prop_map(|m| json!({"spec": Value::Object(m.into_iter().collect())}))
    }

    proptest! {
        #[test]
        fn fields_v1_round_trips(obj in arb_obj()) {
            let set: FieldSet = leaves(&obj, Scope::Whole).into_keys().collect();
            prop_assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        }

        /// Applying a configuration makes every applied leaf hold the applied value.
        #[test]
        fn applied_values_win(live in arb_obj(), applied in arb_obj()) {
            let r = apply(&live, &applied, vec![], "m", "v1", false, Scope::Whole, NOW).unwrap();
            let got = leaves(&r.object, Scope::Whole);
            for (p, v) in leaves(&applied, Scope::Whole) {
                if p.len() == 1 { continue; } // {"spec": {}} is no value to hold
                prop_assert_eq!(got.get(&p), Some(&v));
            }
        }

        /// Re-applying the same configuration by the same manager changes nothing.
        #[test]
        fn apply_is_idempotent(live in arb_obj(), applied in arb_obj()) {
            let r1 = apply(&live, &applied, vec![], "m", "v1", false, Scope::Whole, NOW).unwrap();
            let r2 = apply(&r1.object, &applied, r1.entries.clone(), "m", "v1", false, Scope::Whole, NOW).unwrap();
            prop_assert_eq!(r1.object, r2.object);
            prop_assert_eq!(r1.entries, r2.entries);
        }
    }
}
