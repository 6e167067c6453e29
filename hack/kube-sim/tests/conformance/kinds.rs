//! The built-in kinds a controller's install manifests use: apps/v1 Deployments, core/v1
//! Services, and rbac.authorization.k8s.io/v1 Roles, RoleBindings, ClusterRoles and
//! ClusterRoleBindings — create, get, list, the defaults and generation rules the API server
//! applies, strategic merge of their keyed lists — plus Secret `stringData`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use kube_sim::wait_until;

use crate::common::*;

/// Creates `body` through `api`, then checks get and a label-selected list return it.
async fn create_get_list<K>(api: &Api<K>, body: Value) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(body).unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    let name = created.meta().name.clone().unwrap();
    assert!(created.meta().uid.is_some(), "{created:?}");
    let got = api.get(&name).await.unwrap();
    assert_eq!(got.meta().uid, created.meta().uid);
    let listed = api
        .list(&ListParams::default().labels("kinds-test=yes"))
        .await
        .unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    assert!(names.contains(&name), "{name} not in {names:?}");
    got
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("kinds-test".to_string(), "yes".to_string())])
}

#[tokio::test]
async fn deployments_keep_generation_and_merge_containers_by_name() {
    let env = env("kinds-deploy").await;
    let api = env.api::<Deployment>();
    // No replicas: nothing to schedule when this runs against a real cluster.
    let deploy = create_get_list(
        &api,
        json!({
            "metadata": {"name": "web", "labels": labels()},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "registry.example.com/web:1",
                        "ports": [{"name": "http", "containerPort": 8080}]
                    }]}
                }
            }
        }),
    )
    .await;
    assert_eq!(deploy.metadata.generation, Some(1));
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{
                "name": "web",
                "image": "registry.example.com/web:2",
                "ports": [{"name": "health", "containerPort": 8081}]
            }]}}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    let pod = patched.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example.com/web:2")
    );
    let ports: Vec<i32> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    // Strategic merge puts the patch's new items first, then the live ones.
    assert_eq!(ports, vec![8081, 8080]);
    // A label change is not a spec change.
    let relabelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"more": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(2));
    api.delete("web", &DeleteParams::default()).await.unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn services_get_defaults_and_merge_ports_by_port() {
    let env = env("kinds-svc").await;
    let api = env.api::<Service>();
    let svc = create_get_list(
        &api,
        json!({
            "metadata": {"name": "metrics", "labels": labels()},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "metrics", "port": 8080}]
            }
        }),
    )
    .await;
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.as_ref().unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    let patched = api
        .patch(
            "metrics",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ports": [
                {"name": "health", "port": 8081, "targetPort": 8081, "protocol": "TCP"}
            ]}})),
        )
        .await
        .unwrap();
    let ports: Vec<(Option<String>, i32)> = patched
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some("health".into()), 8081),
            (Some("metrics".into()), 8080)
        ]
    );
    // `$setElementOrder` (what `kubectl apply` sends) puts them in the order it lists.
    let ordered = api
        .patch(
            "metrics",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {
                "$setElementOrder/ports": [{"port": 8080}, {"port": 8081}, {"port": 8082}],
                "ports": [{"name": "admin", "port": 8082, "targetPort": 8082, "protocol": "TCP"}]
            }})),
        )
        .await
        .unwrap();
    let order: Vec<i32> = ordered
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(order, vec![8080, 8081, 8082]);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn roles_and_bindings_in_a_namespace() {
    let env = env("kinds-rbac").await;
    let rules = json!([{
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": ["leader"],
        "verbs": ["get", "update"]
    }]);
    let role = create_get_list(
        &env.api::<Role>(),
        json!({"metadata": {"name": "reader", "labels": labels()}, "rules": rules}),
    )
    .await;
    let rule = &role.rules.unwrap()[0];
    assert_eq!(rule.resource_names, Some(vec!["leader".to_string()]));
    assert_eq!(rule.verbs, vec!["get".to_string(), "update".to_string()]);
    let binding = create_get_list(
        &env.api::<RoleBinding>(),
        json!({
            "metadata": {"name": "reader", "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": env.namespace()}]
        }),
    )
    .await;
    assert_eq!(binding.role_ref.name, "reader");
    assert_eq!(binding.subjects.unwrap()[0].name, "default");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn cluster_roles_and_bindings_are_cluster_scoped() {
    let env = env("kinds-crbac").await;
    // Cluster-scoped: the namespace's name keeps them apart on a shared real cluster.
    let name = format!("kube-sim-test-{}", env.namespace());
    let roles: Api<ClusterRole> = Api::all(env.client());
    let bindings: Api<ClusterRoleBinding> = Api::all(env.client());
    let role = create_get_list(
        &roles,
        json!({
            "metadata": {"name": name, "labels": labels()},
            "rules": [{"apiGroups": ["tekton.dev"], "resources": ["taskruns"], "verbs": ["get", "list", "watch"]}]
        }),
    )
    .await;
    assert_eq!(role.metadata.namespace, None);
    let binding = create_get_list(
        &bindings,
        json!({
            "metadata": {"name": name, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": env.namespace()}]
        }),
    )
    .await;
    assert_eq!(binding.metadata.namespace, None);
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    bindings
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    roles.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_until(SLOW, "the ClusterRole is gone", || async {
        roles.get_opt(&name).await.unwrap().is_none()
    })
    .await
    .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn discovery_serves_the_deployment_kinds() {
    let env = env("kinds-discovery").await;
    let discovery = Discovery::new(env.client()).run().await.unwrap();
    let mut seen = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            seen.push((ar.group.clone(), ar.plural.clone(), caps.scope.clone()));
        }
    }
    use kube::discovery::Scope::{Cluster, Namespaced};
    for (group, plural, scope) in [
        ("apps", "deployments", Namespaced),
        ("", "services", Namespaced),
        ("rbac.authorization.k8s.io", "roles", Namespaced),
        ("rbac.authorization.k8s.io", "rolebindings", Namespaced),
        ("rbac.authorization.k8s.io", "clusterroles", Cluster),
        ("rbac.authorization.k8s.io", "clusterrolebindings", Cluster),
    ] {
        assert!(
            seen.iter()
                .any(|(g, p, s)| g == group && p == plural && *s == scope),
            "{group}/{plural} ({scope:?}) not discovered"
        );
    }
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let env = env("kinds-stringdata").await;
    let api = env.api::<Secret>();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "key"},
        "data": {"id_rsa": "b2xk", "other": "eA=="},
        "stringData": {"id_rsa": "new key"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(created.string_data, None);
    let data = created.data.unwrap();
    assert_eq!(data["id_rsa"].0, b"new key");
    assert_eq!(data["other"].0, b"x");
    let patched = api
        .patch(
            "key",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"other": "y"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.string_data, None);
    assert_eq!(patched.data.unwrap()["other"].0, b"y");
    let stored = api.get("key").await.unwrap();
    assert_eq!(stored.string_data, None);
    env.cleanup().await.unwrap();
}
