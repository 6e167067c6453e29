//! The HTTP side of [`super`]: TokenRequest, TokenReview and SubjectAccessReview, which
//! the API server answers without storing anything.

use http::Method;
use serde_json::{Value, json};

use super::rbac::{self, Attributes, Policy, Target};
use super::{Identities, Identity, UserInfo};
use crate::error::{ApiError, ApiResult, Reason};
use crate::http::route::ResourcePath;
use crate::store::{ListOptions, Store};

/// Shortest token lifetime a TokenRequest may ask for (the API server's 10 minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// A TokenRequest's lifetime when it asks for none.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// The review endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `serviceaccounts/<name>/token`.
    TokenRequest,
    /// `tokenreviews`.
    TokenReview,
    /// `subjectaccessreviews`.
    SubjectAccessReview,
}

impl Endpoint {
    /// The endpoint a path addresses, if it is one of these (whatever the method).
    pub(crate) fn of(p: &ResourcePath) -> Option<Endpoint> {
        match (
            p.group.as_str(),
            p.version.as_str(),
            p.plural.as_str(),
            p.subresource.as_deref(),
        ) {
            ("", "v1", "serviceaccounts", Some("token")) if p.name.is_some() => {
                Some(Endpoint::TokenRequest)
            }
            ("authentication.k8s.io", "v1", "tokenreviews", None) if p.name.is_none() => {
                Some(Endpoint::TokenReview)
            }
            ("authorization.k8s.io", "v1", "subjectaccessreviews", None) if p.name.is_none() => {
                Some(Endpoint::SubjectAccessReview)
            }
            _ => None,
        }
    }
}

/// Answers one review request with the object the API server returns (201 Created).
pub(crate) fn answer(
    store: &Store,
    identities: &Identities,
    endpoint: Endpoint,
    p: &ResourcePath,
    body: &Value,
) -> ApiResult<Value> {
    match endpoint {
        Endpoint::TokenRequest => token_request(store, identities, p, body),
        Endpoint::TokenReview => token_review(store, identities, body),
        Endpoint::SubjectAccessReview => subject_access_review(store, body),
    }
}

fn kind_check(body: &Value, api_version: &str, kind: &str) -> ApiResult<()> {
    let got = (
        body.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        body.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    // Like the API server, an empty apiVersion/kind is defaulted from the URL.
    if (got.0.is_empty() || got.0 == api_version) && (got.1.is_empty() || got.1 == kind) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({api_version}) or the kind ({}) is not {kind}",
            got.0, got.1
        )))
    }
}

fn token_request(
    store: &Store,
    identities: &Identities,
    p: &ResourcePath,
    body: &Value,
) -> ApiResult<Value> {
    kind_check(body, "authentication.k8s.io/v1", "TokenRequest")?;
    let namespace = p.namespace.as_deref().unwrap_or("");
    let name = p.name.as_deref().unwrap_or("");
    let info = store
        .resource("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("ServiceAccounts are not served"))?;
    let account = store.get(&info, Some(namespace), name)?;
    let uid = crate::object::uid(&account.value).to_string();
    let seconds = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            &[format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            )],
        ));
    }
    let now = jiff::Timestamp::now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .map_err(|e| ApiError::bad_request(format!("spec.expirationSeconds: {e}")))?;
    let token = identities.issue(namespace, name, &uid, expires);
    let audiences = body
        .pointer("/spec/audiences")
        .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!(["https://kubernetes.default.svc"]));
    Ok(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": crate::object::now_rfc3339(),
        },
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": body.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null),
        },
        "status": {
            "token": token,
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
    }))
}

/// Who the token belongs to, if anyone (an expired token, or one whose ServiceAccount is
/// gone or was re-created, belongs to no one).
fn authenticate(store: &Store, identities: &Identities, token: &str) -> Option<UserInfo> {
    match identities.lookup(token)? {
        Identity::Static(user) => Some(user),
        Identity::ServiceAccount {
            namespace,
            name,
            uid,
            expires,
        } => {
            if jiff::Timestamp::now() >= expires {
                return None;
            }
            let info = store.resource("", "v1", "serviceaccounts")?;
            let account = store.get(&info, Some(&namespace), &name).ok()?;
            (crate::object::uid(&account.value) == uid)
                .then(|| UserInfo::service_account(&namespace, &name, &uid))
        }
    }
}

fn token_review(store: &Store, identities: &Identities, body: &Value) -> ApiResult<Value> {
    kind_check(body, "authentication.k8s.io/v1", "TokenReview")?;
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        // The API server's words for it.
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences = body
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(Value::Null);
    let echoed = if audiences.is_null() {
        json!(["https://kubernetes.default.svc"])
    } else {
        audiences.clone()
    };
    let status = match authenticate(store, identities, token) {
        Some(user) => json!({
            "authenticated": true,
            "user": {"username": user.username, "uid": user.uid, "groups": user.groups},
            "audiences": echoed,
        }),
        None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
    };
    Ok(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"token": token, "audiences": audiences},
        "status": status,
    }))
}

fn texts(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The attributes a SubjectAccessReview asks about, validated as the API server does.
pub(crate) fn review_attributes(body: &Value) -> ApiResult<Attributes> {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let user = s(&spec, "user");
    let groups = texts(spec.get("groups"));
    let invalid = |cause: &str| {
        ApiError::invalid(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "",
            &[cause.to_string()],
        )
    };
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let (verb, target) = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) if r.is_object() => (
            s(r, "verb"),
            Target::Resource {
                namespace: s(r, "namespace"),
                group: s(r, "group"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                name: s(r, "name"),
            },
        ),
        (None, Some(n)) if n.is_object() => {
            (s(n, "verb"), Target::NonResource { path: s(n, "path") })
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.nonResourceAttributes: Invalid value: \"object\": cannot be specified in combination with resourceAttributes",
            ));
        }
        _ => {
            return Err(invalid(
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    Ok(Attributes {
        user,
        groups,
        verb,
        target,
    })
}

fn all(store: &Store, group: &str, plural: &str) -> ApiResult<Vec<Value>> {
    let info = store
        .resource(group, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    Ok(store
        .list(&info, None, &ListOptions::default())?
        .items
        .iter()
        .map(|s| s.value.clone())
        .collect())
}

fn subject_access_review(store: &Store, body: &Value) -> ApiResult<Value> {
    kind_check(body, "authorization.k8s.io/v1", "SubjectAccessReview")?;
    let attrs = review_attributes(body)?;
    let rbac_group = "rbac.authorization.k8s.io";
    let cluster_roles = all(store, rbac_group, "clusterroles")?;
    let cluster_role_bindings = all(store, rbac_group, "clusterrolebindings")?;
    let roles = all(store, rbac_group, "roles")?;
    let role_bindings = all(store, rbac_group, "rolebindings")?;
    let decision = rbac::authorize(
        &Policy {
            cluster_roles: &cluster_roles,
            cluster_role_bindings: &cluster_role_bindings,
            roles: &roles,
            role_bindings: &role_bindings,
        },
        &attrs,
    );
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = decision.reason.into();
    }
    Ok(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": body.get("spec").cloned().unwrap_or(Value::Null),
        "status": status,
    }))
}

/// The API server's answer to anything but `create` (POST) on these endpoints.
pub(crate) fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(
        group: &str,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> ResourcePath {
        ResourcePath {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn endpoints_are_recognised_by_path() {
        let token = path("", "serviceaccounts", Some("n"), Some("a"), Some("token"));
        assert_eq!(Endpoint::of(&token), Some(Endpoint::TokenRequest));
        let review = path("authentication.k8s.io", "tokenreviews", None, None, None);
        assert_eq!(Endpoint::of(&review), Some(Endpoint::TokenReview));
        let sar = path(
            "authorization.k8s.io",
            "subjectaccessreviews",
            None,
            None,
            None,
        );
        assert_eq!(Endpoint::of(&sar), Some(Endpoint::SubjectAccessReview));
        let sa = path("", "serviceaccounts", Some("n"), Some("a"), None);
        assert_eq!(Endpoint::of(&sa), None);
        let named = path(
            "authentication.k8s.io",
            "tokenreviews",
            None,
            Some("x"),
            None,
        );
        assert_eq!(Endpoint::of(&named), None);
    }

    #[test]
    fn review_attributes_are_validated() {
        let ok = json!({"spec": {"user": "u", "groups": ["g"],
                                 "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}});
        let a = review_attributes(&ok).unwrap();
        assert_eq!(a.verb, "get");
        assert_eq!(
            a.target,
            Target::NonResource {
                path: "/metrics".into()
            }
        );
        let nobody =
            json!({"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}});
        assert!(
            review_attributes(&nobody)
                .unwrap_err()
                .message
                .contains("at least one of user or group")
        );
        let both =
            json!({"spec": {"user": "u", "nonResourceAttributes": {}, "resourceAttributes": {}}});
        assert!(
            review_attributes(&both)
                .unwrap_err()
                .message
                .contains("in combination with")
        );
        let neither = json!({"spec": {"user": "u"}});
        assert!(
            review_attributes(&neither)
                .unwrap_err()
                .message
                .contains("exactly one of")
        );
    }
}
