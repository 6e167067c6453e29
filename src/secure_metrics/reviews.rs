//! TokenReviews and SubjectAccessReviews against the API server, with the short-lived
//! caches of [`super::access`]: the shell around those decisions.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::access::{self, TtlCache, User};

/// Longest wait for one review (controller-runtime's TokenAccessReviewTimeout).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// A review the API server did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The request failed (refused, unreachable, or the controller may not create
    /// reviews: its ClusterRole needs `create` on `tokenreviews` and
    /// `subjectaccessreviews`).
    #[error(
        "creating a {what} failed (the controller needs create on {what}s, see the metrics-auth ClusterRole)"
    )]
    Api {
        /// `TokenReview` or `SubjectAccessReview`.
        what: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// No answer in time.
    #[error("the API server did not answer a {what} within {REVIEW_TIMEOUT:?}")]
    Timeout {
        /// `TokenReview` or `SubjectAccessReview`.
        what: &'static str,
    },
}

/// Asks the API server who a token belongs to and what its user may do.
pub struct KubeReviewer {
    client: kube::Client,
    tokens: Mutex<TtlCache<Option<User>>>,
    grants: Mutex<TtlCache<bool>>,
}

impl KubeReviewer {
    /// A reviewer using the controller's own client and credentials.
    pub fn new(client: kube::Client) -> Self {
        KubeReviewer {
            client,
            tokens: Mutex::new(TtlCache::new(access::CACHE_CAPACITY)),
            grants: Mutex::new(TtlCache::new(access::CACHE_CAPACITY)),
        }
    }

    /// The user `token` belongs to, or `None` when the API server does not know it.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, ReviewError> {
        let key = access::token_key(token);
        if let Some(known) = lock(&self.tokens).get(&key, Instant::now()) {
            return Ok(known);
        }
        let request = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..Default::default()
        };
        let what = "TokenReview";
        let answer = tokio::time::timeout(
            REVIEW_TIMEOUT,
            Api::<TokenReview>::all(self.client.clone()).create(&PostParams::default(), &request),
        )
        .await
        .map_err(|_| ReviewError::Timeout { what })?
        .map_err(|source| ReviewError::Api { what, source })?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|u| User {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            })
            .filter(|u| !u.name.is_empty());
        let ttl = if user.is_some() {
            access::AUTHENTICATED_TTL
        } else {
            access::REFUSED_TTL
        };
        lock(&self.tokens).insert(key, user.clone(), ttl, Instant::now());
        Ok(user)
    }

    /// Whether `user` may `verb` the URL `path`.
    pub async fn authorize(
        &self,
        user: &User,
        verb: &str,
        path: &str,
    ) -> Result<bool, ReviewError> {
        let key = access::access_key(user, verb, path);
        if let Some(known) = lock(&self.grants).get(&key, Instant::now()) {
            return Ok(known);
        }
        let request = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some(verb.to_owned()),
                }),
                resource_attributes: None,
            },
            ..Default::default()
        };
        let what = "SubjectAccessReview";
        let answer = tokio::time::timeout(
            REVIEW_TIMEOUT,
            Api::<SubjectAccessReview>::all(self.client.clone())
                .create(&PostParams::default(), &request),
        )
        .await
        .map_err(|_| ReviewError::Timeout { what })?
        .map_err(|source| ReviewError::Api { what, source })?;
        let allowed = answer
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true));
        let ttl = if allowed {
            access::ALLOWED_TTL
        } else {
            access::DENIED_TTL
        };
        lock(&self.grants).insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
