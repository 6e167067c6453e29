//! `/openapi/v2` in protobuf: the `openapi.v2.Document` message of gnostic's
//! `OpenAPIv2.proto`, which is what kubectl's discovery client asks for (and only accepts).
//! Written from the JSON document; vendor extensions, defaults and enums travel as YAML text
//! (JSON is YAML), as gnostic's `Any.yaml` does.

use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn msg(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: Option<u64>) {
        if let Some(v) = v.filter(|v| *v != 0) {
            self.key(field, 0);
            self.varint(v);
        }
    }

    fn double(&mut self, field: u32, v: Option<f64>) {
        if let Some(v) = v {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `Any { yaml }` with the value as YAML (JSON) text.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &format!("{v}\n"));
    m
}

/// `repeated NamedAny vendor_extension` for every `x-` key.
fn vendor_extensions(out: &mut Msg, field: u32, m: &Map<String, Value>) {
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Msg::default();
        named.string(1, k);
        named.msg(2, any(v));
        out.msg(field, named);
    }
}

/// Encodes a swagger 2.0 document (JSON) as `openapi.v2.Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let empty = Map::new();
    let d = doc.as_object().unwrap_or(&empty);
    let mut out = Msg::default();
    out.string(1, s(d, "swagger"));
    if let Some(info) = d.get("info").and_then(Value::as_object) {
        let mut i = Msg::default();
        i.string(1, s(info, "title"));
        i.string(2, s(info, "version"));
        out.msg(2, i);
    }
    if let Some(paths) = d.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, item) in paths {
            let mut named = Msg::default();
            named.string(1, name);
            named.msg(2, path_item(item.as_object().unwrap_or(&empty)));
            p.msg(2, named);
        }
        out.msg(8, p);
    }
    if let Some(defs) = d.get("definitions").and_then(Value::as_object) {
        let mut ds = Msg::default();
        for (name, schema) in defs {
            let mut named = Msg::default();
            named.string(1, name);
            named.msg(2, self::schema(schema));
            ds.msg(1, named);
        }
        out.msg(9, ds);
    }
    out.0
}

fn path_item(item: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (field, verb) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(verb).and_then(Value::as_object) {
            m.msg(field, operation(op));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(9, parameter(p));
    }
    vendor_extensions(&mut m, 10, item);
    m
}

fn strings(out: &mut Msg, field: u32, v: Option<&Value>) {
    for x in v.and_then(Value::as_array).into_iter().flatten() {
        if let Some(x) = x.as_str() {
            out.string(field, x);
        }
    }
}

fn operation(op: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    strings(&mut m, 1, op.get("tags"));
    m.string(3, s(op, "description"));
    m.string(5, s(op, "operationId"));
    strings(&mut m, 6, op.get("produces"));
    strings(&mut m, 7, op.get("consumes"));
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(8, parameter(p));
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        let mut rs = Msg::default();
        for (code, r) in responses {
            let Some(r) = r.as_object() else { continue };
            let mut resp = Msg::default();
            resp.string(1, s(r, "description"));
            if let Some(sch) = r.get("schema") {
                let mut item = Msg::default();
                item.msg(1, schema(sch));
                resp.msg(2, item);
            }
            let mut value = Msg::default();
            value.msg(1, resp);
            let mut named = Msg::default();
            named.string(1, code);
            named.msg(2, value);
            rs.msg(1, named);
        }
        m.msg(9, rs);
    }
    strings(&mut m, 10, op.get("schemes"));
    vendor_extensions(&mut m, 13, op);
    m
}

/// `ParametersItem { parameter: Parameter { body_parameter | non_body_parameter } }`.
fn parameter(p: &Value) -> Msg {
    let empty = Map::new();
    let p = p.as_object().unwrap_or(&empty);
    let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
    let unique = p
        .get("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut param = Msg::default();
    match s(p, "in") {
        "body" => {
            let mut b = Msg::default();
            b.string(1, s(p, "description"));
            b.string(2, s(p, "name"));
            b.string(3, "body");
            b.bool(4, required);
            if let Some(sch) = p.get("schema") {
                b.msg(5, schema(sch));
            }
            param.msg(1, b);
        }
        "path" => {
            let mut sub = Msg::default();
            sub.bool(1, required);
            sub.string(2, "path");
            sub.string(3, s(p, "description"));
            sub.string(4, s(p, "name"));
            sub.string(5, s(p, "type"));
            sub.bool(19, unique);
            let mut nb = Msg::default();
            nb.msg(4, sub);
            param.msg(2, nb);
        }
        _ => {
            let mut sub = Msg::default();
            sub.bool(1, required);
            sub.string(2, "query");
            sub.string(3, s(p, "description"));
            sub.string(4, s(p, "name"));
            sub.string(6, s(p, "type"));
            sub.bool(20, unique);
            let mut nb = Msg::default();
            nb.msg(3, sub);
            param.msg(2, nb);
        }
    }
    let mut item = Msg::default();
    item.msg(1, param);
    item
}

fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    m.string(1, s(o, "$ref"));
    m.string(2, s(o, "format"));
    m.string(3, s(o, "title"));
    m.string(4, s(o, "description"));
    if let Some(d) = o.get("default") {
        m.msg(5, any(d));
    }
    m.double(7, o.get("maximum").and_then(Value::as_f64));
    m.bool(
        8,
        o.get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    m.double(9, o.get("minimum").and_then(Value::as_f64));
    m.bool(
        10,
        o.get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    m.int64(11, o.get("maxLength").and_then(Value::as_u64));
    m.int64(12, o.get("minLength").and_then(Value::as_u64));
    m.string(13, s(o, "pattern"));
    m.int64(14, o.get("maxItems").and_then(Value::as_u64));
    m.int64(15, o.get("minItems").and_then(Value::as_u64));
    m.bool(
        16,
        o.get("uniqueItems")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    m.int64(17, o.get("maxProperties").and_then(Value::as_u64));
    m.int64(18, o.get("minProperties").and_then(Value::as_u64));
    strings(&mut m, 19, o.get("required"));
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(20, any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.msg(21, a);
        }
        Some(sch @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.msg(1, schema(sch));
            m.msg(21, a);
        }
        _ => {}
    }
    match o.get("type") {
        Some(Value::String(t)) => {
            let mut t_ = Msg::default();
            t_.string(1, t);
            m.msg(22, t_);
        }
        Some(Value::Array(ts)) => {
            let mut t_ = Msg::default();
            strings(&mut t_, 1, Some(&Value::Array(ts.clone())));
            m.msg(22, t_);
        }
        _ => {}
    }
    if let Some(items) = o.get("items") {
        let mut i = Msg::default();
        i.msg(1, schema(items));
        m.msg(23, i);
    }
    for a in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(24, schema(a));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, sch) in props {
            let mut named = Msg::default();
            named.string(1, name);
            named.msg(2, schema(sch));
            p.msg(1, named);
        }
        m.msg(25, p);
    }
    m.bool(
        27,
        o.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
    );
    vendor_extensions(&mut m, 31, o);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_the_fields_kubectl_reads() {
        let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1"},
            "paths": {"/api/v1/x": {"patch": {"operationId": "p",
                "parameters": [{"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true}],
                "x-kubernetes-group-version-kind": {"group": "", "kind": "ConfigMap", "version": "v1"}}}},
            "definitions": {"a.B": {"type": "object", "properties": {"c": {"type": "string"}}}}});
        let pb = encode(&doc);
        // field 1 (swagger), wire type 2, length 3, "2.0"
        assert_eq!(&pb[..5], &[0x0a, 3, b'2', b'.', b'0']);
        let text = String::from_utf8_lossy(&pb);
        for needle in [
            "fieldValidation",
            "x-kubernetes-group-version-kind",
            "ConfigMap",
            "a.B",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
    }
}
