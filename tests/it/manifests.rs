//! The install manifests in `config/`: rendered with `kubectl kustomize`, applied with
//! `kubectl apply` to kube-sim and read back with the `kube` client, and checked against
//! the controller's runtime contract: the objects an install consists of, RBAC that grants
//! exactly what the controller uses, a hardened Deployment with the probes and ports the
//! binary serves, and example configuration that `check-config` accepts.
//!
//! With `MPC_TEST_KUBECONFIG` set the same manifests go to that cluster with
//! `kubectl apply --dry-run=server` (moved into the test's own namespace, without the
//! Namespace object), so the real API server validates and defaults them and nothing is
//! installed; the same checks then run on the objects the server returns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube_sim::TestEnv;
use mpc_core::naming::{
    CONFIG_LABEL, DEFAULT_CONTROLLER_NAMESPACE, HOST_CONFIG_NAME, SECRET_LABEL, secret_keys,
};
use multi_platform_controller::remote::AdminKey;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Names every install object carries (distinct from the Go controller's, so both can sit
/// in the same namespace during a migration).
const NAME: &str = "multi-platform-controller-rs";
const METRICS_SERVICE: &str = "multi-platform-controller-rs-metrics";
/// From the runtime contract: the leader-election Lease and the known-hosts ConfigMap.
const LEASE: &str = mpc_core::naming::LEASE_NAME;
const KNOWN_HOSTS: &str = mpc_core::naming::KNOWN_HOSTS_CONFIG_NAME;
/// The ports `run` serves by default (runtime contract).
const METRICS_PORT: i32 = 8080;
const HEALTH_PORT: i32 = 8081;
const NONROOT_UID: i64 = 65532;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn examples_dir() -> PathBuf {
    config_dir().join("examples")
}

/// kubectl's path; a missing kubectl fails the test with what to install.
fn kubectl() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "kubectl not found on PATH: install it (Debian: `apt-get install kubernetes-client`; hack/test.sh does this)"
            )
        })
}

/// Runs kubectl with `stdin`, returning stdout; fails the test with stderr otherwise.
async fn run_kubectl(args: &[&str], stdin: &str) -> String {
    let mut child = tokio::process::Command::new(kubectl())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl starts");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

/// `kubectl kustomize DIR`, as text.
async fn render(dir: &Path) -> String {
    run_kubectl(&["kustomize", dir.to_str().unwrap()], "").await
}

/// The documents of a rendered kustomization.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("kustomize renders YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// (kind, namespace, name) of every object, sorted.
fn identities(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .map(|d| {
            (
                text(d, "/kind").to_string(),
                text(d, "/metadata/namespace").to_string(),
                text(d, "/metadata/name").to_string(),
            )
        })
        .collect()
}

/// The one object of `kind` (there must be exactly one), typed.
fn one<K: DeserializeOwned>(docs: &[Value], kind: &str) -> K {
    let found: Vec<&Value> = docs.iter().filter(|d| text(d, "/kind") == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    serde_json::from_value(found[0].clone())
        .unwrap_or_else(|e| panic!("the {kind} does not match the Kubernetes schema: {e}"))
}

/// The objects of an install, typed, wherever they were read from.
struct Install {
    service_account: ServiceAccount,
    cluster_role: ClusterRole,
    cluster_role_binding: ClusterRoleBinding,
    role: Role,
    role_binding: RoleBinding,
    deployment: Deployment,
    service: Service,
}

impl Install {
    fn from_documents(docs: &[Value]) -> Install {
        Install {
            service_account: one(docs, "ServiceAccount"),
            cluster_role: one(docs, "ClusterRole"),
            cluster_role_binding: one(docs, "ClusterRoleBinding"),
            role: one(docs, "Role"),
            role_binding: one(docs, "RoleBinding"),
            deployment: one(docs, "Deployment"),
            service: one(docs, "Service"),
        }
    }

    /// Reads every object back from the cluster: they must exist.
    async fn read(client: &kube::Client, namespace: &str) -> Install {
        let here = || client.clone();
        Install {
            service_account: Api::namespaced(here(), namespace).get(NAME).await.unwrap(),
            cluster_role: Api::all(here()).get(NAME).await.unwrap(),
            cluster_role_binding: Api::all(here()).get(NAME).await.unwrap(),
            role: Api::namespaced(here(), namespace).get(NAME).await.unwrap(),
            role_binding: Api::namespaced(here(), namespace).get(NAME).await.unwrap(),
            deployment: Api::namespaced(here(), namespace).get(NAME).await.unwrap(),
            service: Api::namespaced(here(), namespace)
                .get(METRICS_SERVICE)
                .await
                .unwrap(),
        }
    }

    /// Every promise of the install about its objects, in `namespace`.
    fn check(&self, namespace: &str) {
        assert_eq!(
            self.service_account.metadata.namespace.as_deref(),
            Some(namespace)
        );
        check_cluster_rbac(&self.cluster_role, &self.cluster_role_binding, namespace);
        check_namespace_rbac(&self.role, &self.role_binding, namespace);
        check_deployment(&self.deployment, namespace);
        check_metrics_service(&self.service, &self.deployment, namespace);
    }
}

/// One permission: (API group, resource, verb, resource name or "" for any).
type Grant = (String, String, String, String);

/// Flattens rules into single permissions, refusing anything a least-privilege role
/// never needs: wildcards, non-resource URLs, privilege-changing verbs.
fn grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty),
            "non-resource URLs granted: {rule:?}"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        let names = match rule.resource_names.clone().unwrap_or_default() {
            n if n.is_empty() => vec![String::new()],
            n => n,
        };
        assert!(
            !groups.is_empty() && !resources.is_empty() && !rule.verbs.is_empty(),
            "incomplete rule: {rule:?}"
        );
        for field in groups
            .iter()
            .chain(&resources)
            .chain(&rule.verbs)
            .chain(&names)
        {
            assert!(!field.contains('*'), "wildcard in {rule:?}");
        }
        for verb in &rule.verbs {
            assert!(
                !["escalate", "bind", "impersonate", "deletecollection"].contains(&verb.as_str()),
                "privileged verb {verb} in {rule:?}"
            );
        }
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    for n in &names {
                        out.insert((g.clone(), r.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

fn expected(list: &[(&str, &str, &[&str], &str)]) -> BTreeSet<Grant> {
    list.iter()
        .flat_map(|(g, r, verbs, n)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string(), n.to_string()))
        })
        .collect()
}

/// Cluster-wide: TaskRuns get/list/watch/patch, Secrets get/create/delete, events.k8s.io
/// Events create/patch — nothing else.
fn check_cluster_rbac(role: &ClusterRole, binding: &ClusterRoleBinding, namespace: &str) {
    assert!(role.aggregation_rule.is_none(), "aggregated ClusterRole");
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    let contract = expected(&[
        (
            "tekton.dev",
            "taskruns",
            &["get", "list", "watch", "patch"],
            "",
        ),
        ("", "secrets", &["get", "create", "delete"], ""),
        ("events.k8s.io", "events", &["create", "patch"], ""),
    ]);
    assert_eq!(
        granted, contract,
        "ClusterRole grants differ from the contract"
    );
    // Spelled out, the two that would hurt most: reading every Secret of the cluster.
    for verb in ["list", "watch"] {
        assert!(
            !granted
                .iter()
                .any(|(_, r, v, _)| r == "secrets" && v == verb),
            "cluster-wide secrets {verb}"
        );
    }
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, NAME);
    check_subjects(binding.subjects.as_deref(), namespace);
}

/// In the controller's namespace: ConfigMaps read (host-config) and created / changed
/// only as known-hosts, Secrets read (admin keys), the Lease.
fn check_namespace_rbac(role: &Role, binding: &RoleBinding, namespace: &str) {
    assert_eq!(role.metadata.namespace.as_deref(), Some(namespace));
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    let contract = expected(&[
        ("", "configmaps", &["get", "list", "watch", "create"], ""),
        ("", "configmaps", &["update", "patch"], KNOWN_HOSTS),
        ("", "secrets", &["get", "list", "watch"], ""),
        ("coordination.k8s.io", "leases", &["create"], ""),
        ("coordination.k8s.io", "leases", &["get", "update"], LEASE),
    ]);
    assert_eq!(granted, contract, "Role grants differ from the contract");
    assert_eq!(binding.metadata.namespace.as_deref(), Some(namespace));
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, NAME);
    check_subjects(binding.subjects.as_deref(), namespace);
}

fn check_subjects(subjects: Option<&[k8s_openapi::api::rbac::v1::Subject]>, namespace: &str) {
    let subjects = subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, NAME);
    assert_eq!(subjects[0].namespace.as_deref(), Some(namespace));
}

/// The port number a probe or Service names, resolved through the container's ports.
fn port_number(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    }
}

fn controller_container(deployment: &Deployment) -> &Container {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    assert_eq!(pod.containers.len(), 1, "one container");
    &pod.containers[0]
}

fn check_deployment(deployment: &Deployment, namespace: &str) {
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(namespace));
    let spec = deployment.spec.as_ref().expect("spec");
    assert!(spec.replicas.unwrap_or(1) >= 1);
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "needs its token"
    );
    for (what, on) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        assert_ne!(on, Some(true), "{what}");
    }
    assert!(
        pod.volumes.as_ref().is_none_or(Vec::is_empty),
        "the controller needs no volume: {:?}",
        pod.volumes
    );
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(NONROOT_UID));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );

    let c = controller_container(deployment);
    let security = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_ne!(security.privileged, Some(true));
    assert_ne!(security.run_as_non_root, Some(false));
    assert!(
        security.run_as_user.is_none_or(|u| u != 0),
        "container runs as root"
    );
    let caps = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(caps.add.as_ref().is_none_or(Vec::is_empty), "{caps:?}");

    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert!(args.iter().any(|a| a == "--leader-elect"), "{args:?}");
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == var)
            .unwrap_or_else(|| panic!("env {var} missing"));
        let from = env
            .value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{var} is not from the downward API"));
        assert_eq!(from.field_path, field);
    }

    let ports: BTreeSet<(Option<&str>, i32)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from([
            (Some("metrics"), METRICS_PORT),
            (Some("health"), HEALTH_PORT)
        ])
    );
    for (probe, path) in [
        (c.liveness_probe.as_ref(), "/healthz"),
        (c.readiness_probe.as_ref(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no HTTP probe on {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(port_number(c, &get.port), HEALTH_PORT, "{path}");
    }

    let resources = c.resources.as_ref().expect("resources");
    let requests = resources.requests.clone().unwrap_or_default();
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{requests:?}"
    );
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|l| l.contains_key("memory")),
        "memory limit"
    );
}

fn check_metrics_service(service: &Service, deployment: &Deployment, namespace: &str) {
    assert_eq!(service.metadata.namespace.as_deref(), Some(namespace));
    let spec = service.spec.as_ref().expect("spec");
    let ports = spec.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name.as_deref(), Some("metrics"));
    assert_eq!(ports[0].port, METRICS_PORT);
    let target = ports[0]
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(ports[0].port));
    assert_eq!(
        port_number(controller_container(deployment), &target),
        METRICS_PORT
    );
    // The Service selects the controller's pods.
    let selector = spec.selector.clone().unwrap_or_default();
    let pod_labels = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "selector {selector:?} does not match pod labels {pod_labels:?}"
    );
}

/// The example Secrets: labelled, and certainly not a key: admin keys under `id_rsa`,
/// AWS credentials placeholders.
fn check_example_secrets(secrets: &[Secret]) {
    assert!(!secrets.is_empty());
    for s in secrets {
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(SECRET_LABEL).map(String::as_str), Some("true"));
        // As written (stringData) or as the API server returns it (data).
        let mut strings = s.string_data.clone().unwrap_or_default();
        for (k, v) in s.data.clone().unwrap_or_default() {
            strings.insert(k, String::from_utf8_lossy(&v.0).into_owned());
        }
        if let Some(id) = strings.get("access-key-id") {
            assert!(id.starts_with("PLACEHOLDER"), "{id}");
            assert!(strings["secret-access-key"].starts_with("PLACEHOLDER"));
            continue;
        }
        let key: Vec<u8> = match (&s.data, &s.string_data) {
            (Some(data), _) if data.contains_key(secret_keys::ADMIN_KEY) => {
                data[secret_keys::ADMIN_KEY].0.clone()
            }
            (_, Some(strings)) => strings
                .get(secret_keys::ADMIN_KEY)
                .expect("id_rsa")
                .clone()
                .into_bytes(),
            _ => panic!("no {} in {:?}", secret_keys::ADMIN_KEY, s.metadata.name),
        };
        assert!(
            AdminKey::parse(&key).is_err(),
            "an example Secret holds a usable private key"
        );
        let key = String::from_utf8(key).unwrap();
        assert!(key.starts_with("PLACEHOLDER - NOT A KEY"), "{key}");
    }
}

#[tokio::test]
async fn the_install_is_exactly_these_objects() {
    let docs = documents(&render(&config_dir()).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let want: BTreeSet<(String, String, String)> = [
        ("Namespace", "", ns),
        ("ServiceAccount", ns, NAME),
        ("ClusterRole", "", NAME),
        ("ClusterRoleBinding", "", NAME),
        ("Role", ns, NAME),
        ("RoleBinding", ns, NAME),
        ("Deployment", ns, NAME),
        ("Service", ns, METRICS_SERVICE),
    ]
    .iter()
    .map(|(k, n, name)| (k.to_string(), n.to_string(), name.to_string()))
    .collect();
    assert_eq!(identities(&docs), want);
    // Nothing of the admin's: applying the install never overwrites the pool or the keys.
    assert!(
        !docs
            .iter()
            .any(|d| ["ConfigMap", "Secret"].contains(&text(d, "/kind")))
    );
    let _: Namespace = one(&docs, "Namespace");
    Install::from_documents(&docs).check(ns);
    let image = controller_container(&one::<Deployment>(&docs, "Deployment"))
        .image
        .clone()
        .unwrap_or_default();
    assert!(
        image.ends_with("/multi-platform-controller:latest"),
        "kustomize sets the image: {image}"
    );
}

/// The Deployment's arguments are flags the binary knows, with values it accepts
/// (clap rejects an unknown flag or a bad value before it gets to `--help`).
#[tokio::test]
async fn the_binary_accepts_the_deployment_arguments() {
    let docs = documents(&render(&config_dir()).await);
    let deployment: Deployment = one(&docs, "Deployment");
    let args = controller_container(&deployment)
        .args
        .clone()
        .unwrap_or_default();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_multi-platform-controller"))
        .args(&args)
        .arg("--help")
        .output()
        .await
        .expect("run the binary");
    assert!(
        out.status.success(),
        "{args:?} rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--leader-elect"), "{help}");
}

#[tokio::test]
async fn the_examples_are_a_host_config_and_placeholder_admin_keys() {
    let docs = documents(&render(&examples_dir()).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let ids = identities(&docs);
    assert!(ids.contains(&("ConfigMap".into(), ns.into(), HOST_CONFIG_NAME.into())));
    let secrets: Vec<Secret> = docs
        .iter()
        .filter(|d| text(d, "/kind") == "Secret")
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    assert_eq!(ids.len(), 1 + secrets.len(), "{ids:?}");
    check_example_secrets(&secrets);
    // Every Secret host-config names is among the examples, and the other way round.
    let config: ConfigMap = one(&docs, "ConfigMap");
    assert!(
        config
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key(CONFIG_LABEL)
    );
    let named: BTreeSet<String> = config
        .data
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k.starts_with("host.") && k.ends_with(".secret"))
        .map(|(_, v)| v.clone())
        .collect();
    // The cloud platform's Secrets go with its (commented-out) example in host-config.
    let cloud = ["aws-account", "aws-ssh-key"];
    let shipped: BTreeSet<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|n| !cloud.contains(&n.as_str()))
        .collect();
    assert_eq!(named, shipped);
    let example = config_text();
    for name in cloud {
        assert!(
            example.contains(&format!("\"{name}\"")),
            "{name} not in the example"
        );
    }
}

/// host-config.yaml as shipped, comments included.
fn config_text() -> String {
    std::fs::read_to_string(examples_dir().join("host-config.yaml")).unwrap()
}

#[tokio::test]
async fn check_config_accepts_the_rendered_examples() {
    let rendered = render(&examples_dir()).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_multi-platform-controller"))
        .args(["check-config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(rendered.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 error(s), 0 warning(s)"), "{stdout}");
}

async fn env(prefix: &str) -> TestEnv {
    TestEnv::start(prefix)
        .await
        .unwrap_or_else(|e| panic!("test environment: {e}"))
}

/// kubectl arguments for the test's cluster, with a private discovery cache (kube-sim
/// ports are reused between runs with different resources).
fn cluster_args<'a>(env: &'a TestEnv, cache: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--kubeconfig",
        env.kubeconfig_path().to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(rest);
    args
}

/// Lines of `kubectl apply` output, `kind/name verb`, as (kind/name, verb).
fn applied(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(what, verb)| (what.to_string(), verb.to_string()))
        .collect()
}

#[tokio::test]
async fn kubectl_applies_the_install_and_the_examples() {
    let env = env("manifests").await;
    let cache = tempfile::tempdir().unwrap();
    let install = render(&config_dir()).await;
    let examples = render(&examples_dir()).await;
    if env.is_kube_sim() {
        apply_to_kube_sim(&env, cache.path(), &install, &examples).await;
    } else {
        dry_run_on_cluster(&env, cache.path(), &install, &examples).await;
    }
    env.cleanup().await.unwrap();
}

/// kube-sim: apply as an admin would (kubectl validates against the served OpenAPI), read
/// everything back, apply again (unchanged), then an upgrade with a new image
/// (configured, strategic merge on the Deployment).
async fn apply_to_kube_sim(env: &TestEnv, cache: &Path, install: &str, examples: &str) {
    let apply = cluster_args(env, cache, &["apply", "-f", "-"]);
    let first = run_kubectl(&apply, install).await;
    let results = applied(&first);
    assert_eq!(results.len(), 8, "{first}");
    assert!(results.iter().all(|(_, v)| v == "created"), "{first}");
    run_kubectl(&apply, examples).await;

    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let client = env.client();
    let namespace: Namespace = Api::all(client.clone()).get(ns).await.unwrap();
    assert_eq!(namespace.metadata.name.as_deref(), Some(ns));
    Install::read(&client, ns).await.check(ns);
    let host_config: ConfigMap = Api::namespaced(client.clone(), ns)
        .get(HOST_CONFIG_NAME)
        .await
        .unwrap();
    assert!(
        host_config
            .data
            .unwrap_or_default()
            .contains_key("host.arm-1.address")
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let admin_keys = secrets
        .list(&kube::api::ListParams::default().labels(&format!("{SECRET_LABEL}=true")))
        .await
        .unwrap()
        .items;
    assert_eq!(
        admin_keys.len(),
        4,
        "two admin keys, the AWS credentials and VM key"
    );
    check_example_secrets(&admin_keys);

    let again = run_kubectl(&apply, install).await;
    assert!(
        applied(&again).iter().all(|(_, v)| v == "unchanged"),
        "{again}"
    );
    let upgraded = install.replace(
        "/multi-platform-controller:latest",
        "/multi-platform-controller:v2",
    );
    assert_ne!(upgraded, install);
    let upgrade = run_kubectl(&apply, &upgraded).await;
    let changed: Vec<_> = applied(&upgrade)
        .into_iter()
        .filter(|(_, v)| v != "unchanged")
        .collect();
    assert_eq!(
        changed,
        vec![(format!("deployment.apps/{NAME}"), "configured".to_string())],
        "{upgrade}"
    );
    let after = Install::read(&client, ns).await;
    assert!(
        controller_container(&after.deployment)
            .image
            .as_deref()
            .is_some_and(|i| i.ends_with(":v2"))
    );
    assert_eq!(after.deployment.metadata.generation, Some(2));
    after.check(ns);
}

/// A real cluster: the install moved into the test's namespace (the Namespace object
/// dropped), `kubectl apply --dry-run=server`, checks on what the server returns.
async fn dry_run_on_cluster(env: &TestEnv, cache: &Path, install: &str, examples: &str) {
    eprintln!(
        "real cluster: server-side dry run only, in namespace {}; nothing is installed",
        env.namespace()
    );
    let ns = env.namespace();
    let relocate = |yaml: &str| -> String {
        let items: Vec<Value> = documents(yaml)
            .into_iter()
            .filter(|d| text(d, "/kind") != "Namespace")
            .map(|mut d| {
                if d.pointer("/metadata/namespace").is_some() {
                    d["metadata"]["namespace"] = ns.into();
                }
                if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
                    for s in subjects {
                        s["namespace"] = ns.into();
                    }
                }
                d
            })
            .collect();
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    };
    let dry_run = cluster_args(
        env,
        cache,
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
    );
    let out: Value = serde_json::from_str(&run_kubectl(&dry_run, &relocate(install)).await)
        .expect("kubectl prints JSON");
    let items = out
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![out.clone()]);
    assert_eq!(items.len(), 7, "every object but the Namespace");
    Install::from_documents(&items).check(ns);

    let out: Value = serde_json::from_str(&run_kubectl(&dry_run, &relocate(examples)).await)
        .expect("kubectl prints JSON");
    let secrets: Vec<Secret> = out["items"]
        .as_array()
        .expect("a List")
        .iter()
        .filter(|d| text(d, "/kind") == "Secret")
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    check_example_secrets(&secrets);
}
