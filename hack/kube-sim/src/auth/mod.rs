//! Delegated authentication and authorization, as components that guard their own
//! endpoints use them (controller-runtime's secure metrics, kube-rbac-proxy):
//!
//! - `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (TokenRequest) issues a
//!   token for a ServiceAccount that exists;
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` says whose token it is: tokens
//!   issued by a TokenRequest (while their ServiceAccount exists and they have not
//!   expired), and static tokens configured with [`Identities::add_token`] (the API
//!   server's `--token-auth-file`);
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` evaluates RBAC
//!   ([`rbac`]) over the stored Roles, ClusterRoles and bindings.
//!
//! kube-sim itself authenticates nobody: every client may do everything, including
//! creating these reviews.

pub mod rbac;
pub(crate) mod reviews;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Who a token belongs to, as a TokenReview reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// A stable id ("" for none).
    pub uid: String,
    /// Groups (the API server adds `system:authenticated` to authenticated users).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with a name and groups; `system:authenticated` is added as the API server
    /// adds it to every authenticated user.
    pub fn new(username: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo {
            username: username.into(),
            uid: String::new(),
            groups,
        }
    }

    /// The identity of a ServiceAccount's tokens.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Configured with [`Identities::add_token`]: valid until removed.
    Static(UserInfo),
    /// Issued by a TokenRequest: valid while that ServiceAccount (same uid) exists and
    /// until it expires.
    ServiceAccount {
        namespace: String,
        name: String,
        uid: String,
        expires: jiff::Timestamp,
    },
}

/// The tokens the server knows. Cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    tokens: Arc<Mutex<HashMap<String, Identity>>>,
}

impl Identities {
    /// Makes `token` authenticate as `user` (until removed).
    pub fn add_token(&self, token: &str, user: UserInfo) {
        self.lock().insert(token.to_owned(), Identity::Static(user));
    }

    /// Forgets a token; whether it was known.
    pub fn remove_token(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    /// A fresh random token for a ServiceAccount.
    pub(crate) fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        expires: jiff::Timestamp,
    ) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let random: String = (0..43)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        let token = format!("kube-sim.{random}");
        self.lock().insert(
            token.clone(),
            Identity::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                expires,
            },
        );
        token
    }

    pub(crate) fn lookup(&self, token: &str) -> Option<Identity> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Identity>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
