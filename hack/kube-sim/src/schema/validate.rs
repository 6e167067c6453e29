//! OpenAPI v3 validation of custom resources, reported as the API server reports it:
//! kube-openapi's checks turned into `field.Error`s (`spec.x: Invalid value: "string":
//! spec.x in body must be of type integer: "string"`, `status.podName: Required value`).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Structural, join};

/// One validation failure: the field path and the rest of the API server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `status.podName`.
    pub field: String,
    /// `Required value`, `Invalid value: …`, `Unsupported value: …`.
    pub detail: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

impl Structural {
    /// Validates a whole custom resource. With `old` (an update), parts equal to the old
    /// object are not checked again (validation ratcheting, on by default since 1.30).
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate(obj, self, "", old, &mut errors);
        errors
    }
}

/// Go's `%q`/`%v` rendering of a value in `Invalid value: <v>`.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_matches(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        ("number", Value::Number(_)) => true,
        _ => false,
    }
}

fn invalid(errors: &mut Vec<FieldError>, path: &str, value: &Value, message: String) {
    errors.push(FieldError {
        field: path.to_string(),
        detail: format!("Invalid value: {}: {message}", render(value)),
    });
}

fn body(path: &str) -> String {
    if path.is_empty() {
        "body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn validate(
    v: &Value,
    s: &Structural,
    path: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    if v.is_null() {
        if !s.nullable && (s.type_.is_some() || s.int_or_string) {
            let want = if s.int_or_string {
                "integer,string"
            } else {
                s.type_.as_deref().unwrap_or("")
            };
            invalid(
                errors,
                path,
                &Value::String("null".into()),
                format!("{} must be of type {want}: \"null\"", body(path)),
            );
        }
        return;
    }
    if s.int_or_string {
        if !matches!(v, Value::String(_)) && !type_matches("integer", v) {
            let actual = Value::String(type_name(v).into());
            invalid(
                errors,
                path,
                &actual,
                format!(
                    "{} must be of type integer,string: \"{}\"",
                    body(path),
                    type_name(v)
                ),
            );
            return;
        }
    } else if let Some(t) = s.type_.as_deref()
        && !type_matches(t, v)
    {
        let actual = Value::String(type_name(v).into());
        invalid(
            errors,
            path,
            &actual,
            format!("{} must be of type {t}: \"{}\"", body(path), type_name(v)),
        );
        return;
    }
    if !s.enum_.is_empty() && !s.enum_.contains(v) {
        let supported: Vec<String> = s
            .enum_
            .iter()
            .map(|e| match e {
                Value::String(x) => format!("{x:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        errors.push(FieldError {
            field: path.to_string(),
            detail: format!(
                "Unsupported value: {}: supported values: {}",
                render(v),
                supported.join(", ")
            ),
        });
    }
    match v {
        Value::String(text) => validate_string(text, v, s, path, errors),
        Value::Number(n) => validate_number(n, v, s, path, errors),
        Value::Array(items) => validate_array(items, s, path, old, errors),
        Value::Object(m) => validate_object(m, s, path, old, errors),
        _ => {}
    }
    validate_combinators(v, s, path, errors);
}

fn validate_string(
    text: &str,
    v: &Value,
    s: &Structural,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let len = text.chars().count() as u64;
    if let Some(min) = s.min_length
        && len < min
    {
        invalid(
            errors,
            path,
            v,
            format!("{} should be at least {min} chars long", body(path)),
        );
    }
    if let Some(max) = s.max_length
        && len > max
    {
        errors.push(FieldError {
            field: path.to_string(),
            detail: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(p) = &s.pattern
        && !p.regex.is_match(text)
    {
        invalid(
            errors,
            path,
            v,
            format!("{} should match '{}'", body(path), p.source),
        );
    }
    if let Some(format) = s.format.as_deref()
        && !format_ok(format, text)
    {
        invalid(
            errors,
            path,
            v,
            format!("{} must be of type {format}: {text:?}", body(path)),
        );
    }
}

/// The formats the API server checks on strings (others are accepted as is).
fn format_ok(format: &str, text: &str) -> bool {
    use base64::Engine as _;
    match format {
        "date-time" => {
            text.parse::<jiff::Timestamp>().is_ok() || text.parse::<jiff::civil::DateTime>().is_ok()
        }
        "date" => text.parse::<jiff::civil::Date>().is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        "uuid" => {
            let hex: Vec<&str> = text.split('-').collect();
            hex.iter().map(|h| h.len()).eq([8, 4, 4, 4, 12])
                && hex.iter().all(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
        }
        _ => true,
    }
}

fn validate_number(
    n: &serde_json::Number,
    v: &Value,
    s: &Structural,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(x) = n.as_f64() else { return };
    if let Some((min, exclusive)) = s.minimum {
        let (bad, words) = if exclusive {
            (x <= min, "greater than")
        } else {
            (x < min, "greater than or equal to")
        };
        if bad {
            invalid(
                errors,
                path,
                v,
                format!("{} should be {words} {}", body(path), number(min)),
            );
        }
    }
    if let Some((max, exclusive)) = s.maximum {
        let (bad, words) = if exclusive {
            (x >= max, "less than")
        } else {
            (x > max, "less than or equal to")
        };
        if bad {
            invalid(
                errors,
                path,
                v,
                format!("{} should be {words} {}", body(path), number(max)),
            );
        }
    }
    let range = match s.format.as_deref() {
        Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((lo, hi)) = range
        && (x < lo || x > hi)
    {
        let format = s.format.as_deref().unwrap_or("");
        invalid(
            errors,
            path,
            v,
            format!(
                "{} must be of type {format}: {:?}",
                body(path),
                n.to_string()
            ),
        );
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn validate_array(
    items: &[Value],
    s: &Structural,
    path: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    let count = items.len() as u64;
    if let Some(min) = s.min_items
        && count < min
    {
        invalid(
            errors,
            path,
            &Value::from(count),
            format!("{} should have at least {min} items", body(path)),
        );
    }
    if let Some(max) = s.max_items
        && count > max
    {
        errors.push(FieldError {
            field: path.to_string(),
            detail: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    if let Some(item) = s.items.as_deref() {
        let old_items = old.and_then(Value::as_array);
        for (i, v) in items.iter().enumerate() {
            // Ratcheting correlates items of map lists by their keys.
            let prev = old_items.and_then(|olds| {
                (s.list_type.as_deref() == Some("map") && !s.list_map_keys.is_empty())
                    .then(|| olds.iter().find(|o| same_keys(o, v, &s.list_map_keys)))
                    .flatten()
            });
            validate(v, item, &format!("{path}[{i}]"), prev, errors);
        }
    }
    match s.list_type.as_deref() {
        Some("set") => {
            for (i, v) in items.iter().enumerate() {
                if items[..i].contains(v) {
                    errors.push(FieldError {
                        field: format!("{path}[{i}]"),
                        detail: format!("Duplicate value: {}", render(v)),
                    });
                }
            }
        }
        Some("map") if !s.list_map_keys.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                if items[..i].iter().any(|o| same_keys(o, v, &s.list_map_keys)) {
                    let mut keys = String::new();
                    for (n, k) in s.list_map_keys.iter().enumerate() {
                        if n > 0 {
                            keys.push_str(", ");
                        }
                        let _ = write!(keys, "{k:?}:{}", v.get(k).unwrap_or(&Value::Null));
                    }
                    errors.push(FieldError {
                        field: format!("{path}[{i}]"),
                        detail: format!("Duplicate value: map[string]interface {{}}{{{keys}}}"),
                    });
                }
            }
        }
        _ => {}
    }
}

fn same_keys(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| a.get(k) == b.get(k))
}

fn validate_object(
    m: &Map<String, Value>,
    s: &Structural,
    path: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    for r in &s.required {
        if !m.contains_key(r) {
            errors.push(FieldError {
                field: join(path, r),
                detail: "Required value".into(),
            });
        }
    }
    let count = m.len() as u64;
    if let Some(min) = s.min_properties
        && count < min
    {
        invalid(
            errors,
            path,
            &Value::from(count),
            format!("{} should have at least {min} properties", body(path)),
        );
    }
    if let Some(max) = s.max_properties
        && count > max
    {
        errors.push(FieldError {
            field: path.to_string(),
            detail: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    for (k, v) in m {
        // At the root, metadata is ObjectMeta, validated by the API server's own rules.
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(c) = s.child(k) {
            validate(v, c, &join(path, k), old.and_then(|o| o.get(k)), errors);
        }
    }
}

/// anyOf/allOf/oneOf/not: value validations over the same value.
fn validate_combinators(v: &Value, s: &Structural, path: &str, errors: &mut Vec<FieldError>) {
    let passes = |branch: &Structural| {
        let mut e = Vec::new();
        validate(v, branch, path, None, &mut e);
        e.is_empty()
    };
    if !s.all_of.is_empty() {
        for branch in &s.all_of {
            validate(v, branch, path, None, errors);
        }
    }
    // int-or-string's anyOf (integer | string) is what int_or_string already checked.
    if !s.any_of.is_empty() && !s.int_or_string && !s.any_of.iter().any(passes) {
        invalid(
            errors,
            path,
            v,
            format!("{} must validate at least one schema (anyOf)", body(path)),
        );
    }
    if !s.one_of.is_empty() {
        let n = s.one_of.iter().filter(|b| passes(b)).count();
        if n != 1 {
            invalid(
                errors,
                path,
                v,
                format!(
                    "{} must validate one and only one schema (oneOf)",
                    body(path)
                ),
            );
        }
    }
    if let Some(not) = s.not.as_deref()
        && passes(not)
    {
        invalid(
            errors,
            path,
            v,
            format!("{} must not validate the schema (not)", body(path)),
        );
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
                    "spec": {"type": "object", "properties": {
                        "retries": {"type": "integer"},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "at": {"type": "string", "format": "date-time"},
                        "qty": {"x-kubernetes-int-or-string": true,
                                "anyOf": [{"type": "integer"}, {"type": "string"}],
                                "pattern": "^[0-9]+(Gi|Mi)?$"},
                        "params": {"type": "array", "x-kubernetes-list-type": "map",
                                   "x-kubernetes-list-map-keys": ["name"],
                                   "items": {"type": "object", "required": ["name"],
                                             "properties": {"name": {"type": "string"}}}}
                    }},
                    "status": {"type": "object", "required": ["podName"],
                               "properties": {"podName": {"type": "string"}}}
                }
            }),
            "openAPIV3Schema",
        )
        .unwrap()
    }

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reports_like_the_api_server() {
        let o = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {"retries": "3", "mode": "c", "at": "yesterday", "qty": "4Gi",
                     "params": [{"name": "a"}, {"name": "a"}, {}]},
            "status": {}});
        assert_eq!(
            messages(schema().validate(&o, None)),
            [
                r#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#,
                r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#,
                "spec.params[2].name: Required value",
                r#"spec.params[1]: Duplicate value: map[string]interface {}{"name":"a"}"#,
                r#"spec.retries: Invalid value: "string": spec.retries in body must be of type integer: "string""#,
                "status.podName: Required value",
            ]
        );
        let ok =
            json!({"spec": {"qty": 3, "at": "2026-01-02T03:04:05Z"}, "status": {"podName": ""}});
        assert!(schema().validate(&ok, None).is_empty());
        let bad_qty = json!({"spec": {"qty": "lots"}});
        assert_eq!(
            messages(schema().validate(&bad_qty, None)),
            [
                r#"spec.qty: Invalid value: "lots": spec.qty in body should match '^[0-9]+(Gi|Mi)?$'"#
            ]
        );
    }

    #[test]
    fn unchanged_invalid_parts_ratchet() {
        let old = json!({"spec": {"retries": "x"}, "status": {}});
        let mut new = old.clone();
        new["spec"]["mode"] = json!("a");
        // spec changed, but spec.retries did not: only changed fields are checked.
        assert!(schema().validate(&new, Some(&old)).is_empty());
        new["status"] = json!({"other": 1});
        assert_eq!(
            messages(schema().validate(&new, Some(&old))),
            ["status.podName: Required value"]
        );
    }
}
