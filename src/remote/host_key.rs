//! Host-key checking: which key a host must present, and where remembered keys live.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey};

use crate::remote::keys::fingerprint;

/// The remembered-key store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KnownHostsError(pub String);

/// Where `accept-new` remembers the first key each host presented (the controller
/// implements it on a ConfigMap it owns). Keys are per host name (the pool name).
pub trait KnownHosts: Send + Sync {
    /// The key remembered for `host`, if any.
    fn get<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<PublicKey>, KnownHostsError>>;

    /// Remembers `key` for `host` unless a key is already remembered, and returns the
    /// key remembered afterwards (so a concurrent first contact that stored another key
    /// is detected as a mismatch, not silently overwritten).
    fn remember_first<'a>(
        &'a self,
        host: &'a str,
        key: &'a PublicKey,
    ) -> BoxFuture<'a, Result<PublicKey, KnownHostsError>>;
}

/// An in-memory [`KnownHosts`], for tests and single-process tools.
#[derive(Debug, Default)]
pub struct MemoryKnownHosts {
    keys: Mutex<HashMap<String, PublicKey>>,
}

impl MemoryKnownHosts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the key remembered for `host`.
    pub fn insert(&self, host: &str, key: PublicKey) {
        self.lock().insert(host.to_owned(), key);
    }

    /// The key remembered for `host`, if any.
    pub fn lookup(&self, host: &str) -> Option<PublicKey> {
        self.lock().get(host).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PublicKey>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KnownHosts for MemoryKnownHosts {
    fn get<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<PublicKey>, KnownHostsError>> {
        Box::pin(async move { Ok(self.lookup(host)) })
    }

    fn remember_first<'a>(
        &'a self,
        host: &'a str,
        key: &'a PublicKey,
    ) -> BoxFuture<'a, Result<PublicKey, KnownHostsError>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .entry(host.to_owned())
                .or_insert_with(|| key.clone())
                .clone())
        })
    }
}

/// How a host's key is checked before the controller authenticates.
#[derive(Clone)]
pub enum HostKeyPolicy {
    /// Only this key is accepted (`host.<name>.host-key`).
    Strict(PublicKey),
    /// The first key seen is remembered in the store; later a different key is refused.
    AcceptNew(Arc<dyn KnownHosts>),
    /// Any key is accepted (logged with its fingerprint). Not for production.
    Off,
}

impl fmt::Debug for HostKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKeyPolicy::Strict(key) => write!(f, "Strict({})", fingerprint(key)),
            HostKeyPolicy::AcceptNew(_) => f.write_str("AcceptNew"),
            HostKeyPolicy::Off => f.write_str("Off"),
        }
    }
}

/// A presented host key that is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Fingerprint of the expected key.
    pub expected: String,
    /// Fingerprint of the presented key.
    pub actual: String,
}

/// Whether `actual` is the `expected` key (comments are ignored).
pub fn verify(expected: &PublicKey, actual: &PublicKey) -> Result<(), Mismatch> {
    if expected.key_data() == actual.key_data() {
        Ok(())
    } else {
        Err(Mismatch {
            expected: fingerprint(expected),
            actual: fingerprint(actual),
        })
    }
}

/// Host-key algorithms to offer, most preferred first. With a known key, only its
/// algorithm: a host with several keys must present the one we know, or we would
/// report a mismatch for a host that merely prefers another type. Without one, modern
/// algorithms only (no SHA-1 `ssh-rsa` signatures).
pub fn host_key_algorithms(expected: Option<&PublicKey>) -> Vec<Algorithm> {
    let rsa = [
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ];
    match expected.map(PublicKey::algorithm) {
        Some(Algorithm::Rsa { .. }) => rsa.to_vec(),
        Some(algorithm) => vec![algorithm],
        None => {
            let mut all = vec![
                Algorithm::Ed25519,
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                },
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP384,
                },
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP521,
                },
            ];
            all.extend(rsa);
            all
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::keys::generate;

    #[test]
    fn verify_ignores_comments_and_names_both_fingerprints() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        let mut a_commented = a.public_key().clone();
        a_commented.set_comment("root@host");
        assert_eq!(verify(a.public_key(), &a_commented), Ok(()));
        assert_eq!(
            verify(a.public_key(), b.public_key()),
            Err(Mismatch {
                expected: a.fingerprint().to_owned(),
                actual: b.fingerprint().to_owned(),
            })
        );
    }

    #[test]
    fn algorithms_follow_the_known_key() {
        let a = generate().unwrap();
        assert_eq!(
            host_key_algorithms(Some(a.public_key())),
            vec![Algorithm::Ed25519]
        );
        let any = host_key_algorithms(None);
        assert_eq!(any[0], Algorithm::Ed25519);
        assert!(!any.contains(&Algorithm::Rsa { hash: None }));
    }

    #[tokio::test]
    async fn memory_store_remembers_only_the_first_key() {
        let store = MemoryKnownHosts::new();
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(store.get("h").await, Ok(None));
        let kept = store.remember_first("h", a.public_key()).await.unwrap();
        assert_eq!(kept.key_data(), a.public_key().key_data());
        let kept = store.remember_first("h", b.public_key()).await.unwrap();
        assert_eq!(kept.key_data(), a.public_key().key_data());
        assert!(store.get("other").await.unwrap().is_none());
    }
}
