//! The keys the controller remembered (`accept-new`), read-only: doctor compares hosts
//! with them but never writes the known-hosts ConfigMap.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::future::BoxFuture;
use russh::keys::PublicKey;

use super::facts::RememberedKey;
use crate::remote::{KnownHosts, KnownHostsError, fingerprint, parse_host_key};
use mpc_core::config::InvalidHostKey;

/// Parses the known-hosts ConfigMap's `data` (host name → OpenSSH public key line).
/// Invalid entries are kept as errors (the reason, never the value).
pub fn parse_entries(
    data: &BTreeMap<String, String>,
) -> BTreeMap<String, Result<PublicKey, InvalidHostKey>> {
    data.iter()
        .map(|(host, line)| (host.clone(), parse_host_key(line)))
        .collect()
}

/// The fact for `host` from parsed entries.
pub fn remembered_key(
    entries: &BTreeMap<String, Result<PublicKey, InvalidHostKey>>,
    host: &str,
) -> RememberedKey {
    match entries.get(host) {
        None => RememberedKey::None,
        Some(Ok(key)) => RememberedKey::Key(fingerprint(key)),
        // The reason only, never the value: it is not ours to echo.
        Some(Err(_)) => RememberedKey::Invalid(
            "expected an OpenSSH public key line such as `ssh-ed25519 AAAA…`".to_owned(),
        ),
    }
}

/// A [`KnownHosts`] that never writes: remembered keys come from a snapshot of the
/// ConfigMap, and the key a host presents on "first contact" is only noted, so doctor
/// can show its fingerprint.
#[derive(Debug, Default)]
pub struct SnapshotKnownHosts {
    remembered: HashMap<String, PublicKey>,
    seen: Mutex<HashMap<String, PublicKey>>,
}

impl SnapshotKnownHosts {
    /// A store that knows the valid `entries`.
    pub fn new(entries: &BTreeMap<String, Result<PublicKey, InvalidHostKey>>) -> Self {
        SnapshotKnownHosts {
            remembered: entries
                .iter()
                .filter_map(|(host, key)| Some((host.clone(), key.as_ref().ok()?.clone())))
                .collect(),
            seen: Mutex::default(),
        }
    }

    /// The key `host` was checked against: the remembered one, else the one it
    /// presented first during this run.
    pub fn key_for(&self, host: &str) -> Option<PublicKey> {
        self.remembered.get(host).cloned().or_else(|| {
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(host)
                .cloned()
        })
    }
}

impl KnownHosts for SnapshotKnownHosts {
    fn get<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<PublicKey>, KnownHostsError>> {
        Box::pin(async move { Ok(self.remembered.get(host).cloned()) })
    }

    fn remember_first<'a>(
        &'a self,
        host: &'a str,
        key: &'a PublicKey,
    ) -> BoxFuture<'a, Result<PublicKey, KnownHostsError>> {
        Box::pin(async move {
            if let Some(remembered) = self.remembered.get(host) {
                return Ok(remembered.clone());
            }
            Ok(self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(host.to_owned())
                .or_insert_with(|| key.clone())
                .clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::generate;

    #[tokio::test]
    async fn remembers_nothing_new_but_notes_the_first_key_seen() {
        let (a, b, c) = (
            generate().unwrap(),
            generate().unwrap(),
            generate().unwrap(),
        );
        let data = BTreeMap::from([
            ("arm-1".to_owned(), a.public_key_line().to_owned()),
            ("arm-2".to_owned(), "not a key".to_owned()),
        ]);
        let entries = parse_entries(&data);
        assert_eq!(
            remembered_key(&entries, "arm-1"),
            RememberedKey::Key(a.fingerprint().to_owned())
        );
        assert!(matches!(
            remembered_key(&entries, "arm-2"),
            RememberedKey::Invalid(why) if !why.contains("not a key")
        ));
        assert_eq!(remembered_key(&entries, "arm-3"), RememberedKey::None);

        let store = SnapshotKnownHosts::new(&entries);
        assert!(store.get("arm-1").await.unwrap().is_some());
        assert!(store.get("arm-3").await.unwrap().is_none());
        // A remembered key wins over the presented one (so a mismatch is detected).
        let kept = store.remember_first("arm-1", b.public_key()).await.unwrap();
        assert_eq!(kept.key_data(), a.public_key().key_data());
        // A first contact is noted, not remembered.
        let kept = store.remember_first("arm-3", b.public_key()).await.unwrap();
        assert_eq!(kept.key_data(), b.public_key().key_data());
        assert!(store.get("arm-3").await.unwrap().is_none());
        let kept = store.remember_first("arm-3", c.public_key()).await.unwrap();
        assert_eq!(kept.key_data(), b.public_key().key_data());
        assert_eq!(
            store.key_for("arm-3").map(|k| fingerprint(&k)),
            Some(b.fingerprint().to_owned())
        );
        assert_eq!(
            store.key_for("arm-1").map(|k| fingerprint(&k)),
            Some(a.fingerprint().to_owned())
        );
        assert!(store.key_for("arm-2").is_none());
    }
}
