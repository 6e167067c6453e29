//! The resource table: every served resource is a row of data, built-in or from a CRD.
//!
//! The store, the router and discovery are generic over these rows; no code is written per type.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiError;

/// The storage identity of a resource: objects of all served versions share it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// Builds a key.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// A column of `kubectl get` output (`additionalPrinterColumns` of a CRD).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `date`, …).
    pub type_: String,
    /// Simple JSONPath into the object (`.status.phase`).
    pub json_path: String,
    /// 0 = shown by default, higher = only with `-o wide`.
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// How a served version maps onto its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conversion {
    /// Stored as served (apiVersion aside).
    #[default]
    None,
    /// events.k8s.io/v1 Events, stored as core/v1 Events.
    EventsV1,
}

/// One served resource in one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Plural name, used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Kind of the list type.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`tr`, `cm`).
    pub short_names: Vec<String>,
    /// Categories (`all`, `tekton`).
    pub categories: Vec<String>,
    /// Whether `/status` is a separate subresource.
    pub status_subresource: bool,
    /// Whether `metadata.generation` is kept (custom resources, CRDs).
    pub tracks_generation: bool,
    /// Whether an update without resourceVersion is accepted (built-ins) or refused (CRs).
    pub allow_unconditional_update: bool,
    /// Whether strategic-merge patches are accepted (not for custom resources).
    pub strategic_merge: bool,
    /// Field paths usable in field selectors besides `metadata.name`/`metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// Extra columns for `kubectl get`.
    pub printer_columns: Vec<PrinterColumn>,
    /// Served from a CustomResourceDefinition.
    pub custom: bool,
    /// Storage shared with another resource, through a conversion.
    pub conversion: Conversion,
    /// The CRD version's `openAPIV3Schema` (custom resources), applied to every write.
    pub schema: Option<crate::schema::VersionSchema>,
}

impl ResourceInfo {
    /// `apiVersion` of objects served in this version.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The served identity (group and plural).
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    /// Where the objects live: the own identity, or the resource the conversion stores into.
    pub fn storage_resource(&self) -> GroupResource {
        match self.conversion {
            Conversion::None => self.group_resource(),
            Conversion::EventsV1 => GroupResource::new("", "events"),
        }
    }

    /// Verbs advertised in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// Whether `field` may be used in a field selector.
    pub fn field_selectable(&self, field: &str) -> bool {
        field == "metadata.name"
            || (field == "metadata.namespace" && self.namespaced)
            || self.selectable_fields.iter().any(|f| f == field)
    }
}

/// Every resource the server serves, keyed by (group, version, plural).
#[derive(Debug, Clone, Default)]
pub struct ResourceTable {
    entries: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
}

/// The core and built-in group resources kube-sim serves from the start.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let base =
        |group: &str, plural: &str, singular: &str, kind: &str, namespaced: bool| ResourceInfo {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: singular.into(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: vec![],
            categories: vec![],
            status_subresource: false,
            tracks_generation: false,
            allow_unconditional_update: true,
            strategic_merge: true,
            selectable_fields: vec![],
            printer_columns: vec![],
            custom: false,
            conversion: Conversion::None,
            schema: None,
        };
    let col = |name: &str, path: &str| PrinterColumn {
        name: name.into(),
        type_: "string".into(),
        json_path: path.into(),
        priority: 0,
        description: String::new(),
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let event_fields = strings(&[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]);
    vec![
        ResourceInfo {
            short_names: strings(&["ns"]),
            status_subresource: true,
            selectable_fields: strings(&["status.phase"]),
            printer_columns: vec![col("Status", ".status.phase")],
            ..base("", "namespaces", "namespace", "Namespace", false)
        },
        ResourceInfo {
            short_names: strings(&["cm"]),
            ..base("", "configmaps", "configmap", "ConfigMap", true)
        },
        ResourceInfo {
            selectable_fields: strings(&["type"]),
            printer_columns: vec![col("Type", ".type")],
            ..base("", "secrets", "secret", "Secret", true)
        },
        ResourceInfo {
            short_names: strings(&["po"]),
            categories: strings(&["all"]),
            status_subresource: true,
            selectable_fields: strings(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
            printer_columns: vec![col("Status", ".status.phase")],
            ..base("", "pods", "pod", "Pod", true)
        },
        ResourceInfo {
            short_names: strings(&["sa"]),
            ..base(
                "",
                "serviceaccounts",
                "serviceaccount",
                "ServiceAccount",
                true,
            )
        },
        ResourceInfo {
            short_names: strings(&["ev"]),
            selectable_fields: event_fields,
            printer_columns: vec![
                col("Type", ".type"),
                col("Reason", ".reason"),
                col("Message", ".message"),
            ],
            ..base("", "events", "event", "Event", true)
        },
        ResourceInfo {
            short_names: strings(&["ev"]),
            selectable_fields: strings(&["reason", "type"]),
            printer_columns: vec![
                col("Type", ".type"),
                col("Reason", ".reason"),
                col("Note", ".note"),
            ],
            conversion: Conversion::EventsV1,
            ..base("events.k8s.io", "events", "event", "Event", true)
        },
        ResourceInfo {
            printer_columns: vec![col("Holder", ".spec.holderIdentity")],
            ..base("coordination.k8s.io", "leases", "lease", "Lease", true)
        },
        ResourceInfo {
            short_names: strings(&["svc"]),
            categories: strings(&["all"]),
            status_subresource: true,
            printer_columns: vec![
                col("Type", ".spec.type"),
                col("Cluster-IP", ".spec.clusterIP"),
            ],
            ..base("", "services", "service", "Service", true)
        },
        ResourceInfo {
            short_names: strings(&["deploy"]),
            categories: strings(&["all"]),
            status_subresource: true,
            // The API server counts spec changes of Deployments, as of custom resources.
            tracks_generation: true,
            printer_columns: vec![
                col("Replicas", ".spec.replicas"),
                col("Available", ".status.availableReplicas"),
            ],
            ..base("apps", "deployments", "deployment", "Deployment", true)
        },
        base("rbac.authorization.k8s.io", "roles", "role", "Role", true),
        ResourceInfo {
            printer_columns: vec![col("Role", ".roleRef.name")],
            ..base(
                "rbac.authorization.k8s.io",
                "rolebindings",
                "rolebinding",
                "RoleBinding",
                true,
            )
        },
        base(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "clusterrole",
            "ClusterRole",
            false,
        ),
        ResourceInfo {
            printer_columns: vec![col("Role", ".roleRef.name")],
            ..base(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "clusterrolebinding",
                "ClusterRoleBinding",
                false,
            )
        },
        ResourceInfo {
            short_names: strings(&["crd", "crds"]),
            categories: strings(&["api-extensions"]),
            status_subresource: true,
            tracks_generation: true,
            strategic_merge: false,
            ..base(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "customresourcedefinition",
                "CustomResourceDefinition",
                false,
            )
        },
    ]
}

impl ResourceTable {
    /// A table holding the built-in resources.
    pub fn builtin() -> Self {
        let mut t = ResourceTable::default();
        for r in builtin_resources() {
            t.insert(r);
        }
        t
    }

    /// Adds or replaces a row.
    pub fn insert(&mut self, info: ResourceInfo) {
        self.entries.insert(
            (
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            ),
            Arc::new(info),
        );
    }

    /// Removes every version of a group resource. Returns whether anything was removed.
    pub fn remove(&mut self, gr: &GroupResource) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|(g, _, p), _| !(g == &gr.group && p == &gr.resource));
        before != self.entries.len()
    }

    /// The row for group/version/plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.entries
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Every row of a group resource (one per served version).
    pub fn versions_of(&self, gr: &GroupResource) -> Vec<Arc<ResourceInfo>> {
        self.entries
            .values()
            .filter(|r| r.group == gr.group && r.plural == gr.resource)
            .cloned()
            .collect()
    }

    /// Whether any version of group/version is served.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.entries
            .keys()
            .any(|(g, v, _)| g == group && v == version)
    }

    /// Rows of group/version, by plural name.
    pub fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.entries
            .iter()
            .filter(|((g, v, _), _)| g == group && v == version)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Non-core groups with their versions, most preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, v, _) in self.entries.keys() {
            if g.is_empty() {
                continue;
            }
            let versions = groups.entry(g.clone()).or_default();
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        groups
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by(|a, b| compare_kube_versions(a, b));
                (g, vs)
            })
            .collect()
    }

    /// All rows.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.entries.values()
    }
}

/// Orders versions the way Kubernetes prefers them: GA before beta before alpha, higher
/// numbers first, anything not Kubernetes-like last in alphabetical order.
pub fn compare_kube_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The rows a CustomResourceDefinition asks to serve (one per served version), after
/// validating it the way the API server does. Errors are `Invalid` causes.
pub fn rows_from_crd(crd: &Value) -> Result<Vec<ResourceInfo>, Vec<String>> {
    let mut causes = Vec::new();
    let name = crate::object::name(crd);
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let group = s(&spec, "group");
    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    let plural = s(&names, "plural");
    let kind = s(&names, "kind");
    let singular = {
        let v = s(&names, "singular");
        if v.is_empty() { kind.to_lowercase() } else { v }
    };
    let list_kind = {
        let v = s(&names, "listKind");
        if v.is_empty() {
            format!("{kind}List")
        } else {
            v
        }
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let scope = s(&spec, "scope");

    if group.is_empty() || !group.contains('.') {
        causes.push(format!(
            "spec.group: Invalid value: {group:?}: should be a domain with at least one dot"
        ));
    }
    if plural.is_empty() || crate::object::check_label(&plural).is_some() {
        causes.push(format!(
            "spec.names.plural: Invalid value: {plural:?}: a lowercase RFC 1123 label is required"
        ));
    }
    if kind.is_empty() {
        causes.push("spec.names.kind: Required value".into());
    }
    if name != format!("{plural}.{group}") {
        causes.push(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let namespaced = match scope.as_str() {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            causes.push(format!(
                "spec.scope: Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ));
            true
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push("spec.versions: Invalid value: null: must have exactly one version marked as storage version".into());
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(format!(
            "spec.versions: Invalid value: {storage}: must have exactly one version marked as storage version"
        ));
    }
    let mut rows = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = s(v, "name");
        if vname.is_empty() || crate::object::check_label(&vname).is_some() {
            causes.push(format!("spec.versions[{i}].name: Invalid value: {vname:?}"));
            continue;
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let status_subresource = v
            .get("subresources")
            .and_then(|sr| sr.get("status"))
            .is_some_and(|st| !st.is_null());
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: s(c, "name"),
                        type_: s(c, "type"),
                        json_path: s(c, "jsonPath"),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        description: s(c, "description"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let schema = match v.pointer("/schema/openAPIV3Schema") {
            Some(raw) => match crate::schema::Structural::compile(
                raw,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            ) {
                Ok(structural) => Some(crate::schema::VersionSchema::new(structural, raw.clone())),
                Err(mut c) => {
                    causes.append(&mut c);
                    None
                }
            },
            None => None,
        };
        let selectable_fields = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| s(f, "jsonPath").trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        rows.push(ResourceInfo {
            group: group.clone(),
            version: vname,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status_subresource,
            tracks_generation: true,
            allow_unconditional_update: false,
            strategic_merge: false,
            selectable_fields,
            printer_columns,
            custom: true,
            conversion: Conversion::None,
            schema,
        });
    }
    if causes.is_empty() {
        Ok(rows)
    } else {
        Err(causes)
    }
}

/// Turns CRD validation causes into the API error.
pub fn invalid_crd(name: &str, causes: &[String]) -> ApiError {
    ApiError::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        name,
        causes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn crd_rows_follow_served_versions_and_subresources() {
        let rows = rows_from_crd(&crd()).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].status_subresource);
        assert!(!rows[1].status_subresource);
        assert_eq!(rows[0].list_kind, "WidgetList");
        assert_eq!(rows[0].singular, "widget");
        assert!(rows[0].custom && !rows[0].strategic_merge);
    }

    #[test]
    fn crd_validation_reports_causes() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][1]["storage"] = json!(true);
        let causes = rows_from_crd(&bad).unwrap_err();
        assert_eq!(causes.len(), 2, "{causes:?}");
    }

    #[test]
    fn table_lists_groups_with_preferred_version_first() {
        let mut t = ResourceTable::builtin();
        for r in rows_from_crd(&crd()).unwrap() {
            t.insert(r);
        }
        let groups = t.groups();
        let ex = groups.iter().find(|(g, _)| g == "example.com").unwrap();
        assert_eq!(ex.1, vec!["v1".to_string(), "v1beta1".to_string()]);
        assert!(t.remove(&GroupResource::new("example.com", "widgets")));
        assert!(t.get("example.com", "v1", "widgets").is_none());
        assert!(t.get("", "v1", "configmaps").is_some());
    }

    #[test]
    fn kube_version_order() {
        let mut v = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10"];
        v.sort_by(|a, b| compare_kube_versions(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    proptest! {
        #[test]
        fn version_order_is_total_and_antisymmetric(a in "v[0-9](alpha|beta)?[0-9]?", b in "v[0-9](alpha|beta)?[0-9]?") {
            let ab = compare_kube_versions(&a, &b);
            let ba = compare_kube_versions(&b, &a);
            prop_assert_eq!(ab, ba.reverse());
        }
    }
}
