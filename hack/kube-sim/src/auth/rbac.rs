//! RBAC as the API server's authorizer evaluates it, over the stored Roles, ClusterRoles
//! and their bindings (plain JSON): who may do what, for SubjectAccessReviews.
//!
//! Pure functions; [`super::reviews`] feeds them the objects of the store.

use serde_json::Value;

/// The group whose members may do anything (the API server's superuser group).
pub const SUPERUSER_GROUP: &str = "system:masters";

/// The user and request a SubjectAccessReview asks about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// User name (`system:serviceaccount:<ns>:<name>` for a ServiceAccount).
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Lower-case verb (`get`, `create`, …).
    pub verb: String,
    /// What the request addresses.
    pub target: Target,
}

/// A request on a resource, or on a plain URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `resourceAttributes`.
    Resource {
        /// Namespace ("" for cluster-scoped or all namespaces).
        namespace: String,
        /// API group ("" for core).
        group: String,
        /// Plural resource name.
        resource: String,
        /// Subresource ("" for none).
        subresource: String,
        /// Object name ("" for any).
        name: String,
    },
    /// `nonResourceAttributes`: a URL path such as `/metrics`.
    NonResource {
        /// The path.
        path: String,
    },
}

impl Default for Target {
    fn default() -> Self {
        Target::NonResource {
            path: String::new(),
        }
    }
}

/// The answer: allowed or not, and why (the API server's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether some rule allows the request.
    pub allowed: bool,
    /// `RBAC: allowed by …`, or empty when nothing allows it.
    pub reason: String,
}

/// The RBAC objects of the cluster, as stored.
#[derive(Debug, Default, Clone, Copy)]
pub struct Policy<'a> {
    /// Every ClusterRole.
    pub cluster_roles: &'a [Value],
    /// Every ClusterRoleBinding.
    pub cluster_role_bindings: &'a [Value],
    /// Every Role (of all namespaces).
    pub roles: &'a [Value],
    /// Every RoleBinding (of all namespaces).
    pub role_bindings: &'a [Value],
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v str> + 'v {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Whether `subject` of a binding in `binding_namespace` names the user.
fn subject_matches(subject: &Value, attrs: &Attributes, binding_namespace: &str) -> bool {
    let name = text(subject, "/name");
    match text(subject, "/kind") {
        "User" => name == attrs.user,
        "Group" => attrs.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            // A RoleBinding's ServiceAccount subject without a namespace means its own.
            let ns = match text(subject, "/namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            !ns.is_empty() && attrs.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn binds(binding: &Value, attrs: &Attributes) -> Option<String> {
    let ns = text(binding, "/metadata/namespace");
    binding
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| subject_matches(s, attrs, ns))
        .map(|s| {
            let kind = text(s, "/kind");
            let name = text(s, "/name");
            // The API server's wording: a ServiceAccount is "name/namespace".
            match (kind, text(s, "/namespace")) {
                ("ServiceAccount", "") => format!("{kind} \"{name}/{ns}\""),
                ("ServiceAccount", sns) => format!("{kind} \"{name}/{sns}\""),
                _ => format!("{kind} \"{name}\""),
            }
        })
}

fn verb_matches(rule: &Value, verb: &str) -> bool {
    strings(rule, "verbs").any(|v| v == "*" || v == verb)
}

/// One rule against the request (the API server's `RuleAllows`).
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    if !verb_matches(rule, &attrs.verb) {
        return false;
    }
    match &attrs.target {
        Target::NonResource { path } => strings(rule, "nonResourceURLs").any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        }),
        Target::Resource {
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let group_ok = strings(rule, "apiGroups").any(|g| g == "*" || g == group);
            let resource_ok = strings(rule, "resources").any(|r| {
                r == "*"
                    || r == combined
                    || (!subresource.is_empty() && r == format!("*/{subresource}"))
            });
            let mut names = strings(rule, "resourceNames").peekable();
            let name_ok = names.peek().is_none() || (!name.is_empty() && names.any(|n| n == name));
            group_ok && resource_ok && name_ok
        }
    }
}

/// The rules of the role a binding refers to (a missing role grants nothing).
fn role_rules<'p>(policy: &Policy<'p>, binding: &Value) -> &'p [Value] {
    let name = text(binding, "/roleRef/name");
    let found = match text(binding, "/roleRef/kind") {
        "ClusterRole" => policy
            .cluster_roles
            .iter()
            .find(|r| text(r, "/metadata/name") == name),
        "Role" => {
            let ns = text(binding, "/metadata/namespace");
            policy
                .roles
                .iter()
                .find(|r| text(r, "/metadata/name") == name && text(r, "/metadata/namespace") == ns)
        }
        _ => None,
    };
    found
        .and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Evaluates RBAC: the superuser group, then ClusterRoleBindings, then (for a resource
/// in a namespace) that namespace's RoleBindings. URL paths can only be granted by
/// ClusterRoles bound cluster-wide, as in Kubernetes.
pub fn authorize(policy: &Policy<'_>, attrs: &Attributes) -> Decision {
    if attrs.groups.iter().any(|g| g == SUPERUSER_GROUP) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    for binding in policy.cluster_role_bindings {
        if text(binding, "/roleRef/kind") != "ClusterRole" {
            continue;
        }
        let Some(subject) = binds(binding, attrs) else {
            continue;
        };
        if role_rules(policy, binding)
            .iter()
            .any(|r| rule_allows(r, attrs))
        {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to {subject}",
                    text(binding, "/metadata/name"),
                    text(binding, "/roleRef/name")
                ),
            };
        }
    }
    let Target::Resource { namespace, .. } = &attrs.target else {
        return denied();
    };
    if namespace.is_empty() {
        return denied();
    }
    for binding in policy
        .role_bindings
        .iter()
        .filter(|b| text(b, "/metadata/namespace") == namespace)
    {
        let Some(subject) = binds(binding, attrs) else {
            continue;
        };
        if role_rules(policy, binding)
            .iter()
            .any(|r| rule_allows(r, attrs))
        {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by RoleBinding \"{}/{namespace}\" of {} \"{}\" to {subject}",
                    text(binding, "/metadata/name"),
                    text(binding, "/roleRef/kind"),
                    text(binding, "/roleRef/name")
                ),
            };
        }
    }
    denied()
}

fn denied() -> Decision {
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa(ns: &str, name: &str) -> Attributes {
        Attributes {
            user: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            verb: "get".into(),
            target: Target::NonResource {
                path: "/metrics".into(),
            },
        }
    }

    fn reader_role() -> Value {
        json!({"metadata": {"name": "metrics-reader"},
               "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]})
    }

    fn crb(name: &str, role: &str, subjects: Value) -> Value {
        json!({"metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subjects})
    }

    #[test]
    fn a_bound_cluster_role_grants_a_url_and_nothing_else() {
        let roles = [reader_role()];
        let bindings = [crb(
            "read",
            "metrics-reader",
            json!([{"kind": "ServiceAccount", "name": "prom", "namespace": "mon"}]),
        )];
        let policy = Policy {
            cluster_roles: &roles,
            cluster_role_bindings: &bindings,
            ..Default::default()
        };
        let d = authorize(&policy, &sa("mon", "prom"));
        assert!(d.allowed);
        assert_eq!(
            d.reason,
            "RBAC: allowed by ClusterRoleBinding \"read\" of ClusterRole \"metrics-reader\" to ServiceAccount \"prom/mon\""
        );
        assert!(!authorize(&policy, &sa("other", "prom")).allowed);
        let mut post = sa("mon", "prom");
        post.verb = "post".into();
        assert!(!authorize(&policy, &post).allowed);
        let mut other_path = sa("mon", "prom");
        other_path.target = Target::NonResource {
            path: "/metrics/extra".into(),
        };
        assert!(!authorize(&policy, &other_path).allowed);
    }

    #[test]
    fn a_binding_to_a_missing_role_grants_nothing() {
        let bindings = [crb(
            "read",
            "no-such-role",
            json!([{"kind": "ServiceAccount", "name": "prom", "namespace": "mon"}]),
        )];
        let policy = Policy {
            cluster_role_bindings: &bindings,
            ..Default::default()
        };
        assert!(!authorize(&policy, &sa("mon", "prom")).allowed);
    }

    #[test]
    fn groups_users_wildcards_and_prefixes() {
        let roles = [json!({"metadata": {"name": "all-urls"},
                            "rules": [{"nonResourceURLs": ["/healthz/*"], "verbs": ["*"]}]})];
        let bindings = [crb(
            "g",
            "all-urls",
            json!([{"kind": "Group", "name": "system:serviceaccounts:mon"},
                   {"kind": "User", "name": "alice"}]),
        )];
        let policy = Policy {
            cluster_roles: &roles,
            cluster_role_bindings: &bindings,
            ..Default::default()
        };
        let mut a = sa("mon", "x");
        a.target = Target::NonResource {
            path: "/healthz/ping".into(),
        };
        assert!(authorize(&policy, &a).allowed);
        let alice = Attributes {
            user: "alice".into(),
            ..a.clone()
        };
        assert!(authorize(&policy, &alice).allowed);
        let root = Attributes {
            user: "root".into(),
            groups: vec![SUPERUSER_GROUP.into()],
            ..a
        };
        assert!(authorize(&Policy::default(), &root).allowed);
    }

    #[test]
    fn role_bindings_grant_resources_in_their_namespace_only() {
        let roles = [json!({"metadata": {"name": "leases", "namespace": "ctl"},
                            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                       "resourceNames": ["leader"], "verbs": ["get", "update"]}]})];
        let bindings = [json!({"metadata": {"name": "leases", "namespace": "ctl"},
                               "roleRef": {"kind": "Role", "name": "leases"},
                               "subjects": [{"kind": "ServiceAccount", "name": "ctl"}]})];
        let policy = Policy {
            roles: &roles,
            role_bindings: &bindings,
            ..Default::default()
        };
        let mut a = sa("ctl", "ctl");
        let lease = |ns: &str, name: &str| Target::Resource {
            namespace: ns.into(),
            group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            subresource: String::new(),
            name: name.into(),
        };
        a.target = lease("ctl", "leader");
        let d = authorize(&policy, &a);
        assert!(d.allowed, "{d:?}");
        assert!(d.reason.contains("RoleBinding \"leases/ctl\""), "{d:?}");
        a.target = lease("ctl", "other");
        assert!(!authorize(&policy, &a).allowed);
        a.target = lease("elsewhere", "leader");
        assert!(!authorize(&policy, &a).allowed);
        // A namespaced role never grants a URL path.
        a.target = Target::NonResource {
            path: "/metrics".into(),
        };
        assert!(!authorize(&policy, &a).allowed);
    }

    #[test]
    fn subresources_need_their_own_grant() {
        let rule =
            json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]});
        let mut a = sa("n", "x");
        a.verb = "create".into();
        a.target = Target::Resource {
            namespace: "n".into(),
            group: String::new(),
            resource: "serviceaccounts".into(),
            subresource: "token".into(),
            name: "x".into(),
        };
        assert!(!rule_allows(&rule, &a));
        let rule = json!({"apiGroups": [""], "resources": ["*/token"], "verbs": ["create"]});
        assert!(rule_allows(&rule, &a));
    }
}
