//! How objects are written back: plain JSON, `Table` (kubectl get) or
//! `PartialObjectMetadata` (metadata-only watches), chosen from the `Accept` header.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use crate::resources::ResourceInfo;
use crate::store::Stored;

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The object itself.
    Json,
    /// `meta.k8s.io/v1` Table.
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

/// Picks the first representation of `Accept` that kube-sim serves (JSON only, never
/// protobuf or YAML). `None` means nothing acceptable (406).
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let as_ = params.iter().find(|(k, _)| *k == "as").map(|(_, v)| *v);
        match media {
            "application/json" => match as_ {
                None => return Some(Format::Json),
                Some("Table") => return Some(Format::Table),
                Some("PartialObjectMetadata" | "PartialObjectMetadataList") => {
                    return Some(Format::Metadata);
                }
                Some(_) => continue,
            },
            "*/*" | "application/*" => return Some(Format::Json),
            _ => continue,
        }
    }
    None
}

/// The object's JSON as served in `info`'s version (same storage for all versions).
pub fn object_bytes(s: &Stored, info: &ResourceInfo) -> Bytes {
    if info.conversion != crate::resources::Conversion::None {
        let v = crate::convert::to_served(&s.value, info);
        return Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
    }
    let want = info.api_version();
    if s.value.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return s.json.clone();
    }
    let mut v = s.value.clone();
    v["apiVersion"] = json!(want);
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// `PartialObjectMetadata` of an object.
pub fn partial(s: &Stored) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": s.value.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Serializes one object in the requested format.
pub fn one(s: &Stored, info: &ResourceInfo, format: Format, include: &str) -> Bytes {
    match format {
        Format::Json => object_bytes(s, info),
        Format::Metadata => Bytes::from(serde_json::to_vec(&partial(s)).unwrap_or_default()),
        Format::Table => {
            let t = table(info, &[s], None, include);
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
        }
    }
}

/// Serializes a list in the requested format, reusing each object's cached bytes.
pub fn list(
    info: &ResourceInfo,
    items: &[Arc<Stored>],
    metadata: Value,
    format: Format,
    include: &str,
) -> Bytes {
    match format {
        Format::Table => {
            let refs: Vec<&Stored> = items.iter().map(Arc::as_ref).collect();
            Bytes::from(
                serde_json::to_vec(&table(info, &refs, Some(metadata), include))
                    .unwrap_or_default(),
            )
        }
        Format::Metadata => {
            let items: Vec<Value> = items.iter().map(|s| partial(s)).collect();
            let v = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                           "metadata": metadata, "items": items});
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Format::Json => {
            let head = json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": metadata});
            let head = serde_json::to_vec(&head).unwrap_or_default();
            let total: usize = items.iter().map(|s| s.json.len() + 1).sum();
            let mut out = BytesMut::with_capacity(head.len() + total + 16);
            // `{"kind":…,"metadata":{…}` + `,"items":[` + objects + `]}`
            out.put_slice(&head[..head.len() - 1]);
            out.put_slice(b",\"items\":[");
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&object_bytes(s, info));
            }
            out.put_slice(b"]}");
            out.freeze()
        }
    }
}

/// A `meta.k8s.io/v1` Table for `kubectl get`: Name, the resource's printer columns, Age.
pub fn table(
    info: &ResourceInfo,
    items: &[&Stored],
    metadata: Option<Value>,
    include: &str,
) -> Value {
    let mut columns = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for c in &info.printer_columns {
        columns.push(json!({"name": c.name, "type": c.type_, "format": "",
            "description": c.description, "priority": c.priority}));
    }
    columns.push(json!({"name": "Age", "type": "string", "format": "",
        "description": "CreationTimestamp of the object.", "priority": 0}));
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|s| {
            let served = crate::convert::to_served(&s.value, info);
            let mut cells = vec![json!(crate::object::name(&s.value))];
            for c in &info.printer_columns {
                let v = json_path(&served, &c.json_path);
                let cell = match (c.type_.as_str(), v) {
                    ("date", Some(Value::String(t))) => json!(age(&t, now)),
                    (_, Some(v)) => v,
                    (_, None) => Value::Null,
                };
                cells.push(cell);
            }
            let created = crate::object::meta_str(&s.value, "creationTimestamp");
            cells.push(json!(age(created, now)));
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => {
                    row["object"] =
                        serde_json::from_slice(&object_bytes(s, info)).unwrap_or(Value::Null);
                }
                _ => row["object"] = partial(s),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata.unwrap_or(json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Evaluates the simple JSONPath of printer columns: `.a.b`, `.a[0]`, `.a[*].b` and
/// `.a[?(@.k=="v")].b`. Several matches are joined with commas, like kubectl does.
pub fn json_path(obj: &Value, path: &str) -> Option<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current: Vec<Value> = vec![obj.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let sel = &r[..end];
            rest = &r[end + 1..];
            current = if sel == "*" {
                current
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .cloned()
                    .collect()
            } else if let Ok(i) = sel.parse::<usize>() {
                current.iter().filter_map(|v| v.get(i).cloned()).collect()
            } else if let Some(filter) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                current
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|item| {
                        item.get(field.trim())
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .is_some_and(|v| v == want)
                    })
                    .cloned()
                    .collect()
            } else {
                return None;
            };
        } else {
            return None;
        }
    }
    match current.len() {
        0 => None,
        1 => current.pop(),
        _ => Some(json!(
            current
                .iter()
                .map(|v| v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        )),
    }
}

/// kubectl's human-readable age of an RFC 3339 timestamp (`45s`, `3m12s`, `5h`, `2d`).
pub fn age(ts: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = now.as_second() - t.as_second();
    human_duration(secs)
}

/// The formatting rules of apimachinery's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_first_supported_clause() {
        assert_eq!(negotiate(None), Some(Format::Json));
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Some(Format::Table)
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Some(Format::Json)
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Some(Format::Metadata)
        );
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf")), None);
        assert_eq!(
            negotiate(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            )),
            Some(Format::Json)
        );
    }

    #[test]
    fn json_path_subset() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Succeeded", "status": "True", "reason": "Done"}]},
            "spec": {"params": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Succeeded\")].reason"),
            Some(json!("Done"))
        );
        assert_eq!(json_path(&o, ".spec.params[1].name"), Some(json!("b")));
        assert_eq!(json_path(&o, ".spec.params[*].name"), Some(json!("a,b")));
        assert_eq!(json_path(&o, ".missing.x"), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
