//! Strategic merge patch, as `k8s.io/apimachinery/pkg/util/strategicpatch` applies it on the
//! API server (`StrategicMergeMapPatch`: parallel deletion lists merged, unmatched nulls
//! ignored).
//!
//! What the result looks like, not only what it contains, follows the real algorithm:
//! a merged list holds the patch's items first, in patch order, interleaved with the items
//! only the live object has, which keep their live order; `$setElementOrder/<list>` takes
//! precedence over both. Directives: `$patch: replace|delete` on maps and list items,
//! `$retainKeys`, `$deleteFromPrimitiveList/<list>` and `$setElementOrder/<list>`.
//!
//! The API server finds the merge strategy of a field in the Go struct tags of the type;
//! kube-sim knows the strategies of the types it serves by field name ([`list_strategy`]).

use serde_json::{Map, Value};

use super::gosort::slice_stable;
use crate::error::{ApiError, Reason};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// How strategic merge treats a list field (its `patchStrategy`/`patchMergeKey` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No merge strategy: the patch's list replaces the live one.
    Replace,
    /// `patchStrategy: merge` with `patchMergeKey`: items merge by that key.
    MergeKeyed(&'static str),
    /// `patchStrategy: merge` on a list of scalars: a union.
    MergePrimitive,
}

/// The merge strategy of list `field` of the built-in types kube-sim serves. `parent` is the
/// field holding the map the list is in: `ports` of a container merge by `containerPort`, a
/// Service's by `port`.
pub fn list_strategy(parent: &str, field: &str) -> ListStrategy {
    use ListStrategy::*;
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "resourceClaims"
        | "schedulingGates" => MergeKeyed("name"),
        // A PodSpec's merge by name; a ServiceAccount's (top level) are atomic.
        "imagePullSecrets" if !parent.is_empty() => MergeKeyed("name"),
        // A ServiceAccount's `secrets`.
        "secrets" if parent.is_empty() => MergeKeyed("name"),
        "volumeMounts" => MergeKeyed("mountPath"),
        "volumeDevices" => MergeKeyed("devicePath"),
        "ports" if is_container_list(parent) => MergeKeyed("containerPort"),
        "ports" => MergeKeyed("port"),
        "ownerReferences" => MergeKeyed("uid"),
        "conditions" => MergeKeyed("type"),
        "hostAliases" => MergeKeyed("ip"),
        "topologySpreadConstraints" => MergeKeyed("topologyKey"),
        "finalizers" => MergePrimitive,
        _ => Replace,
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(
        field,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

/// Applies a strategic merge patch to `doc`.
pub fn strategic(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    let original = doc.as_object().cloned().unwrap_or_default();
    *doc = Value::Object(merge_map(original, p.clone(), "")?);
    Ok(())
}

/// Most strategic merge errors are plain Go errors the API server does not turn into a
/// `Status`: 500 without a reason (`interpretStrategicMergePatchError` maps only a few).
fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::Unknown, message)
}

/// `mergepatch.ErrBadPatchFormatForRetainKeys`: 400.
fn bad_retain_keys() -> ApiError {
    ApiError::bad_request("invalid patch format of retainKeys")
}

/// `mergeMap`: merges `patch` into `original`; `parent` names the field holding them.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    parent: &str,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad(format!(
                "Unable to find a patch type for {directive} in the map {}",
                Value::Object(patch.clone())
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_orders(&mut original, &mut patch, parent)?;
    for (key, value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE) {
            Some(field) => (field.to_string(), true),
            None => (key, false),
        };
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(live) = original.remove(&key) else {
            // Like the API server: a field the live object lacks takes the patch's value
            // (a `$deleteFromPrimitiveList` of a missing list too), with its directives
            // resolved against nothing.
            let fresh = match value {
                Value::Object(m) => Value::Object(merge_map(Map::new(), m, &key)?),
                Value::Array(items) if !delete_list => Value::Array(strip_directives(items)),
                other => other,
            };
            original.insert(key, fresh);
            continue;
        };
        let merged = match (live, value) {
            (Value::Object(l), Value::Object(p)) => Value::Object(merge_map(l, p, &key)?),
            (Value::Array(l), Value::Array(p)) => Value::Array(merge_slice(
                l,
                p,
                list_strategy(parent, &key),
                &key,
                delete_list,
            )?),
            // A different type: the patch's value, its directives resolved against nothing.
            (_, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, &key)?),
            (_, value) => value,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A list the live object lacks: items that only carry a directive mean nothing there.
fn strip_directives(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .filter(|i| i.get(DIRECTIVE).is_none())
        .map(|i| match i {
            Value::Object(m) => Value::Object(merge_map(Map::new(), m, "").unwrap_or_default()),
            other => other,
        })
        .collect()
}

/// `$retainKeys`: every key the patch sets must be listed; live keys not listed go.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keep) = retain else {
        return Err(bad_retain_keys());
    };
    let listed = |k: &str| keep.iter().any(|x| x.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !listed(k) {
            return Err(bad_retain_keys());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: each `$setElementOrder/<list>` merges its list and orders the
/// result by the directive (precedence: `$setElementOrder`, then patch order, then live
/// order); the list is then done and leaves the patch.
fn merge_set_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    parent: &str,
) -> Result<(), ApiError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad(format!(
                "invalid patch: {directive} must be a list, got {order}"
            )));
        };
        let field = &directive[SET_ELEMENT_ORDER.len()..];
        let live = match original.get(field) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad(format!("{field}: expected a list, got {other}"))),
        };
        let patched = match patch.get(field) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad(format!("{field}: expected a list, got {other}"))),
        };
        let strategy = list_strategy(parent, field);
        let key = match strategy {
            ListStrategy::MergeKeyed(k) => Some(k),
            _ => None,
        };
        check_against_order(patched.as_deref().unwrap_or(&[]), &order, key)?;
        let merged = match (&live, &patched) {
            (Some(l), None) => l.clone(),
            (None, Some(p)) => p.clone(),
            (Some(l), Some(p)) => merge_slice(l.clone(), p.clone(), strategy, field, false)?,
            (None, None) => continue,
        };
        let live = live.unwrap_or_default();
        let kind = element_kind(&live, patched.as_deref().unwrap_or(&[]))?;
        let (in_order, server_only) = partition(merged, &order, key.filter(|_| kind == Kind::Map))?;
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &live,
            key.filter(|_| kind == Kind::Map),
        )?;
        original.insert(field.to_string(), Value::Array(ordered));
        patch.remove(field);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch's items appear in the directive, in its order.
fn check_against_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), ApiError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = patch
        .iter()
        .filter(|p| key.is_none() || p.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < kept.len() && oi < order.len() {
        if kept[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if key_equal(kept[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < kept.len() && oi >= order.len() {
        return Err(bad(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn key_equal(a: &Value, b: &Value, key: Option<&str>) -> Result<bool, ApiError> {
    match key {
        None => Ok(same(a, b)),
        Some(k) => {
            let (Some(x), Some(y)) = (a.get(k), b.get(k)) else {
                return Err(no_merge_key(if a.get(k).is_none() { a } else { b }, k));
            };
            Ok(same(x, y))
        }
    }
}

fn no_merge_key(item: &Value, key: &str) -> ApiError {
    bad(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// Go's `==` on decoded JSON: numbers compare as float64.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Scalar,
}

/// `sliceElementType`: every item of both lists has one type, and not a list.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Kind, ApiError> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let k = match v {
            Value::Object(_) => Kind::Map,
            Value::Array(_) => {
                return Err(ApiError::new(
                    Reason::Invalid,
                    "lists of lists are not supported",
                ));
            }
            _ => Kind::Scalar,
        };
        match kind {
            None => kind = Some((k, std::mem::discriminant(v))),
            Some((_, d)) if d != std::mem::discriminant(v) => {
                return Err(bad(format!(
                    "list element types are not identical: {}",
                    Value::Array(a.iter().chain(b).cloned().collect())
                )));
            }
            Some(_) => {}
        }
    }
    kind.map(|(k, _)| k)
        .ok_or_else(|| bad("no elements in any of the given slices"))
}

/// `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: ListStrategy,
    field: &str,
    delete_list: bool,
) -> Result<Vec<Value>, ApiError> {
    let key = match strategy {
        ListStrategy::Replace => return Ok(patch),
        ListStrategy::MergeKeyed(k) => Some(k),
        ListStrategy::MergePrimitive => None,
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, &patch)?;
    let (original, patch, merged) = if kind == Kind::Scalar {
        if delete_list {
            let mut kept = original;
            kept.retain(|x| !patch.iter().any(|d| same(x, d)));
            return Ok(kept);
        }
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| same(m, v)) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        let Some(key) = key else {
            return Err(bad(format!(
                "cannot merge lists without merge key for {field}"
            )));
        };
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let merged = merge_items(original.clone(), &patch, key, field)?;
        (original, patch, merged)
    };
    let key = key.filter(|_| kind == Kind::Map);
    let (from_patch, server_only) = partition(merged, &patch, key)?;
    normalize_element_order(from_patch, server_only, &patch, &original, key)
}

/// `mergeSliceWithSpecialElements`: `$patch: delete` items remove their live match,
/// `$patch: replace` makes the other patch items the whole list.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        match item.get(DIRECTIVE) {
            None => plain.push(item),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let id = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                    original.retain(|o| !o.get(key).is_some_and(|v| same(v, id)));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(bad("merging lists cannot yet be specified in the patch"));
                }
                _ => {
                    return Err(bad(format!(
                        "Unable to find a patch type for {d} in the map {item}"
                    )));
                }
            },
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((original, plain))
}

/// `mergeSliceWithoutSpecialElements`: patch items merge into their live match by key, or
/// are appended.
fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    field: &str,
) -> Result<Vec<Value>, ApiError> {
    for item in patch {
        let Value::Object(p) = item else {
            return Err(bad(format!("{field}: list items must be objects")));
        };
        let id = p.get(key).ok_or_else(|| no_merge_key(item, key))?;
        let found = original
            .iter()
            .position(|o| o.get(key).is_some_and(|v| same(v, id)));
        match found {
            Some(i) => {
                let live = match std::mem::take(&mut original[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(live, p.clone(), field)?);
            }
            None => original.push(item.clone()),
        }
    }
    Ok(original)
}

/// Splits `items` into those present in `by` and the rest, keeping their order.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for item in items {
        let found = match key {
            None => by.iter().any(|b| same(b, &item)),
            Some(k) => {
                let id = item.get(k).ok_or_else(|| no_merge_key(&item, k))?;
                by.iter().any(|b| b.get(k).is_some_and(|v| same(v, id)))
            }
        };
        if found {
            present.push(item);
        } else {
            rest.push(item);
        }
    }
    Ok((present, rest))
}

/// `index`: position of `item` in `list` by merge key (maps) or value (scalars).
fn index(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
        None => v.clone(),
    };
    let want = id(item);
    list.iter().position(|v| same(&id(v), &want))
}

/// `normalizeSliceOrder`: sorts `items` by their position in `order`; `$patch: delete`
/// items go last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let (mut items, deletes) = match key {
        Some(k) => {
            for v in items.iter().chain(order) {
                if !v.is_object() {
                    return Err(bad(format!("expected a map in the list, got {v}")));
                }
                if v.get(k).is_none() {
                    return Err(no_merge_key(v, k));
                }
            }
            items
                .into_iter()
                .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
        }
        None => (items, Vec::new()),
    };
    slice_stable(&mut items, |a, b| {
        match (index(order, a, key), index(order, b, key)) {
            (Some(i), Some(j)) => i < j,
            _ => true,
        }
    });
    items.extend(deletes);
    Ok(items)
}

/// `normalizeElementOrder`: patch items in `patch_order`, server-only items in
/// `server_order`, then merged so both keep their relative order.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let patch = normalize_slice_order(patch, patch_order, key)?;
    let server_only = normalize_slice_order(server_only, server_order, key)?;
    Ok(merge_sorted(server_only, patch, server_order, key))
}

/// `mergeSortedSlice`: inserts the server-only items (`left`) among the patch items
/// (`right`); a server-only item goes first only when both are in the live list and it came
/// first there.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, key), index(server_order, r, key)),
                (Some(i), Some(j)) if i < j
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(doc: Value, patch: Value) -> Value {
        let mut d = doc;
        strategic(&mut d, &patch).unwrap();
        d
    }

    fn ports(v: &Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().or(p["containerPort"].as_i64()).unwrap())
            .collect()
    }

    #[test]
    fn new_items_come_first_in_patch_order() {
        let d = apply(
            json!({"spec": {"ports": [{"port": 8080}]}}),
            json!({"spec": {"ports": [{"port": 8082}, {"port": 8081}]}}),
        );
        assert_eq!(ports(&d["spec"]["ports"]), vec![8082, 8081, 8080]);
        let d = apply(
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": ["b"]}}),
        );
        assert_eq!(d["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn patched_live_items_keep_their_live_place() {
        let live = json!({"spec": {"containers": [
            {"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let d = apply(
            live.clone(),
            json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d"}]}}),
        );
        let names: Vec<&str> = d["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(d["spec"]["containers"][2]["image"], "x");
        let d = apply(
            live,
            json!({"spec": {"containers": [{"name": "b", "image": "y"}, {"name": "x"}]}}),
        );
        let names: Vec<&str> = d["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "x", "c"]);
    }

    #[test]
    fn set_element_order_wins() {
        let d = apply(
            json!({"spec": {"ports": [{"port": 8080, "name": "m"}]}}),
            json!({"spec": {
                "$setElementOrder/ports": [{"port": 8080}, {"port": 8081}],
                "ports": [{"port": 8081, "name": "h"}]
            }}),
        );
        assert_eq!(ports(&d["spec"]["ports"]), vec![8080, 8081]);
        // A reorder without content changes.
        let d = apply(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}}),
        );
        assert_eq!(d["metadata"]["finalizers"], json!(["c", "a", "b"]));
        // A patch item missing from the directive is an error.
        let mut doc = json!({"spec": {"ports": [{"port": 1}]}});
        let err = strategic(
            &mut doc,
            &json!({"spec": {"$setElementOrder/ports": [{"port": 1}], "ports": [{"port": 2}]}}),
        )
        .unwrap_err();
        assert_eq!((err.code(), err.reason), (500, Reason::Unknown));
    }

    #[test]
    fn directives() {
        let d = apply(
            json!({"metadata": {"finalizers": ["a", "b"]},
                   "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "2"}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                   "spec": {"containers": [{"name": "y", "$patch": "delete"}, {"name": "x", "image": "3"}]}}),
        );
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            d["spec"]["containers"],
            json!([{"name": "x", "image": "3"}])
        );
        // `$patch: replace` in a list replaces the whole list.
        let d = apply(
            json!({"spec": {"volumes": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"volumes": [{"name": "c"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(d["spec"]["volumes"], json!([{"name": "c"}]));
        let d = apply(
            json!({"spec": {"a": 1, "b": 2}}),
            json!({"spec": {"$patch": "replace", "z": 1}}),
        );
        assert_eq!(d["spec"], json!({"z": 1}));
        let d = apply(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        // Lists without a merge strategy are replaced.
        let d = apply(
            json!({"spec": {"args": ["p"]}}),
            json!({"spec": {"args": ["q"]}}),
        );
        assert_eq!(d["spec"]["args"], json!(["q"]));
    }

    #[test]
    fn bad_directives_fail_with_the_api_servers_codes() {
        let mut d = json!({"spec": {"containers": [{"name": "x"}]}});
        for p in [
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"image": "no-name"}]}}),
            json!({"spec": {"$patch": "frobnicate"}}),
        ] {
            let err = strategic(&mut d, &p).unwrap_err();
            assert_eq!((err.code(), err.reason), (500, Reason::Unknown), "{p}");
        }
        let err = strategic(&mut d, &json!({"spec": {"$retainKeys": ["a"], "b": 1}})).unwrap_err();
        assert_eq!(
            (err.code(), err.message.as_str()),
            (400, "invalid patch format of retainKeys")
        );
        assert_eq!(
            d,
            json!({"spec": {"containers": [{"name": "x"}]}}),
            "unchanged on errors"
        );
    }
}
