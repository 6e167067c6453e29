//! Label and field selectors: parsing (with the API server's error texts) and matching.

use serde_json::{Map, Value};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key`
    Exists(String),
    /// `!key`
    NotExists(String),
    /// `key=value` / `key==value`
    Equals(String, String),
    /// `key!=value` (also true when the label is absent)
    NotEquals(String, String),
    /// `key in (a,b)`
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the label is absent)
    NotIn(String, Vec<String>),
    /// `key>n` (integer comparison)
    GreaterThan(String, i64),
    /// `key<n` (integer comparison)
    LessThan(String, i64),
}

/// A parsed label selector: all requirements must hold. Empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Splits at top-level commas (commas inside `( )` belong to a set).
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unexpected ')'".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn check_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    match crate::object::check_label_key(key) {
        None => Ok(key.to_string()),
        Some(p) => Err(format!("invalid label key {key:?}: {p}")),
    }
}

fn check_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    match crate::object::check_label_value(v) {
        None => Ok(v.to_string()),
        Some(p) => Err(format!("invalid label value: {v:?}: {p}")),
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected '(' and ')' around the values in {rest:?}"))?;
    inner.split(',').map(check_value).collect()
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let p = part.trim();
    if p.is_empty() {
        return Err("found '', expected: identifier".into());
    }
    if let Some(key) = p.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(key)?));
    }
    // Set-based: `key in (..)`, `key notin (..)`.
    let words: Vec<&str> = p.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(check_key(words[0])?, parse_set(set)?));
        }
        if let Some(set) = rest.strip_prefix("in")
            && set.trim_start().starts_with('(')
        {
            return Ok(Requirement::In(check_key(words[0])?, parse_set(set)?));
        }
    }
    for (op, build) in [("!=", 0u8), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some((k, v)) = p.split_once(op) {
            let key = check_key(k)?;
            return match build {
                0 => Ok(Requirement::NotEquals(key, check_value(v)?)),
                1 => Ok(Requirement::Equals(key, check_value(v)?)),
                _ => {
                    let n: i64 = v.trim().parse().map_err(|_| {
                        format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}")
                    })?;
                    Ok(if build == 2 {
                        Requirement::GreaterThan(key, n)
                    } else {
                        Requirement::LessThan(key, n)
                    })
                }
            };
        }
    }
    Ok(Requirement::Exists(check_key(p)?))
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        split_top_level(s)?
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(LabelSelector)
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`metadata.name`).
    pub field: String,
    /// `true` for `=`/`==`, `false` for `!=`.
    pub equals: bool,
    /// Value to compare with.
    pub value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax (`a=b,c!=d`), checking each field with `allowed`.
    pub fn parse(s: &str, allowed: impl Fn(&str) -> bool) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let (field, equals, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !allowed(field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push(FieldRequirement {
                field: field.to_string(),
                equals,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name this selector pins with `metadata.name=`, if any (lets lookups skip a scan).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equals && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }

    /// Whether an object is selected. Missing fields compare as "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) == r.equals
        })
    }
}

/// The string value of a dotted field path ("" when absent; numbers and booleans as text).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g,h>4,i<5").unwrap();
        assert_eq!(
            s.0,
            vec![
                Requirement::Equals("a".into(), "1".into()),
                Requirement::Equals("b".into(), "2".into()),
                Requirement::NotEquals("c".into(), "3".into()),
                Requirement::In("d".into(), vec!["x".into(), "y".into()]),
                Requirement::NotIn("e".into(), vec!["z".into()]),
                Requirement::Exists("f".into()),
                Requirement::NotExists("g".into()),
                Requirement::GreaterThan("h".into(), 4),
                Requirement::LessThan("i".into(), 5),
            ]
        );
    }

    #[test]
    fn matching_follows_api_semantics() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "7"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"), "!= matches absent labels");
        assert!(m("missing notin (x)"), "notin matches absent labels");
        assert!(!m("missing in (x)"));
        assert!(m("tier in (back,front)"));
        assert!(m("app,!missing"));
        assert!(m("n>6") && !m("n<7"));
        assert!(LabelSelector::parse("").unwrap().matches(None));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
    }

    #[test]
    fn rejects_bad_selectors() {
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("Bad Key=1").is_err());
        assert!(LabelSelector::parse("a=-x").is_err());
        assert!(LabelSelector::parse("a,,b").is_err());
        assert!(LabelSelector::parse("h>x").is_err());
    }

    #[test]
    fn field_selectors() {
        let allowed = |f: &str| f.starts_with("metadata.") || f == "type";
        let o = json!({"metadata": {"name": "a", "namespace": "n"}, "type": "Opaque"});
        let f = |s: &str| FieldSelector::parse(s, allowed).unwrap().matches(&o);
        assert!(f("metadata.name=a,metadata.namespace==n"));
        assert!(!f("metadata.name!=a"));
        assert!(f("type=Opaque"));
        assert_eq!(
            FieldSelector::parse("spec.x=1", allowed).unwrap_err(),
            "field label not supported: spec.x"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a", allowed)
                .unwrap()
                .pinned_name(),
            Some("a")
        );
    }

    fn arb_labels() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
        proptest::collection::btree_map("[a-c]", "[x-z]", 0..3)
    }

    proptest! {
        #[test]
        fn equals_and_not_equals_are_complements(ls in arb_labels(), k in "[a-c]", v in "[x-z]") {
            let map: Map<String, Value> = ls.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let eq = LabelSelector::parse(&format!("{k}={v}")).unwrap().matches(Some(&map));
            let ne = LabelSelector::parse(&format!("{k}!={v}")).unwrap().matches(Some(&map));
            prop_assert_ne!(eq, ne);
            let inn = LabelSelector::parse(&format!("{k} in ({v})")).unwrap().matches(Some(&map));
            let notin = LabelSelector::parse(&format!("{k} notin ({v})")).unwrap().matches(Some(&map));
            prop_assert_eq!(inn, eq);
            prop_assert_eq!(notin, ne);
        }

        #[test]
        fn exists_and_not_exists_are_complements(ls in arb_labels(), k in "[a-c]") {
            let map: Map<String, Value> = ls.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let e = LabelSelector::parse(&k).unwrap().matches(Some(&map));
            let ne = LabelSelector::parse(&format!("!{k}")).unwrap().matches(Some(&map));
            prop_assert_ne!(e, ne);
            prop_assert_eq!(e, ls.contains_key(&k));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = LabelSelector::parse(&s);
            let _ = FieldSelector::parse(&s, |_| true);
        }
    }
}
