//! Helpers over objects kept as plain JSON: metadata access, name rules, timestamps.

use serde_json::{Map, Value};

/// `metadata` of an object, if it is a map.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created empty when missing or not a map.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("just made an object");
    let m = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("just made an object")
}

/// A string field of `metadata` ("" when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.uid`.
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}

/// `metadata.resourceVersion`.
pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion")
}

/// `metadata.labels` as a map (empty when absent).
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

/// `metadata.finalizers` (empty when absent).
pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// One owner reference: the owner's uid and whether it blocks the owner's foreground deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// Owner uid.
    pub uid: String,
    /// `blockOwnerDeletion`.
    pub block: bool,
}

/// `metadata.ownerReferences`, reduced to what garbage collection needs.
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    Some(OwnerRef {
                        uid: r.get("uid")?.as_str()?.to_string(),
                        block: r
                            .get("blockOwnerDeletion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a DNS-1123 subdomain (most object names). Returns the problem, if any.
pub fn check_subdomain(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !ok_chars || !ends_ok(bytes[0]) || !ends_ok(bytes[bytes.len() - 1]) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into(),
        );
    }
    None
}

/// Checks a DNS-1123 label (namespace names). Returns the problem, if any.
pub fn check_label(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let bytes = name.as_bytes();
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !ok_chars || !ends_ok(bytes[0]) || !ends_ok(bytes[bytes.len() - 1]) {
        return Some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into(),
        );
    }
    None
}

/// Checks a label key (`[prefix/]name`). Returns the problem, if any.
pub fn check_label_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && check_subdomain(p).is_some()
    {
        return Some(format!("prefix part of {key:?} must be a DNS subdomain"));
    }
    if name.is_empty() {
        return Some(format!("name part of {key:?} must be non-empty"));
    }
    check_label_value(name)
}

/// Checks a label value (may be empty, ≤ 63 characters, alphanumerics with `-_.` inside).
pub fn check_label_value(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let bytes = value.as_bytes();
    let inner_ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !inner_ok
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    None
}

/// The current time as the API server writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The current time as `metav1.MicroTime`.
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// A random RFC 4122 version-4 UUID, as the API server assigns to `metadata.uid`.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character random suffix `generateName` gets (same alphabet as the API server).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reads_metadata() {
        let o = json!({"metadata": {"name": "a", "namespace": "n", "finalizers": ["f"],
            "ownerReferences": [{"uid": "u1", "blockOwnerDeletion": true}, {"uid": "u2"}]}});
        assert_eq!(name(&o), "a");
        assert_eq!(namespace(&o), "n");
        assert_eq!(finalizers(&o), vec!["f".to_string()]);
        assert!(!is_deleting(&o));
        assert_eq!(
            owner_refs(&o),
            vec![
                OwnerRef {
                    uid: "u1".into(),
                    block: true
                },
                OwnerRef {
                    uid: "u2".into(),
                    block: false
                }
            ]
        );
    }

    #[test]
    fn name_rules() {
        assert!(check_subdomain("a.b-c").is_none());
        assert!(check_subdomain("A").is_some());
        assert!(check_subdomain("-a").is_some());
        assert!(check_label("a.b").is_some());
        assert!(check_label(&"a".repeat(64)).is_some());
        assert!(check_label_key("example.com/x-y").is_none());
        assert!(check_label_key("Bad Key").is_some());
        assert!(check_label_value("").is_none());
        assert!(check_label_value("-x").is_some());
    }

    #[test]
    fn uid_has_uuid_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }

    proptest! {
        #[test]
        fn valid_labels_are_valid_subdomains(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            prop_assert!(check_label(&s).is_none());
            prop_assert!(check_subdomain(&s).is_none());
        }

        #[test]
        fn random_suffix_makes_valid_names(prefix in "[a-z]{1,10}-") {
            let n = format!("{prefix}{}", random_suffix());
            prop_assert!(check_subdomain(&n).is_none());
        }
    }
}
