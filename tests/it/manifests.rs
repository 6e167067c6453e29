//! The install manifests: the standalone install `config/` and the Konflux-compatible
//! bases `deploy/operator` and `deploy/otp`. Each is rendered with `kubectl kustomize`,
//! applied with `kubectl apply` to kube-sim and read back with the `kube` client, and
//! checked against the controller's runtime contract: the objects an install consists
//! of, RBAC that grants exactly what the controller uses (and what its secured metrics
//! endpoint needs), a hardened Deployment with the probes, ports and certificate mount
//! the binary serves, and example configuration that `check-config` accepts. The
//! Konflux layout is also checked through an overlay shaped like Konflux's own
//! (`tests/it/konflux-overlay/`), applied over a Go-controller-shaped install.
//!
//! With `MPC_TEST_KUBECONFIG` set the same manifests go to that cluster with
//! `kubectl apply --dry-run=server` (moved into the test's own namespace, without the
//! Namespace object), so the real API server validates and defaults them and nothing is
//! installed; the same checks then run on the objects the server returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube_sim::TestEnv;
use mpc_core::naming::{
    CONFIG_LABEL, DEFAULT_CONTROLLER_NAMESPACE, HOST_CONFIG_NAME, SECRET_LABEL, secret_keys,
};
use multi_platform_controller::remote::AdminKey;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// From the runtime contract: the leader-election Lease and the known-hosts ConfigMap.
const LEASE: &str = mpc_core::naming::LEASE_NAME;
const KNOWN_HOSTS: &str = mpc_core::naming::KNOWN_HOSTS_CONFIG_NAME;
/// The ports the Deployments make `run` serve: HTTPS metrics, plain health probes.
const METRICS_PORT: i32 = 8443;
const HEALTH_PORT: i32 = 8081;
const NONROOT_UID: i64 = 65532;
/// The label Konflux's ServiceMonitor selects the metrics Service by.
const CONTROL_PLANE: (&str, &str) = ("control-plane", "controller-manager");
/// The Go controller's pod selector (immutable on a Deployment, so kept).
const GO_SELECTOR: (&str, &str) = ("app", "multi-platform-controller");

/// The names one layout gives the objects of an install.
struct Layout {
    /// Directory, relative to the repository root.
    dir: &'static str,
    service_account: &'static str,
    cluster_role: &'static str,
    cluster_role_binding: &'static str,
    role: &'static str,
    role_binding: &'static str,
    metrics_auth_role: &'static str,
    metrics_auth_binding: &'static str,
    /// The ClusterRole readers of /metrics are bound to, when the layout brings one.
    metrics_reader: Option<&'static str>,
    deployment: &'static str,
    container: &'static str,
    service: &'static str,
    health_port: &'static str,
    /// The optional Secret holding the metrics serving certificate.
    tls_secret: &'static str,
    /// Whether the pod runs as uid 65532 (the standalone install) or as whatever uid the
    /// platform assigns (OpenShift's restricted SCC, the Konflux layout).
    fixed_uid: bool,
}

/// `config/`: every object named `-rs`, beside the Go controller's.
const STANDALONE: Layout = Layout {
    dir: "config",
    service_account: "multi-platform-controller-rs",
    cluster_role: "multi-platform-controller-rs",
    cluster_role_binding: "multi-platform-controller-rs",
    role: "multi-platform-controller-rs",
    role_binding: "multi-platform-controller-rs",
    metrics_auth_role: "multi-platform-controller-rs-metrics-auth",
    metrics_auth_binding: "multi-platform-controller-rs-metrics-auth",
    metrics_reader: Some("multi-platform-controller-rs-metrics-reader"),
    deployment: "multi-platform-controller-rs",
    container: "controller",
    service: "multi-platform-controller-rs-metrics",
    health_port: "health",
    tls_secret: "multi-platform-controller-rs-metrics-tls",
    fixed_uid: true,
};

/// `deploy/operator`: the Go controller's names, as Konflux's overlays find them.
const KONFLUX: Layout = Layout {
    dir: "deploy/operator",
    service_account: "multi-platform-controller-controller-manager",
    cluster_role: "multi-platform-controller-manager-role",
    cluster_role_binding: "multi-platform-controller-manager-rolebinding",
    role: "multi-platform-controller-manager-role",
    role_binding: "multi-platform-controller-manager-rolebinding",
    metrics_auth_role: "multi-platform-controller-metrics-auth-role",
    metrics_auth_binding: "multi-platform-controller-metrics-auth-rolebinding",
    metrics_reader: None,
    deployment: "multi-platform-controller",
    container: "manager",
    service: "controller-manager-metrics-service",
    health_port: "probes",
    tls_secret: "multi-platform-controller-metrics-tls",
    fixed_uid: false,
};

impl Layout {
    fn path(&self) -> PathBuf {
        repo().join(self.dir)
    }

    /// (kind, namespace, name) of every object the layout installs.
    fn identities(&self, ns: &str) -> BTreeSet<(String, String, String)> {
        let mut all = vec![
            ("Namespace", "", ns),
            ("ServiceAccount", ns, self.service_account),
            ("ClusterRole", "", self.cluster_role),
            ("ClusterRoleBinding", "", self.cluster_role_binding),
            ("Role", ns, self.role),
            ("RoleBinding", ns, self.role_binding),
            ("ClusterRole", "", self.metrics_auth_role),
            ("ClusterRoleBinding", "", self.metrics_auth_binding),
            ("Deployment", ns, self.deployment),
            ("Service", ns, self.service),
        ];
        if let Some(reader) = self.metrics_reader {
            all.push(("ClusterRole", "", reader));
        }
        all.iter()
            .map(|(k, n, name)| (k.to_string(), n.to_string(), name.to_string()))
            .collect()
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples_dir() -> PathBuf {
    repo().join("config/examples")
}

fn otp_dir() -> PathBuf {
    repo().join("deploy/otp")
}

fn konflux_overlay_dir() -> PathBuf {
    repo().join("tests/it/konflux-overlay")
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

/// Documents back to one YAML stream (JSON is YAML) for kubectl.
fn to_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{d}\n"))
        .collect::<String>()
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

/// The one object of `kind` named `name`, typed.
fn named<K: DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> K {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| text(d, "/kind") == kind && text(d, "/metadata/name") == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name}, found {}",
        found.len()
    );
    serde_json::from_value(found[0].clone())
        .unwrap_or_else(|e| panic!("the {kind} {name} does not match the Kubernetes schema: {e}"))
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
    metrics_auth_role: ClusterRole,
    metrics_auth_binding: ClusterRoleBinding,
    metrics_reader: Option<ClusterRole>,
    deployment: Deployment,
    service: Service,
}

impl Install {
    fn from_documents(docs: &[Value], layout: &Layout) -> Install {
        Install {
            service_account: named(docs, "ServiceAccount", layout.service_account),
            cluster_role: named(docs, "ClusterRole", layout.cluster_role),
            cluster_role_binding: named(docs, "ClusterRoleBinding", layout.cluster_role_binding),
            role: named(docs, "Role", layout.role),
            role_binding: named(docs, "RoleBinding", layout.role_binding),
            metrics_auth_role: named(docs, "ClusterRole", layout.metrics_auth_role),
            metrics_auth_binding: named(docs, "ClusterRoleBinding", layout.metrics_auth_binding),
            metrics_reader: layout
                .metrics_reader
                .map(|name| named(docs, "ClusterRole", name)),
            deployment: named(docs, "Deployment", layout.deployment),
            service: named(docs, "Service", layout.service),
        }
    }

    /// Reads every object back from the cluster: they must exist.
    async fn read(client: &kube::Client, namespace: &str, layout: &Layout) -> Install {
        let here = || client.clone();
        let cluster_role = |name: &'static str| async move {
            Api::<ClusterRole>::all(client.clone())
                .get(name)
                .await
                .unwrap()
        };
        let metrics_reader = match layout.metrics_reader {
            Some(name) => Some(cluster_role(name).await),
            None => None,
        };
        Install {
            service_account: Api::namespaced(here(), namespace)
                .get(layout.service_account)
                .await
                .unwrap(),
            cluster_role: cluster_role(layout.cluster_role).await,
            cluster_role_binding: Api::all(here())
                .get(layout.cluster_role_binding)
                .await
                .unwrap(),
            role: Api::namespaced(here(), namespace)
                .get(layout.role)
                .await
                .unwrap(),
            role_binding: Api::namespaced(here(), namespace)
                .get(layout.role_binding)
                .await
                .unwrap(),
            metrics_auth_role: cluster_role(layout.metrics_auth_role).await,
            metrics_auth_binding: Api::all(here())
                .get(layout.metrics_auth_binding)
                .await
                .unwrap(),
            metrics_reader,
            deployment: Api::namespaced(here(), namespace)
                .get(layout.deployment)
                .await
                .unwrap(),
            service: Api::namespaced(here(), namespace)
                .get(layout.service)
                .await
                .unwrap(),
        }
    }

    /// Every promise of the install about its objects, in `namespace`.
    fn check(&self, namespace: &str, layout: &Layout) {
        assert_eq!(
            self.service_account.metadata.namespace.as_deref(),
            Some(namespace)
        );
        check_cluster_rbac(
            &self.cluster_role,
            &self.cluster_role_binding,
            namespace,
            layout,
        );
        check_namespace_rbac(&self.role, &self.role_binding, namespace, layout);
        check_metrics_auth(
            &self.metrics_auth_role,
            &self.metrics_auth_binding,
            namespace,
            layout,
        );
        if let Some(reader) = &self.metrics_reader {
            check_metrics_reader(reader);
        }
        check_deployment(&self.deployment, namespace, layout);
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
fn check_cluster_rbac(
    role: &ClusterRole,
    binding: &ClusterRoleBinding,
    namespace: &str,
    layout: &Layout,
) {
    assert!(role.aggregation_rule.is_none(), "aggregated ClusterRole");
    assert!(
        !role
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .keys()
            .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to")),
        "the controller's role is aggregated into user roles"
    );
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
    assert_eq!(binding.role_ref.name, layout.cluster_role);
    check_subjects(binding.subjects.as_deref(), namespace, layout);
}

/// In the controller's namespace: ConfigMaps read (host-config) and created / changed
/// only as known-hosts, Secrets read (admin keys), the Lease.
fn check_namespace_rbac(role: &Role, binding: &RoleBinding, namespace: &str, layout: &Layout) {
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
    assert_eq!(binding.role_ref.name, layout.role);
    check_subjects(binding.subjects.as_deref(), namespace, layout);
}

/// The secured metrics endpoint: create TokenReviews and SubjectAccessReviews, nothing
/// else.
fn check_metrics_auth(
    role: &ClusterRole,
    binding: &ClusterRoleBinding,
    namespace: &str,
    layout: &Layout,
) {
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    let contract = expected(&[
        ("authentication.k8s.io", "tokenreviews", &["create"], ""),
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            &["create"],
            "",
        ),
    ]);
    assert_eq!(granted, contract, "metrics-auth grants differ");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, layout.metrics_auth_role);
    check_subjects(binding.subjects.as_deref(), namespace, layout);
}

/// Readers of /metrics: `get` on that URL and nothing else.
fn check_metrics_reader(role: &ClusterRole) {
    let rules = role.rules.as_deref().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0].non_resource_urls.as_deref(),
        Some(&["/metrics".to_string()][..])
    );
    assert_eq!(rules[0].verbs, vec!["get".to_string()]);
    assert!(rules[0].resources.as_ref().is_none_or(Vec::is_empty));
}

fn check_subjects(
    subjects: Option<&[k8s_openapi::api::rbac::v1::Subject]>,
    namespace: &str,
    layout: &Layout,
) {
    let subjects = subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, layout.service_account);
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

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(flag)?.strip_prefix('='))
}

fn check_deployment(deployment: &Deployment, namespace: &str, layout: &Layout) {
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(namespace));
    let spec = deployment.spec.as_ref().expect("spec");
    assert!(spec.replicas.unwrap_or(1) >= 1);
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(layout.service_account)
    );
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
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    let uid = layout.fixed_uid.then_some(NONROOT_UID);
    assert_eq!(pod_security.run_as_user, uid);
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );

    let c = controller_container(deployment);
    assert_eq!(c.name, layout.container);
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
    assert_eq!(
        flag(&args, "--metrics-bind-address"),
        Some(":8443"),
        "{args:?}"
    );
    assert!(
        flag(&args, "--metrics-secure").is_none_or(|v| v == "true"),
        "metrics served without authentication: {args:?}"
    );
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

    // The only volume: the metrics serving certificate, an optional Secret mounted
    // read-only where --metrics-cert-path points.
    let volumes = pod.volumes.clone().unwrap_or_default();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let secret = volumes[0].secret.as_ref().expect("a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some(layout.tls_secret));
    assert_eq!(secret.optional, Some(true), "the pod starts without it");
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].name, volumes[0].name);
    assert_eq!(mounts[0].read_only, Some(true));
    assert_eq!(
        flag(&args, "--metrics-cert-path"),
        Some(mounts[0].mount_path.as_str()),
        "{args:?}"
    );

    let ports: BTreeSet<(Option<&str>, i32)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from([
            (Some("https"), METRICS_PORT),
            (Some(layout.health_port), HEALTH_PORT)
        ])
    );
    assert_eq!(flag(&args, "--health-probe-bind-address"), Some(":8081"));
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

fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn check_metrics_service(service: &Service, deployment: &Deployment, namespace: &str) {
    assert_eq!(service.metadata.namespace.as_deref(), Some(namespace));
    let spec = service.spec.as_ref().expect("spec");
    let ports = spec.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name.as_deref(), Some("https"));
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
    let pod_labels = pod_labels(deployment);
    assert!(!selector.is_empty());
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "selector {selector:?} does not match pod labels {pod_labels:?}"
    );
}

/// What Konflux's overlays rely on besides names: the Go selector, the label their
/// ServiceMonitor selects, a rollout that never runs a Go pod beside ours.
fn check_konflux_shape(install: &Install) {
    let spec = install.deployment.spec.as_ref().expect("spec");
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert_eq!(
        selector,
        BTreeMap::from([(GO_SELECTOR.0.to_string(), GO_SELECTOR.1.to_string())]),
        "a Deployment's selector cannot change: it must stay the Go one"
    );
    assert_eq!(
        pod_labels(&install.deployment)
            .get(GO_SELECTOR.0)
            .map(String::as_str),
        Some(GO_SELECTOR.1)
    );
    let strategy = spec.strategy.as_ref().expect("a strategy");
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert!(strategy.rolling_update.is_none(), "{strategy:?}");
    let labels = install.service.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(CONTROL_PLANE.0).map(String::as_str),
        Some(CONTROL_PLANE.1),
        "Konflux's ServiceMonitor selects control-plane: controller-manager"
    );
    // The Go Service's other labels, which an overlay may select on too.
    for (key, value) in [
        ("app.kubernetes.io/name", "multi-platform-controller"),
        ("app.kubernetes.io/managed-by", "kustomize"),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
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
async fn the_standalone_install_is_exactly_these_objects() {
    let docs = documents(&render(&STANDALONE.path()).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    assert_eq!(identities(&docs), STANDALONE.identities(ns));
    // Nothing of the admin's: applying the install never overwrites the pool or the keys.
    assert!(
        !docs
            .iter()
            .any(|d| ["ConfigMap", "Secret"].contains(&text(d, "/kind")))
    );
    let _: Namespace = one(&docs, "Namespace");
    Install::from_documents(&docs, &STANDALONE).check(ns, &STANDALONE);
    let image = controller_container(&one::<Deployment>(&docs, "Deployment"))
        .image
        .clone()
        .unwrap_or_default();
    assert!(
        image.ends_with("/multi-platform-controller:latest"),
        "kustomize sets the image: {image}"
    );
}

#[tokio::test]
async fn the_konflux_bases_are_exactly_these_objects() {
    let docs = documents(&render(&KONFLUX.path()).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    assert_eq!(identities(&docs), KONFLUX.identities(ns));
    assert!(
        !docs
            .iter()
            .any(|d| ["ConfigMap", "Secret", "Task"].contains(&text(d, "/kind"))),
        "no provisioning Tasks, scripts or keys"
    );
    let install = Install::from_documents(&docs, &KONFLUX);
    install.check(ns, &KONFLUX);
    check_konflux_shape(&install);
    // Overlays set the image by this name.
    assert_eq!(
        controller_container(&install.deployment).image.as_deref(),
        Some("multi-platform-controller")
    );
    // deploy/otp: empty, so that overlays listing it still build.
    assert_eq!(documents(&render(&otp_dir()).await), Vec::<Value>::new());
}

/// The Deployments' arguments are flags the binary knows, with values it accepts
/// (clap rejects an unknown flag or a bad value before it gets to `--help`).
#[tokio::test]
async fn the_binary_accepts_the_deployment_arguments() {
    for layout in [&STANDALONE, &KONFLUX] {
        let docs = documents(&render(&layout.path()).await);
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
            "{}: {args:?} rejected: {}",
            layout.dir,
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--metrics-cert-path"), "{help}");
    }
}

/// Konflux's overlay, with its remote bases pointed at this repository and its image at
/// ours, builds (the metrics-reader objects it brings do not collide with the bases), the
/// image and the `manager` patch land on our container, and its ServiceMonitor finds our
/// Service, port and a token that may read /metrics.
#[tokio::test]
async fn a_konflux_overlay_switches_by_base_and_image_alone() {
    let docs = documents(&render(&konflux_overlay_dir()).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let install = Install::from_documents(&docs, &KONFLUX);
    install.check(ns, &KONFLUX);
    check_konflux_shape(&install);
    let manager = controller_container(&install.deployment);
    assert_eq!(
        manager.image.as_deref(),
        Some("quay.io/example/multi-platform-controller-rs:v0.1.0")
    );
    let limits = manager
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("512Mi"));

    let monitor = docs
        .iter()
        .find(|d| text(d, "/kind") == "ServiceMonitor")
        .expect("the overlay's ServiceMonitor");
    let wanted: BTreeMap<String, String> =
        serde_json::from_value(monitor["spec"]["selector"]["matchLabels"].clone()).unwrap();
    let services: Vec<&Value> = docs
        .iter()
        .filter(|d| text(d, "/kind") == "Service")
        .filter(|d| {
            wanted
                .iter()
                .all(|(k, v)| d["metadata"]["labels"][k].as_str() == Some(v))
        })
        .collect();
    assert_eq!(services.len(), 1, "the ServiceMonitor selects {services:?}");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(text(endpoint, "/scheme"), "https");
    assert_eq!(text(endpoint, "/path"), "/metrics");
    assert!(
        services[0]["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == endpoint["port"]),
        "no port {} on {}",
        endpoint["port"],
        text(services[0], "/metadata/name")
    );
    // The token's ServiceAccount is bound to a ClusterRole of the build that grants the
    // read.
    let token_secret = text(endpoint, "/bearerTokenSecret/name");
    let secret: Secret = named(&docs, "Secret", token_secret);
    let reader = secret
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .remove("kubernetes.io/service-account.name")
        .expect("a ServiceAccount token Secret");
    let bindings: Vec<ClusterRoleBinding> = docs
        .iter()
        .filter(|d| text(d, "/kind") == "ClusterRoleBinding")
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .filter(|b: &ClusterRoleBinding| {
            b.subjects
                .iter()
                .flatten()
                .any(|s| s.kind == "ServiceAccount" && s.name == reader)
        })
        .collect();
    assert_eq!(bindings.len(), 1);
    let role: ClusterRole = named(&docs, "ClusterRole", &bindings[0].role_ref.name);
    check_metrics_reader(&role);
}

/// `deploy/monitoring`: the PrometheusRule and the dashboard in a ConfigMap Grafana's
/// sidecar picks up, byte for byte the dashboard file.
#[tokio::test]
async fn the_monitoring_kustomization_holds_the_rules_and_the_dashboard() {
    let docs = documents(&render(&repo().join("deploy/monitoring")).await);
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let ids = identities(&docs);
    let want: BTreeSet<(String, String, String)> = [
        ("PrometheusRule", ns, "multi-platform-controller"),
        ("ConfigMap", ns, "multi-platform-controller-dashboard"),
    ]
    .iter()
    .map(|(k, n, name)| (k.to_string(), n.to_string(), name.to_string()))
    .collect();
    assert_eq!(ids, want);
    let board: ConfigMap = one(&docs, "ConfigMap");
    assert_eq!(
        board
            .metadata
            .labels
            .unwrap_or_default()
            .get("grafana_dashboard")
            .map(String::as_str),
        Some("1")
    );
    let shipped = std::fs::read_to_string(repo().join("deploy/monitoring/dashboard.json")).unwrap();
    assert_eq!(
        board.data.unwrap_or_default().get("dashboard.json"),
        Some(&shipped)
    );
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
    let install = render(&STANDALONE.path()).await;
    let examples = render(&examples_dir()).await;
    if env.is_kube_sim() {
        apply_to_kube_sim(&env, cache.path(), &install, &examples).await;
    } else {
        dry_run_on_cluster(&env, cache.path(), &install, &STANDALONE).await;
        dry_run_examples(&env, cache.path(), &examples).await;
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
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    assert_eq!(results.len(), STANDALONE.identities(ns).len(), "{first}");
    assert!(results.iter().all(|(_, v)| v == "created"), "{first}");
    run_kubectl(&apply, examples).await;

    let client = env.client();
    let namespace: Namespace = Api::all(client.clone()).get(ns).await.unwrap();
    assert_eq!(namespace.metadata.name.as_deref(), Some(ns));
    Install::read(&client, ns, &STANDALONE)
        .await
        .check(ns, &STANDALONE);
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

    // The controller may create the reviews its metrics endpoint asks for.
    let controller = format!("system:serviceaccount:{ns}:{}", STANDALONE.service_account);
    for (group, resource) in [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ] {
        assert!(may_create(&client, &controller, ns, group, resource).await);
    }

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
        vec![(
            format!("deployment.apps/{}", STANDALONE.deployment),
            "configured".to_string()
        )],
        "{upgrade}"
    );
    let after = Install::read(&client, ns, &STANDALONE).await;
    assert!(
        controller_container(&after.deployment)
            .image
            .as_deref()
            .is_some_and(|i| i.ends_with(":v2"))
    );
    assert_eq!(after.deployment.metadata.generation, Some(2));
    after.check(ns, &STANDALONE);
}

/// Whether `user` (a ServiceAccount) may create `resource`, by a SubjectAccessReview.
async fn may_create(
    client: &kube::Client,
    user: &str,
    ns: &str,
    group: &str,
    resource: &str,
) -> bool {
    sar(
        client,
        user,
        ns,
        SubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                verb: Some("create".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
}

/// Whether ServiceAccount user `user` may `get` the URL /metrics.
async fn may_read_metrics(client: &kube::Client, user: &str, ns: &str) -> bool {
    sar(
        client,
        user,
        ns,
        SubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/metrics".to_owned()),
                verb: Some("get".to_owned()),
            }),
            ..Default::default()
        },
    )
    .await
}

async fn sar(client: &kube::Client, user: &str, ns: &str, spec: SubjectAccessReviewSpec) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".to_owned(),
            ]),
            ..spec
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .is_some_and(|s| s.allowed)
}

/// The Go controller as its deploy/operator installed it (the shape Konflux clusters run:
/// the Deployment with its `manager` container and the kube-rbac-proxy sidecar, the
/// ServiceAccount, the broad ClusterRole and its binding), applied the way Argo CD does.
fn go_controller_install(ns: &str) -> String {
    let docs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "multi-platform-controller-controller-manager", "namespace": ns,
                            "labels": {"app": "multi-platform-controller"}}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "multi-platform-controller-manager-role",
                            "labels": {"app": "multi-platform-controller"}},
               "rules": [
                   {"apiGroups": [""], "resources": ["secrets", "configmaps", "pods"],
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
                   {"apiGroups": ["tekton.dev"], "resources": ["taskruns", "taskruns/status"],
                    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "multi-platform-controller-manager-rolebinding",
                            "labels": {"app": "multi-platform-controller"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "multi-platform-controller-manager-role"},
               "subjects": [{"kind": "ServiceAccount", "namespace": ns,
                             "name": "multi-platform-controller-controller-manager"}]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "multi-platform-controller", "namespace": ns,
                            "labels": {"app": "multi-platform-controller"}},
               "spec": {
                   "replicas": 1,
                   "selector": {"matchLabels": {"app": "multi-platform-controller"}},
                   "template": {
                       "metadata": {"labels": {"app": "multi-platform-controller"}},
                       "spec": {
                           "serviceAccountName": "multi-platform-controller-controller-manager",
                           "securityContext": {"runAsNonRoot": true},
                           "containers": [
                               {"name": "kube-rbac-proxy", "image": "gcr.io/kubebuilder/kube-rbac-proxy:v0.15.0",
                                "args": ["--secure-listen-address=0.0.0.0:8443", "--upstream=http://127.0.0.1:8080/"],
                                "ports": [{"containerPort": 8443, "name": "https", "protocol": "TCP"}]},
                               {"name": "manager", "image": "quay.io/konflux-ci/multi-platform-controller:go",
                                "args": ["--health-probe-bind-address=:8081", "--metrics-bind-address=127.0.0.1:8080"],
                                "ports": [{"containerPort": 8081, "name": "probes", "protocol": "TCP"}],
                                "resources": {"limits": {"memory": "4Gi"}, "requests": {"memory": "512Mi"}}}]}}}}),
    ];
    to_stream(&docs)
}

/// Drops the kinds a cluster may not serve (the Prometheus Operator's ServiceMonitor).
fn without_monitors(yaml: &str) -> Vec<Value> {
    documents(yaml)
        .into_iter()
        .filter(|d| text(d, "/kind") != "ServiceMonitor")
        .collect()
}

/// The switch on kube-sim: the Go controller's install is replaced by the Konflux overlay
/// in place (kubectl's three-way merge drops the sidecar and the Go-only grants), the
/// controller may create its reviews and the overlay's metrics-reader may read /metrics.
/// On a real cluster: the overlay is dry-run on the server.
#[tokio::test]
async fn kubectl_applies_the_konflux_overlay_over_the_go_controller() {
    let env = env("manifests-konflux").await;
    let cache = tempfile::tempdir().unwrap();
    let overlay = render(&konflux_overlay_dir()).await;
    if !env.is_kube_sim() {
        dry_run_on_cluster(
            &env,
            cache.path(),
            &to_stream(&without_monitors(&overlay)),
            &KONFLUX,
        )
        .await;
        env.cleanup().await.unwrap();
        return;
    }
    let ns = DEFAULT_CONTROLLER_NAMESPACE;
    let client = env.client();
    let apply = cluster_args(&env, cache.path(), &["apply", "-f", "-"]);
    run_kubectl(&apply, &go_controller_install(ns)).await;
    // The API server defaults a RollingUpdate strategy; a Recreate without clearing it
    // would be refused by a real API server.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .patch(
            KONFLUX.deployment,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}})),
        )
        .await
        .unwrap();

    let switched = run_kubectl(&apply, &to_stream(&without_monitors(&overlay))).await;
    let verbs: BTreeMap<String, String> = applied(&switched).into_iter().collect();
    assert_eq!(
        verbs
            .get("deployment.apps/multi-platform-controller")
            .map(String::as_str),
        Some("configured"),
        "{switched}"
    );
    let install = Install::read(&client, ns, &KONFLUX).await;
    install.check(ns, &KONFLUX);
    check_konflux_shape(&install);
    assert_eq!(
        controller_container(&install.deployment).image.as_deref(),
        Some("quay.io/example/multi-platform-controller-rs:v0.1.0")
    );

    let controller = format!("system:serviceaccount:{ns}:{}", KONFLUX.service_account);
    for (group, resource) in [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ] {
        assert!(may_create(&client, &controller, ns, group, resource).await);
    }
    assert!(
        !may_create(&client, &controller, ns, "", "pods").await,
        "Go-only grants are gone"
    );
    let reader = format!("system:serviceaccount:{ns}:metrics-reader");
    assert!(may_read_metrics(&client, &reader, ns).await);
    assert!(!may_read_metrics(&client, &controller, ns).await);

    let again = run_kubectl(&apply, &to_stream(&without_monitors(&overlay))).await;
    assert!(
        applied(&again).iter().all(|(_, v)| v == "unchanged"),
        "{again}"
    );
    env.cleanup().await.unwrap();
}

/// A real cluster: the install moved into the test's namespace (the Namespace object
/// dropped), `kubectl apply --dry-run=server`, checks on what the server returns.
async fn dry_run_on_cluster(env: &TestEnv, cache: &Path, install: &str, layout: &Layout) {
    eprintln!(
        "real cluster: server-side dry run only, in namespace {}; nothing is installed",
        env.namespace()
    );
    let ns = env.namespace();
    let dry_run = cluster_args(
        env,
        cache,
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
    );
    let out: Value = serde_json::from_str(&run_kubectl(&dry_run, &relocate(install, ns)).await)
        .expect("kubectl prints JSON");
    let items = out
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![out.clone()]);
    let expected = identities(&documents(install))
        .iter()
        .filter(|(kind, _, _)| kind != "Namespace")
        .count();
    assert_eq!(items.len(), expected, "every object but the Namespace");
    let install = Install::from_documents(&items, layout);
    install.check(ns, layout);
    if layout.dir == KONFLUX.dir {
        check_konflux_shape(&install);
    }
}

async fn dry_run_examples(env: &TestEnv, cache: &Path, examples: &str) {
    let dry_run = cluster_args(
        env,
        cache,
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
    );
    let out: Value =
        serde_json::from_str(&run_kubectl(&dry_run, &relocate(examples, env.namespace())).await)
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

/// The objects moved into namespace `ns` (the Namespace object dropped), as a List.
fn relocate(yaml: &str, ns: &str) -> String {
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
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}
