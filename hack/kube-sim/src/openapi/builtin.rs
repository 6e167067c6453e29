//! The schemas of the built-in kinds kube-sim serves, from k8s-openapi's `schemars`
//! descriptions (generated from the Kubernetes OpenAPI document), with what the API server
//! adds: `x-kubernetes-group-version-kind` on each kind and the strategic merge patch
//! extensions (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) that kubectl
//! reads to compute its patches.

use std::sync::OnceLock;

use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// Where a built-in kind's schema is and what it is.
#[derive(Debug, Clone)]
pub struct Kind {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Definition name (`io.k8s.api.core.v1.ConfigMap`).
    pub definition: String,
}

/// The built-in definitions in OpenAPI v3 form (`#/components/schemas/…` references), and the
/// kinds among them.
pub struct Builtin {
    /// Every definition the kinds refer to, by name.
    pub definitions: Map<String, Value>,
    /// The kinds.
    pub kinds: Vec<Kind>,
}

/// Computed once per process.
pub fn builtin() -> &'static Builtin {
    static CACHE: OnceLock<Builtin> = OnceLock::new();
    CACHE.get_or_init(generate)
}

/// (definition, field) → (patch strategy, merge key) of the list fields of the served types,
/// as their Go struct tags declare them.
const PATCH_META: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
];

fn generate() -> Builtin {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    macro_rules! kind {
        ($t:ty, $group:expr, $version:expr, $kind:expr) => {{
            generator.subschema_for::<$t>();
            kinds.push(Kind {
                group: $group,
                version: $version,
                kind: $kind,
                definition: <$t as JsonSchema>::schema_name().into_owned(),
            });
        }};
    }
    kind!(api::core::v1::Namespace, "", "v1", "Namespace");
    kind!(api::core::v1::ConfigMap, "", "v1", "ConfigMap");
    kind!(api::core::v1::Secret, "", "v1", "Secret");
    kind!(api::core::v1::Pod, "", "v1", "Pod");
    kind!(api::core::v1::ServiceAccount, "", "v1", "ServiceAccount");
    kind!(api::core::v1::Service, "", "v1", "Service");
    kind!(api::core::v1::Event, "", "v1", "Event");
    kind!(api::events::v1::Event, "events.k8s.io", "v1", "Event");
    kind!(
        api::coordination::v1::Lease,
        "coordination.k8s.io",
        "v1",
        "Lease"
    );
    kind!(api::apps::v1::Deployment, "apps", "v1", "Deployment");
    kind!(
        api::rbac::v1::Role,
        "rbac.authorization.k8s.io",
        "v1",
        "Role"
    );
    kind!(
        api::rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding"
    );
    kind!(
        api::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole"
    );
    kind!(
        api::rbac::v1::ClusterRoleBinding,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding"
    );
    kind!(
        apiext::CustomResourceDefinition,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition"
    );
    // What every document refers to: list metadata, Status, DeleteOptions, ObjectMeta.
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::ObjectMeta>();
    let mut definitions = generator.take_definitions(true);
    for (definition, field, strategy, key) in PATCH_META {
        if let Some(prop) = definitions
            .get_mut(*definition)
            .and_then(|d| d.pointer_mut(&format!("/properties/{field}")))
            .and_then(Value::as_object_mut)
        {
            prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if let Some(k) = key {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(k));
            }
        }
    }
    for k in &kinds {
        if let Some(d) = definitions
            .get_mut(&k.definition)
            .and_then(Value::as_object_mut)
        {
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": k.group, "kind": k.kind, "version": k.version}]),
            );
        }
    }
    Builtin { definitions, kinds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_definitions_with_gvk_and_patch_meta() {
        let b = builtin();
        for k in &b.kinds {
            let d = &b.definitions[&k.definition];
            assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], k.kind);
            assert!(d["properties"]["metadata"].is_object(), "{}", k.definition);
        }
        let containers = &b.definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        // Every reference resolves.
        let text = serde_json::to_string(&b.definitions).unwrap();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(
                b.definitions.contains_key(name),
                "{name} is referenced but missing"
            );
        }
    }
}
