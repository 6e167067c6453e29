//! Who may read `/metrics`: the decisions of the secured endpoint, as pure functions.
//!
//! The rules are controller-runtime's `WithAuthenticationAndAuthorization` filter (what
//! a kubebuilder controller such as the Go one serves): a bearer token is authenticated
//! by a TokenReview, then its user must be allowed the request's lower-case HTTP verb on
//! the request's path as a non-resource URL (`get` on `/metrics`) by a
//! SubjectAccessReview. Answers are cached for a short time, keyed by SHA-256 digests
//! (a token is never kept), with controller-runtime's lifetimes for authorization.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long an authenticated token is trusted without a new TokenReview.
pub const AUTHENTICATED_TTL: Duration = Duration::from_secs(60);
/// How long a refused token stays refused without a new TokenReview (short: a token
/// issued a moment ago may not have been known yet).
pub const REFUSED_TTL: Duration = Duration::from_secs(10);
/// How long an allowed (user, verb, path) stays allowed (controller-runtime: 5 min).
pub const ALLOWED_TTL: Duration = Duration::from_secs(300);
/// How long a denied one stays denied (controller-runtime: 30 s).
pub const DENIED_TTL: Duration = Duration::from_secs(30);
/// Most entries each cache holds; a full cache first drops what expired, then what
/// expires soonest.
pub const CACHE_CAPACITY: usize = 1024;

/// An authenticated user, as the TokenReview reported it (and as the SubjectAccessReview
/// asks about it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User name (`system:serviceaccount:<namespace>:<name>` for a ServiceAccount).
    pub name: String,
    /// Its uid ("" when the review gave none).
    pub uid: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Extra attributes (for example the pod a bound token belongs to).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The token of an `Authorization: Bearer <token>` header; `None` for no header, another
/// scheme, or an empty token.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The verb a request is authorized for: its HTTP method in lower case (`GET` → `get`),
/// as controller-runtime does.
pub fn verb(method: &str) -> String {
    method.to_ascii_lowercase()
}

/// How a request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Serve,
    /// 401: no token, or a token the API server does not know.
    Unauthorized,
    /// 401: the TokenReview itself failed (the API server did not answer).
    AuthenticationFailed,
    /// 403: the user may not.
    Forbidden {
        /// Who asked.
        user: String,
    },
    /// 500: the SubjectAccessReview itself failed.
    AuthorizationFailed {
        /// Who asked.
        user: String,
    },
}

impl Verdict {
    /// HTTP status code and plain-text body (controller-runtime's wording).
    pub fn response(&self) -> (u16, String) {
        match self {
            Verdict::Serve => (200, String::new()),
            Verdict::Unauthorized => (401, "Unauthorized".into()),
            Verdict::AuthenticationFailed => (401, "Authentication failed".into()),
            Verdict::Forbidden { user } => (403, format!("Authorization denied for user {user}")),
            Verdict::AuthorizationFailed { user } => {
                (500, format!("Authorization for user {user} failed"))
            }
        }
    }
}

/// Cache key of a token: its SHA-256 digest.
pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Cache key of an authorization question: every attribute the review is asked about,
/// unambiguously framed (length-prefixed), hashed.
pub fn access_key(user: &User, verb: &str, path: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut field = |s: &str| {
        hash.update((s.len() as u64).to_be_bytes());
        hash.update(s.as_bytes());
    };
    field(&user.name);
    field(&user.uid);
    field(&user.groups.len().to_string());
    for group in &user.groups {
        field(group);
    }
    for (key, values) in &user.extra {
        field(key);
        field(&values.len().to_string());
        for value in values {
            field(value);
        }
    }
    field(verb);
    field(path);
    hash.finalize().into()
}

/// A bounded map from digests to answers that expire.
#[derive(Debug)]
pub struct TtlCache<V> {
    entries: HashMap<[u8; 32], (Instant, V)>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The answer for `key`, unless it expired by `now`.
    pub fn get(&mut self, key: &[u8; 32], now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `value` for `ttl` from `now`.
    pub fn insert(&mut self, key: [u8; 32], value: V, ttl: Duration, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= self.capacity
                && let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (now + ttl, value));
    }

    /// Entries held (expired ones included until they are looked at or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn verdicts_answer_as_controller_runtime() {
        assert_eq!(Verdict::Unauthorized.response().0, 401);
        assert_eq!(Verdict::AuthenticationFailed.response().0, 401);
        assert_eq!(
            Verdict::Forbidden { user: "u".into() }.response(),
            (403, "Authorization denied for user u".into())
        );
        assert_eq!(
            Verdict::AuthorizationFailed { user: "u".into() }
                .response()
                .0,
            500
        );
        assert_eq!(verb("GET"), "get");
    }

    #[test]
    fn entries_expire() {
        let mut cache = TtlCache::new(4);
        let t0 = Instant::now();
        cache.insert(token_key("a"), true, Duration::from_secs(10), t0);
        assert_eq!(
            cache.get(&token_key("a"), t0 + Duration::from_secs(9)),
            Some(true)
        );
        assert_eq!(
            cache.get(&token_key("a"), t0 + Duration::from_secs(10)),
            None
        );
        assert!(
            cache.is_empty(),
            "an expired entry is dropped when looked at"
        );
    }

    #[test]
    fn a_full_cache_drops_the_expired_then_the_soonest_to_expire() {
        let mut cache = TtlCache::new(2);
        let t0 = Instant::now();
        cache.insert(token_key("short"), 1, Duration::from_secs(1), t0);
        cache.insert(token_key("long"), 2, Duration::from_secs(100), t0);
        cache.insert(token_key("new"), 3, Duration::from_secs(50), t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&token_key("short"), t0), None);
        assert_eq!(cache.get(&token_key("long"), t0), Some(2));
        let later = t0 + Duration::from_secs(60);
        cache.insert(token_key("newer"), 4, Duration::from_secs(50), later);
        assert_eq!(
            cache.get(&token_key("new"), later),
            None,
            "expired, dropped"
        );
        assert_eq!(cache.get(&token_key("newer"), later), Some(4));
    }

    proptest! {
        #[test]
        fn the_cache_never_exceeds_its_capacity(keys in proptest::collection::vec(0u8..40, 0..200), cap in 1usize..16) {
            let mut cache = TtlCache::new(cap);
            let t0 = Instant::now();
            for (i, k) in keys.iter().enumerate() {
                cache.insert(token_key(&k.to_string()), i, Duration::from_secs(u64::from(*k)), t0);
                prop_assert!(cache.len() <= cap);
                prop_assert_eq!(cache.get(&token_key(&k.to_string()), t0).is_some(), *k > 0);
            }
        }

        #[test]
        fn distinct_questions_have_distinct_keys(a in "[a-c:]{0,4}", b in "[a-c:]{0,4}", g in proptest::collection::vec("[a-c]{0,2}", 0..3)) {
            let user = |name: &str, groups: &[String]| User { name: name.into(), groups: groups.to_vec(), ..Default::default() };
            // Moving a character between fields never collides.
            let k1 = access_key(&user(&a, &g), &b, "/metrics");
            let k2 = access_key(&user(&format!("{a}{b}"), &g), "", "/metrics");
            prop_assert!(b.is_empty() || k1 != k2);
            prop_assert_eq!(access_key(&user(&a, &g), &b, "/metrics"), k1);
        }
    }
}
