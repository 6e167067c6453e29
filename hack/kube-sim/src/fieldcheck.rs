//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`): what a write does
//! with fields the type does not have and fields given twice. `Strict` refuses the write
//! (400 BadRequest naming every field), `Warn` (the default) writes and answers with a
//! `Warning: 299` header per field, `Ignore` drops them silently. Unknown fields are never
//! stored either way.

use std::sync::{Arc, Mutex, PoisonError};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// The `fieldValidation` directive of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields, keep the last of duplicates, say nothing.
    Ignore,
    /// Write, and warn about each unknown or duplicate field (the API server's default).
    #[default]
    Warn,
    /// Refuse the write when there is any.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter (absent or empty: `Warn`).
    pub fn parse(value: Option<&str>) -> ApiResult<Self> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Warnings of one request, sent back as `Warning` headers. Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Adds a warning.
    pub fn push(&self, text: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    /// The warnings so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How a write reports unknown and duplicate fields.
#[derive(Debug, Clone, Default)]
pub struct FieldCheck {
    /// The directive.
    pub mode: FieldValidation,
    /// Fields the request body gave twice (found while parsing it).
    pub duplicates: Vec<String>,
    /// Where `Warn` puts its warnings.
    pub warnings: Warnings,
}

/// What kind of write found the fields: the API server words the error per verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteVerb {
    /// POST or PUT (and the server's own writes).
    #[default]
    CreateOrUpdate,
    /// PATCH (JSON, merge or strategic).
    Patch,
    /// Server-side apply.
    Apply,
}

impl FieldCheck {
    /// Applies the directive to the unknown fields a write dropped (paths like `spec.foo`).
    pub fn report(
        &self,
        info: &ResourceInfo,
        unknown: &[String],
        verb: WriteVerb,
    ) -> ApiResult<()> {
        let problems: Vec<String> = self
            .duplicates
            .iter()
            .map(|f| format!("duplicate field {f:?}"))
            .chain(unknown.iter().map(|f| format!("unknown field {f:?}")))
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        match self.mode {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Warn => {
                for p in problems {
                    self.warnings.push(p);
                }
                Ok(())
            }
            FieldValidation::Strict => Err(ApiError::bad_request(match verb {
                WriteVerb::CreateOrUpdate => format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    problems.join(", "),
                    kind = info.kind,
                    version = info.version
                ),
                WriteVerb::Patch => format!("strict decoding error: {}", problems.join(", ")),
                WriteVerb::Apply => unknown
                    .iter()
                    .map(|f| format!(".{f}: field not declared in schema"))
                    .chain(
                        self.duplicates
                            .iter()
                            .map(|f| format!("duplicate field {f:?}")),
                    )
                    .collect::<Vec<_>>()
                    .join(", "),
            })),
        }
    }
}

/// Parses JSON like `serde_json::from_slice`, and also returns the paths of keys given more
/// than once in an object (the last one wins, as in Go).
pub fn parse_json_with_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let state = Parse::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Node(&state).deserialize(&mut de)?;
    de.end()?;
    Ok((value, state.duplicates.into_inner()))
}

/// A step of the path to the value being parsed.
enum Seg {
    Key(String),
    Index(usize),
}

/// The path being parsed (a stack, so keys are not copied into a path per value) and the
/// duplicates found.
#[derive(Default)]
struct Parse {
    path: std::cell::RefCell<Vec<Seg>>,
    duplicates: std::cell::RefCell<Vec<String>>,
}

impl Parse {
    fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.borrow().iter() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

struct Node<'a>(&'a Parse);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.0.path.borrow_mut().push(Seg::Index(items.len()));
            let next = seq.next_element_seed(Node(self.0));
            self.0.path.borrow_mut().pop();
            match next? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.0.path.borrow_mut().push(Seg::Key(key));
            let value = map.next_value_seed(Node(self.0));
            let popped = self.0.path.borrow_mut().pop();
            let Some(Seg::Key(key)) = popped else {
                return Err(serde::de::Error::custom("the parse path is out of step"));
            };
            let value = value?;
            if out.contains_key(&key) {
                self.0.path.borrow_mut().push(Seg::Key(key.clone()));
                let path = self.0.path();
                self.0.path.borrow_mut().pop();
                self.0.duplicates.borrow_mut().push(path);
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// The `Warning` header value of a warning (RFC 7234 with code 299, as the API server
/// sends them).
pub fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_duplicates_with_their_paths() {
        let (v, d) = parse_json_with_duplicates(
            br#"{"spec": {"paused": true, "paused": false, "c": [{"a": 1, "a": 2}]}, "x": 1.5}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"spec": {"paused": false, "c": [{"a": 2}]}, "x": 1.5})
        );
        assert_eq!(d, ["spec.paused", "spec.c[0].a"]);
        assert!(parse_json_with_duplicates(b"{} trailing").is_err());
    }

    #[test]
    fn directive_parsing_and_headers() {
        assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
        assert_eq!(
            FieldValidation::parse(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::parse(Some("strict")).unwrap_err().code(),
            400
        );
        assert_eq!(
            warning_header(r#"unknown field "spec.x""#),
            r#"299 - "unknown field \"spec.x\"""#
        );
    }
}
