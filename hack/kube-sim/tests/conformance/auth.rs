//! Delegated authentication and authorization, as a component guarding its own endpoint
//! uses them: ServiceAccount tokens from TokenRequests, TokenReviews of those tokens, and
//! SubjectAccessReviews answered from RBAC (a URL path granted by a bound ClusterRole, a
//! resource granted by a namespaced Role).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use kube_sim::auth::UserInfo;
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::wait_until;

use crate::common::*;

async fn review(client: &kube::Client, token: &str) -> TokenReview {
    let request = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..Default::default()
    };
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &request)
        .await
        .unwrap()
}

fn who(review: &TokenReview) -> Option<(String, Vec<String>)> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.as_ref()?;
    Some((
        user.username.clone().unwrap_or_default(),
        user.groups.clone().unwrap_or_default(),
    ))
}

async fn may(
    client: &kube::Client,
    user: &str,
    groups: &[String],
    spec: SubjectAccessReviewSpec,
) -> (bool, String) {
    let request = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.to_vec()),
            ..spec
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    let status = answer.status.expect("a SubjectAccessReview has a status");
    (status.allowed, status.reason.unwrap_or_default())
}

fn url(verb: &str, path: &str) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        non_resource_attributes: Some(NonResourceAttributes {
            path: Some(path.to_owned()),
            verb: Some(verb.to_owned()),
        }),
        ..Default::default()
    }
}

fn configmap(namespace: &str, name: &str) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        resource_attributes: Some(ResourceAttributes {
            namespace: Some(namespace.to_owned()),
            verb: Some("get".to_owned()),
            resource: Some("configmaps".to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn service_account_tokens_are_reviewed_and_rbac_decides_access() {
    let env = env("auth").await;
    let ns = env.namespace().to_owned();
    let client = env.client();
    let reader = env.service_account_token("reader").await.unwrap();
    let stranger = env.service_account_token("stranger").await.unwrap();
    assert!(!reader.is_empty() && reader != stranger);

    let (user, groups) = who(&review(&client, &reader).await).expect("the token authenticates");
    assert_eq!(user, format!("system:serviceaccount:{ns}:reader"));
    for group in [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{ns}"),
        "system:authenticated",
    ] {
        assert!(
            groups.iter().any(|g| g == group),
            "{group} not in {groups:?}"
        );
    }
    assert_eq!(who(&review(&client, "not-a-token").await), None);
    let empty = TokenReview {
        spec: TokenReviewSpec {
            token: Some(String::new()),
            audiences: None,
        },
        ..Default::default()
    };
    let err = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &empty)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err:?}"
    );
    let (stranger_user, stranger_groups) = who(&review(&client, &stranger).await).unwrap();

    // A URL path: granted by a ClusterRole bound cluster-wide to `reader` only.
    let role_name = format!("{ns}-metrics-reader");
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    }))
    .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    cluster_roles
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    cluster_bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    // Real clusters apply new bindings through an informer: wait until it shows.
    wait_until(SLOW, "the binding grants get /metrics", || async {
        may(&client, &user, &groups, url("get", "/metrics")).await.0
    })
    .await
    .unwrap();
    let (allowed, reason) = may(&client, &user, &groups, url("get", "/metrics")).await;
    assert!(allowed);
    assert_eq!(
        reason,
        format!(
            "RBAC: allowed by ClusterRoleBinding \"{role_name}\" of ClusterRole \"{role_name}\" to ServiceAccount \"reader/{ns}\""
        )
    );
    assert!(
        !may(&client, &user, &groups, url("post", "/metrics"))
            .await
            .0
    );
    assert!(
        !may(&client, &user, &groups, url("get", "/metrics/other"))
            .await
            .0
    );
    assert!(
        !may(
            &client,
            &stranger_user,
            &stranger_groups,
            url("get", "/metrics")
        )
        .await
        .0
    );

    // A resource: granted in the namespace by a Role, for one name.
    let roles: Api<Role> = env.api();
    let bindings: Api<RoleBinding> = env.api();
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "one-cm"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["x"], "verbs": ["get"]}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "one-cm"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "one-cm"},
                "subjects": [{"kind": "ServiceAccount", "name": "stranger", "namespace": ns}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    wait_until(SLOW, "the RoleBinding grants get configmaps/x", || async {
        may(
            &client,
            &stranger_user,
            &stranger_groups,
            configmap(&ns, "x"),
        )
        .await
        .0
    })
    .await
    .unwrap();
    assert!(
        !may(
            &client,
            &stranger_user,
            &stranger_groups,
            configmap(&ns, "y")
        )
        .await
        .0
    );
    assert!(
        !may(
            &client,
            &stranger_user,
            &stranger_groups,
            configmap("default", "x")
        )
        .await
        .0
    );

    // A token dies with its ServiceAccount.
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        SLOW,
        "the deleted ServiceAccount's token is refused",
        || async { who(&review(&client, &reader).await).is_none() },
    )
    .await
    .unwrap();

    cluster_bindings
        .delete(&role_name, &DeleteParams::default())
        .await
        .unwrap();
    cluster_roles
        .delete(&role_name, &DeleteParams::default())
        .await
        .unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn static_tokens_and_the_superuser_group() {
    let env = env("auth-static").await;
    let Some(server) = env.server() else {
        skip_on_real_cluster(
            "static_tokens_and_the_superuser_group",
            "tokens are configured in kube-sim's registry (a real cluster has --token-auth-file)",
        );
        env.cleanup().await.unwrap();
        return;
    };
    let client = env.client();
    server
        .identities()
        .add_token("s3cret", UserInfo::new("alice", &["admins"]));
    let (user, groups) = who(&review(&client, "s3cret").await).unwrap();
    assert_eq!(user, "alice");
    assert_eq!(
        groups,
        vec!["admins".to_string(), "system:authenticated".to_string()]
    );
    assert!(
        !may(&client, "alice", &groups, url("get", "/metrics"))
            .await
            .0
    );
    assert!(
        may(
            &client,
            "root",
            &["system:masters".to_string()],
            url("get", "/metrics")
        )
        .await
        .0
    );
    assert!(server.identities().remove_token("s3cret"));
    assert_eq!(who(&review(&client, "s3cret").await), None);

    // Only create exists; a review without a subject is invalid.
    let sar: Api<SubjectAccessReview> = Api::all(client.clone());
    let err = sar
        .create(
            &PostParams::default(),
            &SubjectAccessReview {
                spec: url("get", "/metrics"),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    let err = sar.list(&Default::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 405),
        "{err:?}"
    );
    env.cleanup().await.unwrap();
}
