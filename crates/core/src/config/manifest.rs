//! Reading a host-config ConfigMap manifest (YAML), as admins keep it in Git or as
//! `kubectl get cm host-config -o yaml` prints it. Used by `check-config`.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use super::problem::{Problem, Severity, Subject};
use crate::naming::{CONFIG_LABEL, HOST_CONFIG_NAME};

/// The parts of a ConfigMap manifest `check-config` looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `data`, every value as a string.
    pub data: BTreeMap<String, String>,
    /// Problems of the manifest itself (name, label, values that are not strings).
    pub problems: Vec<Problem>,
}

/// Why a file cannot be checked at all.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// There is no document in it.
    #[error("the file holds no YAML document; expected a ConfigMap manifest")]
    Empty,
    /// The document is something else than a ConfigMap.
    #[error(
        "the document is not a ConfigMap (it says apiVersion: {api_version}, kind: {kind}); \
         expected apiVersion: v1, kind: ConfigMap"
    )]
    NotConfigMap {
        /// `apiVersion` as found.
        api_version: String,
        /// `kind` as found.
        kind: String,
    },
    /// Several documents and no single ConfigMap named host-config among them.
    #[error(
        "the file holds {documents} objects, {matching} of them ConfigMaps named host-config; \
         expected exactly one"
    )]
    Ambiguous {
        /// Objects found.
        documents: usize,
        /// How many are ConfigMaps named host-config.
        matching: usize,
    },
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn is_host_config(doc: &Value) -> bool {
    text(doc, &["kind"]) == Some("ConfigMap")
        && text(doc, &["metadata", "name"]) == Some(HOST_CONFIG_NAME)
}

/// Parses a manifest: one ConfigMap document, or several documents / a `kind: List`
/// among which exactly one is a ConfigMap named host-config.
pub fn parse_manifest(yaml: &str) -> Result<Manifest, ManifestError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|err| ManifestError::Yaml(err.to_string()))?;
    let mut objects: Vec<Value> = Vec::new();
    for doc in documents {
        match doc.get("items").and_then(Value::as_array) {
            Some(items) if text(&doc, &["kind"]) == Some("List") => {
                objects.extend(items.iter().cloned());
            }
            _ => objects.push(doc),
        }
    }
    let doc = match objects.len() {
        0 => return Err(ManifestError::Empty),
        1 => objects.remove(0),
        documents => {
            let mut matching: Vec<Value> = objects.into_iter().filter(is_host_config).collect();
            if matching.len() != 1 {
                return Err(ManifestError::Ambiguous {
                    documents,
                    matching: matching.len(),
                });
            }
            matching.remove(0)
        }
    };
    let api_version = text(&doc, &["apiVersion"]).unwrap_or("<none>");
    let kind = text(&doc, &["kind"]).unwrap_or("<none>");
    if api_version != "v1" || kind != "ConfigMap" {
        return Err(ManifestError::NotConfigMap {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    }

    let mut problems = Vec::new();
    let mut error = |key: &str, message: String| {
        problems.push(Problem::new(Severity::Error, Subject::Global, key, message));
    };
    let name = text(&doc, &["metadata", "name"]).map(str::to_owned);
    if name.as_deref() != Some(HOST_CONFIG_NAME) {
        error(
            "metadata.name",
            format!(
                "is {}; the controller reads only the ConfigMap named {HOST_CONFIG_NAME}",
                name.as_deref()
                    .map_or("missing".to_owned(), |n| format!("{n:?}"))
            ),
        );
    }
    let has_label = doc
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(CONFIG_LABEL))
        .is_some();
    if !has_label {
        error(
            "metadata.labels",
            format!(
                "label {CONFIG_LABEL} is missing; the controller only reads a host-config \
                 carrying it (any value, e.g. hosts)"
            ),
        );
    }

    let mut data = BTreeMap::new();
    match doc.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (key, value) in entries {
                let at = format!("data.{key}");
                match value {
                    Value::String(s) => {
                        data.insert(key.clone(), s.clone());
                    }
                    Value::Number(_) => {
                        error(
                            &at,
                            format!(
                                "the value {value} is a YAML number, but ConfigMap values must \
                                 be strings (kubectl refuses this manifest); quote it: \"{value}\""
                            ),
                        );
                        data.insert(key.clone(), value.to_string());
                    }
                    Value::Bool(_) => {
                        error(
                            &at,
                            "the value is a YAML boolean (unquoted yes, no, on, off, true or \
                             false), but ConfigMap values must be strings (kubectl refuses this \
                             manifest); put the value in quotes"
                                .to_owned(),
                        );
                        data.insert(key.clone(), value.to_string());
                    }
                    Value::Null => {
                        error(
                            &at,
                            "has no value; write \"\" for an empty string or remove the key"
                                .to_owned(),
                        );
                        data.insert(key.clone(), String::new());
                    }
                    Value::Array(_) | Value::Object(_) => error(
                        &at,
                        "is a YAML list or mapping, but ConfigMap values must be strings; \
                         this key is ignored"
                            .to_owned(),
                    ),
                }
            }
        }
        Some(_) => error(
            "data",
            "is not a mapping of keys to strings; no key can be read".to_owned(),
        ),
    }

    Ok(Manifest {
        name,
        namespace: text(&doc, &["metadata", "namespace"]).map(str::to_owned),
        data,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: host-config
  namespace: multi-platform-controller
  labels:
    build.appstudio.redhat.com/multi-platform-config: hosts
data:
  local-platforms: "linux/x86_64,local,"
  host.arm-1.concurrency: "4"
"#;

    #[test]
    fn reads_a_configmap() {
        let m = parse_manifest(GOOD).unwrap();
        assert_eq!(m.name.as_deref(), Some("host-config"));
        assert_eq!(m.namespace.as_deref(), Some("multi-platform-controller"));
        assert_eq!(m.data["host.arm-1.concurrency"], "4");
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }

    #[test]
    fn unquoted_values_are_reported_and_still_read() {
        let yaml = GOOD.replace("\"4\"", "4") + "  flag: true\n  empty:\n";
        let m = parse_manifest(&yaml).unwrap();
        assert_eq!(m.data["host.arm-1.concurrency"], "4");
        let keys: Vec<&str> = m.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["data.empty", "data.flag", "data.host.arm-1.concurrency"]
        );
        assert!(m.problems[2].message.contains("quote it: \"4\""));
        assert!(m.problems[1].message.contains("YAML boolean"));
    }

    #[test]
    fn checks_name_and_label() {
        let yaml = GOOD
            .replace("name: host-config", "name: hosts")
            .replace("build.appstudio.redhat.com/multi-platform-config", "app");
        let m = parse_manifest(&yaml).unwrap();
        let keys: Vec<&str> = m.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["metadata.name", "metadata.labels"]);
    }

    #[test]
    fn picks_the_host_config_out_of_several_documents() {
        let other = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n";
        let m = parse_manifest(&format!("{other}---{GOOD}")).unwrap();
        assert_eq!(m.name.as_deref(), Some("host-config"));
        let err = parse_manifest(&format!("{GOOD}---{GOOD}")).unwrap_err();
        assert!(matches!(
            err,
            ManifestError::Ambiguous {
                documents: 2,
                matching: 2
            }
        ));
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            GOOD.trim().replace('\n', "\n  ")
        );
        assert_eq!(parse_manifest(&list).unwrap().data.len(), 2);
    }

    #[test]
    fn reads_kubectl_get_output() {
        let yaml = r#"apiVersion: v1
data:
  host.arm-1.address: 10.0.0.1
  local-platforms: linux/x86_64,local,localhost
kind: ConfigMap
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","data":{"local-platforms":"linux/x86_64"},"kind":"ConfigMap"}
  creationTimestamp: "2025-01-07T10:00:00Z"
  labels:
    build.appstudio.redhat.com/multi-platform-config: hosts
  name: host-config
  namespace: multi-platform-controller
  resourceVersion: "123456"
  uid: 0b3c2c55-8f1e-4c6e-9d7a-1f0e2d3c4b5a
"#;
        let m = parse_manifest(yaml).unwrap();
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(m.data["host.arm-1.address"], "10.0.0.1");
    }

    #[test]
    fn data_must_be_a_mapping() {
        let head = GOOD.split("\ndata:").next().unwrap();
        let yaml = format!("{head}\ndata: [a, b]\n");
        let m = parse_manifest(&yaml).unwrap();
        assert_eq!(m.problems.len(), 1);
        assert_eq!(m.problems[0].key, "data");
        let yaml = GOOD.replace(
            "  local-platforms: \"linux/x86_64,local,\"",
            "  nested: {a: b}",
        );
        let m = parse_manifest(&yaml).unwrap();
        assert!(
            m.problems[0].message.contains("list or mapping"),
            "{:?}",
            m.problems
        );
        assert!(!m.data.contains_key("nested"));
    }

    #[test]
    fn refuses_what_is_not_a_configmap() {
        assert!(matches!(
            parse_manifest("a: [b"),
            Err(ManifestError::Yaml(_))
        ));
        assert!(matches!(parse_manifest(""), Err(ManifestError::Empty)));
        assert!(matches!(parse_manifest("---\n"), Err(ManifestError::Empty)));
        let err = parse_manifest("apiVersion: v1\nkind: Secret\n").unwrap_err();
        assert!(err.to_string().contains("kind: Secret"), "{err}");
        assert!(matches!(
            parse_manifest("just a string"),
            Err(ManifestError::NotConfigMap { .. })
        ));
    }
}
