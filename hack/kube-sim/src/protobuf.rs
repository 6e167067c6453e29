//! Just enough of the Kubernetes protobuf encoding to read the request bodies kubectl's
//! generator commands send for built-in types (`kubectl create namespace|configmap|secret|
//! serviceaccount`). Answers are always JSON, which those clients accept.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message whose `raw` field holds
//! the object. Each object type is described by a small field table, not by generated code.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Reason};

/// How one protobuf field maps to JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Message(&'static [Field]),
    /// `metav1.Time` (seconds, nanos) as RFC 3339.
    Time,
    MapStr,
    MapBytes,
    RepeatedStr,
    RepeatedMessage(&'static [Field]),
}

type Field = (u64, &'static str, Kind);

const OWNER_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::MapStr),
    (12, "annotations", Kind::MapStr),
    (13, "ownerReferences", Kind::RepeatedMessage(OWNER_REF)),
    (14, "finalizers", Kind::RepeatedStr),
];

const LOCAL_REF: &[Field] = &[(1, "name", Kind::Str)];
const OBJECT_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "namespace", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "data", Kind::MapStr),
    (3, "binaryData", Kind::MapBytes),
    (4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "data", Kind::MapBytes),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::MapStr),
    (5, "immutable", Kind::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", Kind::RepeatedStr)];
const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(NAMESPACE_SPEC)),
];

const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "secrets", Kind::RepeatedMessage(OBJECT_REF)),
    (3, "imagePullSecrets", Kind::RepeatedMessage(LOCAL_REF)),
    (4, "automountServiceAccountToken", Kind::Bool),
];

const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(
        Reason::BadRequest,
        format!("invalid protobuf body: {}", msg.into()),
    )
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let n = usize::try_from(self.varint()?).map_err(|_| bad("length too large"))?;
        if n > self.buf.len() {
            return Err(bad("truncated field"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    /// The next field: number and value (varint or length-delimited bytes).
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => Wire::Bytes(self.bytes()?),
            1 => {
                self.skip(8)?;
                Wire::Skipped
            }
            5 => {
                self.skip(4)?;
                Wire::Skipped
            }
            t => return Err(bad(format!("unsupported wire type {t}"))),
        };
        Ok(Some((key >> 3, wire)))
    }

    fn skip(&mut self, n: usize) -> Result<(), ApiError> {
        if n > self.buf.len() {
            return Err(bad("truncated fixed field"));
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string field is not UTF-8"))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut r = Reader { buf: b };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, Wire::Bytes(b)) => k = text(b)?,
            (2, Wire::Bytes(b)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Wire::Bytes(b)) => v = json!(text(b)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn decode(buf: &[u8], schema: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut r = Reader { buf };
    while let Some((n, wire)) = r.field()? {
        let Some(&(_, name, kind)) = schema.iter().find(|(num, _, _)| *num == n) else {
            continue;
        };
        let push = |out: &mut Map<String, Value>, v: Value| {
            if let Value::Array(items) = out.entry(name).or_insert_with(|| json!([])) {
                items.push(v);
            }
        };
        match (kind, wire) {
            (Kind::Str, Wire::Bytes(b)) => {
                out.insert(name.into(), json!(text(b)?));
            }
            (Kind::Bool, Wire::Varint(v)) => {
                out.insert(name.into(), json!(v != 0));
            }
            (Kind::Int, Wire::Varint(v)) => {
                out.insert(name.into(), json!(v as i64));
            }
            (Kind::Message(s), Wire::Bytes(b)) => {
                out.insert(name.into(), Value::Object(decode(b, s)?));
            }
            (Kind::Time, Wire::Bytes(b)) => {
                let t = decode(b, &[(1, "seconds", Kind::Int)])?;
                let secs = t.get("seconds").and_then(Value::as_i64).unwrap_or(0);
                let ts = jiff::Timestamp::from_second(secs).map_err(|e| bad(e.to_string()))?;
                out.insert(
                    name.into(),
                    json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
            }
            (Kind::MapStr | Kind::MapBytes, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b, matches!(kind, Kind::MapBytes))?;
                if let Value::Object(m) = out.entry(name).or_insert_with(|| json!({})) {
                    m.insert(k, v);
                }
            }
            (Kind::RepeatedStr, Wire::Bytes(b)) => push(&mut out, json!(text(b)?)),
            (Kind::RepeatedMessage(s), Wire::Bytes(b)) => {
                push(&mut out, Value::Object(decode(b, s)?));
            }
            _ => return Err(bad(format!("field {name} has an unexpected wire type"))),
        }
    }
    Ok(out)
}

/// Whether a Content-Type is the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().map(str::trim) == Some("application/vnd.kubernetes.protobuf")
}

/// Decodes a protobuf request body into the JSON object it stands for. Only the built-in
/// types kubectl's generators create are known; anything else is a 415.
pub fn to_json(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("missing the k8s\\0 prefix"))?;
    let mut r = Reader { buf: rest };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, Wire::Bytes(b)) => {
                let tm = decode(b, TYPE_META)?;
                let s = |k: &str| tm.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                api_version = s("apiVersion");
                kind = s("kind");
            }
            (2, Wire::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let raw = raw.ok_or_else(|| bad("no object in the envelope"))?;
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "kube-sim reads protobuf only for ConfigMap, Secret, Namespace and ServiceAccount, not {api_version}/{kind}: send JSON (kubectl create -f / apply -f)"
                ),
            ));
        }
    };
    let mut obj = decode(raw, schema)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field_bytes(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        field_bytes(1, k.as_bytes(), &mut e);
        field_bytes(2, v, &mut e);
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field_bytes(1, api_version.as_bytes(), &mut tm);
        field_bytes(2, kind.as_bytes(), &mut tm);
        let mut out = b"k8s\0".to_vec();
        field_bytes(1, &tm, &mut out);
        field_bytes(2, raw, &mut out);
        field_bytes(4, b"application/vnd.kubernetes.protobuf", &mut out);
        out
    }

    #[test]
    fn decodes_a_configmap_like_kubectl_sends_it() {
        let mut meta = Vec::new();
        field_bytes(1, b"cm1", &mut meta);
        field_bytes(11, &entry("app", b"x"), &mut meta);
        field_bytes(14, b"f1", &mut meta);
        let mut cm = Vec::new();
        field_bytes(1, &meta, &mut cm);
        field_bytes(2, &entry("a", b"b"), &mut cm);
        field_bytes(3, &entry("bin", &[0, 1]), &mut cm);
        let v = to_json(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "labels": {"app": "x"}, "finalizers": ["f1"]},
                   "data": {"a": "b"}, "binaryData": {"bin": "AAE="}})
        );
    }

    #[test]
    fn secrets_keep_bytes_as_base64_and_unknown_kinds_are_415() {
        let mut s = Vec::new();
        field_bytes(2, &entry("k", b"v"), &mut s);
        field_bytes(3, b"Opaque", &mut s);
        let v = to_json(&envelope("v1", "Secret", &s)).unwrap();
        assert_eq!(v["data"]["k"], "dg==");
        assert_eq!(v["type"], "Opaque");
        let e = to_json(&envelope("apps/v1", "Deployment", &[])).unwrap_err();
        assert_eq!(e.code(), 415);
        assert_eq!(to_json(b"nope").unwrap_err().code(), 400);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut body = b"k8s\0".to_vec();
            body.extend(tail);
            let _ = to_json(&body);
        }
    }
}
