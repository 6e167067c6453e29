//! Key material: per-TaskRun key pairs, admin keys from Secrets, host keys from config.
//!
//! Every type here that holds a private key keeps it out of `Debug` output and wipes it
//! from memory when dropped; logs only ever see SHA256 fingerprints.

use std::fmt;
use std::sync::Arc;

use mpc_core::config::{HostKey, InvalidHostKey};
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use ssh_key::LineEnding;
use zeroize::Zeroizing;

/// A key could not be generated, parsed or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key generation or encoding failed (the system RNG or the encoder).
    #[error("cannot generate an ed25519 key pair: {0}")]
    Generate(String),
    /// The admin key is not a private key russh can read.
    #[error(
        "the admin key is not a readable private key ({0}); store an unencrypted OpenSSH or PEM private key (ed25519, ECDSA or RSA) under `id_rsa`"
    )]
    InvalidPrivateKey(String),
    /// The admin key is protected by a passphrase.
    #[error(
        "the admin key is passphrase-protected; store it without a passphrase (`ssh-keygen -p -N ''`)"
    )]
    Encrypted,
}

/// The SHA256 fingerprint of a public key, as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A fresh key pair for one TaskRun's build user.
///
/// The private half goes into the TaskRun's Secret and nowhere else; it is wiped from
/// memory when this value is dropped and never appears in `Debug` output.
pub struct UserKeyPair {
    private_openssh: Zeroizing<String>,
    public: PublicKey,
    public_line: String,
    fingerprint: String,
}

impl UserKeyPair {
    /// The private key in OpenSSH format, for the Secret's `id_rsa`.
    pub fn private_key_openssh(&self) -> &str {
        &self.private_openssh
    }

    /// The public key, for [`crate::remote::ProvisionRequest::new`].
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key as an OpenSSH line (`ssh-ed25519 AAAA…`).
    pub fn public_key_line(&self) -> &str {
        &self.public_line
    }

    /// SHA256 fingerprint of the public key, safe to log.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for UserKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Generates a fresh ed25519 key pair from the operating system's RNG.
pub fn generate() -> Result<UserKeyPair, KeyError> {
    let mut rng = rand::rng();
    let private = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let private_openssh = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let public = private.public_key().clone();
    let public_line = public
        .to_openssh()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(UserKeyPair {
        private_openssh,
        fingerprint: fingerprint(&public),
        public,
        public_line,
    })
}

/// The admin private key the controller logs in with (a host's Secret `id_rsa`).
///
/// Cheap to clone (shared); `Debug` shows only the algorithm and fingerprint.
#[derive(Clone)]
pub struct AdminKey(Arc<PrivateKey>);

impl AdminKey {
    /// Parses an unencrypted private key: OpenSSH format (`BEGIN OPENSSH PRIVATE KEY`)
    /// or PEM (PKCS#1 RSA, PKCS#8); ed25519, ECDSA or RSA.
    pub fn parse(text: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| KeyError::InvalidPrivateKey("not UTF-8 text".into()))?;
        let key = russh::keys::decode_secret_key(text, None).map_err(|e| match e {
            russh::keys::Error::KeyIsEncrypted => KeyError::Encrypted,
            // The error text never includes key material, only what failed.
            other => KeyError::InvalidPrivateKey(other.to_string()),
        })?;
        if key.is_encrypted() {
            return Err(KeyError::Encrypted);
        }
        Ok(AdminKey(Arc::new(key)))
    }

    /// The key's algorithm name (`ssh-ed25519`, `ssh-rsa`, …).
    pub fn algorithm(&self) -> String {
        self.0.algorithm().to_string()
    }

    /// SHA256 fingerprint of the public half, safe to log.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.public_key())
    }

    pub(crate) fn private_key(&self) -> Arc<PrivateKey> {
        Arc::clone(&self.0)
    }

    pub(crate) fn is_rsa(&self) -> bool {
        self.0.algorithm().is_rsa()
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminKey")
            .field("algorithm", &self.algorithm())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// Parses a host public key, `ssh-ed25519 AAAA… [comment]`, by the rules of
/// [`HostKey::parse`] (the one host-key parser, shared with host-config's
/// `host.<name>.host-key`).
pub fn parse_host_key(text: &str) -> Result<PublicKey, InvalidHostKey> {
    HostKey::parse(text).map(|key| key.public_key().clone())
}

/// The line for a `known_hosts` file pinning `key` for `address` (port 22, as the
/// build Tasks connect), e.g. for the Secret's `known_hosts` key.
pub fn known_hosts_line(address: &str, key: &PublicKey) -> String {
    let bare = PublicKey::new(key.key_data().clone(), "");
    match bare.to_openssh() {
        Ok(line) => format!("{address} {line}"),
        // Encoding a parsed key cannot fail in practice; fall back to the fingerprint
        // so the caller still gets a line that fails closed in ssh.
        Err(_) => format!("# {address} {}", fingerprint(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_are_fresh_ed25519_and_round_trip() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.public_key_line(), b.public_key_line());
        assert!(a.public_key_line().starts_with("ssh-ed25519 AAAA"));
        assert!(a.fingerprint().starts_with("SHA256:"));
        assert!(
            a.private_key_openssh()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        let admin = AdminKey::parse(a.private_key_openssh().as_bytes()).unwrap();
        assert_eq!(admin.fingerprint(), a.fingerprint());
        assert_eq!(admin.algorithm(), "ssh-ed25519");
    }

    #[test]
    fn debug_output_never_contains_private_key_material() {
        let pair = generate().unwrap();
        let admin = AdminKey::parse(pair.private_key_openssh().as_bytes()).unwrap();
        let body: Vec<&str> = pair
            .private_key_openssh()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for printed in [format!("{pair:?}"), format!("{admin:?}")] {
            assert!(printed.contains(pair.fingerprint()), "{printed}");
            for line in &body {
                assert!(!printed.contains(line), "{printed}");
            }
        }
    }

    #[test]
    fn admin_key_rejects_garbage_and_public_keys() {
        let pair = generate().unwrap();
        for bad in [
            "".as_bytes(),
            b"hello",
            pair.public_key_line().as_bytes(),
            &[0xff, 0xfe],
        ] {
            assert!(
                matches!(AdminKey::parse(bad), Err(KeyError::InvalidPrivateKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_keys_parse_with_or_without_comment_and_never_with_a_host_column() {
        let pair = generate().unwrap();
        let line = pair.public_key_line();
        for text in [
            line.to_owned(),
            format!("{line} root@build-1"),
            format!("  {line}\n"),
        ] {
            let key = parse_host_key(&text).unwrap();
            assert_eq!(key.key_data(), pair.public_key().key_data(), "{text}");
            assert_eq!(fingerprint(&key), pair.fingerprint());
        }
        let known_hosts = format!("192.0.2.7 {line}");
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAA",
            "hello world",
            "ssh-rsa !!!",
            known_hosts.as_str(),
        ] {
            assert!(parse_host_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn known_hosts_line_drops_the_comment() {
        let pair = generate().unwrap();
        let key = parse_host_key(&format!("{} some comment", pair.public_key_line())).unwrap();
        assert_eq!(
            known_hosts_line("192.0.2.7", &key),
            format!("192.0.2.7 {}", pair.public_key_line())
        );
    }
}
