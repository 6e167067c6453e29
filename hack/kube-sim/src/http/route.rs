//! URL paths of the Kubernetes API, parsed into what they address.

/// A path to a resource, collection or subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace of the URL, if any.
    pub namespace: Option<String>,
    /// Object name, if the path addresses one object.
    pub name: Option<String>,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/readyz`, `/livez`
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    GroupVersion(String, String),
    /// `/openapi/v2`, `/openapi/v3…`
    OpenApi,
    /// Anything under a group version.
    Resource(ResourcePath),
    /// Unknown.
    NotFound,
}

/// Parses a request path (without query).
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["openapi", ..] => Route::OpenApi,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let p = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    let is_namespace_sub = |s: &str| matches!(s, "status" | "finalize");
    match rest {
        [r] => p(r, None, None, None),
        ["namespaces", ns, sub] if group.is_empty() && is_namespace_sub(sub) => {
            p("namespaces", None, Some(ns), Some(sub))
        }
        ["namespaces", ns, r] => p(r, Some(ns), None, None),
        ["namespaces", ns, r, name] => p(r, Some(ns), Some(name), None),
        ["namespaces", ns, r, name, sub] => p(r, Some(ns), Some(name), Some(sub)),
        [r, name] => p(r, None, Some(name), None),
        [r, name, sub] => p(r, None, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Route) -> ResourcePath {
        match route {
            Route::Resource(r) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn parses_core_and_group_paths() {
        assert_eq!(parse("/version"), Route::Version);
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(
            parse("/api/v1"),
            Route::GroupVersion("".into(), "v1".into())
        );
        assert_eq!(parse("/apis/tekton.dev"), Route::Group("tekton.dev".into()));
        let r = res(parse("/api/v1/namespaces/a/configmaps/b"));
        assert_eq!(
            (r.plural.as_str(), r.namespace.as_deref(), r.name.as_deref()),
            ("configmaps", Some("a"), Some("b"))
        );
        let r = res(parse("/apis/tekton.dev/v1/namespaces/a/taskruns/b/status"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(r.group, "tekton.dev");
        let r = res(parse("/api/v1/namespaces/a"));
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("a"), None)
        );
        let r = res(parse("/api/v1/namespaces/a/status"));
        assert_eq!(
            (
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("a"), Some("status"))
        );
        let r = res(parse("/api/v1/namespaces/a/pods"));
        assert_eq!(
            (r.plural.as_str(), r.namespace.as_deref(), r.name),
            ("pods", Some("a"), None)
        );
        let r = res(parse(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.y",
        ));
        assert_eq!(r.name.as_deref(), Some("x.y"));
        assert_eq!(parse("/nope"), Route::NotFound);
        assert_eq!(parse("/openapi/v3"), Route::OpenApi);
    }
}
