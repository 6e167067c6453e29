//! SSH key pairs for EC2's `ImportKeyPair`: the public half goes to moto, the private
//! half (OpenSSH format, what the platform's Secret holds as `id_rsa`) to the test.

use std::fmt;

use ssh_key::private::{Ed25519Keypair, RsaKeypair};
use ssh_key::{LineEnding, PrivateKey};
use zeroize::Zeroizing;

use crate::Error;

/// The key algorithms both EC2's `ImportKeyPair` (and moto's) and the controller's SSH
/// client accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// Ed25519: fast to generate; the default.
    #[default]
    Ed25519,
    /// RSA 2048, like the Go controller's `id_rsa` keys.
    Rsa,
}

/// A generated key pair with its EC2 key pair name.
#[derive(Clone)]
pub struct KeyPair {
    name: String,
    kind: KeyKind,
    public_key: String,
    private_key: Zeroizing<String>,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generates a key pair named `name` (the EC2 key pair name, also its comment).
    pub fn generate(name: impl Into<String>, kind: KeyKind) -> Result<KeyPair, Error> {
        let name = name.into();
        let mut rng = rand::rng();
        let mut private = match kind {
            KeyKind::Ed25519 => PrivateKey::from(Ed25519Keypair::random(&mut rng)),
            KeyKind::Rsa => PrivateKey::from(
                RsaKeypair::random(&mut rng, 2048).map_err(|e| Error::Key(e.to_string()))?,
            ),
        };
        private.set_comment(name.as_str());
        let private_key = private
            .to_openssh(LineEnding::LF)
            .map_err(|e| Error::Key(e.to_string()))?;
        let public_key = private
            .public_key()
            .to_openssh()
            .map_err(|e| Error::Key(e.to_string()))?;
        Ok(KeyPair {
            name,
            kind,
            public_key,
            private_key: Zeroizing::new(private_key.to_string()),
        })
    }

    /// The EC2 key pair name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key line (`ssh-ed25519 AAAA… name`), as imported into EC2.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The private key, OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn private_key(&self) -> &str {
        &self.private_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_give_matching_openssh_halves() {
        for (kind, prefix) in [
            (KeyKind::Ed25519, "ssh-ed25519 "),
            (KeyKind::Rsa, "ssh-rsa "),
        ] {
            let pair = KeyPair::generate("builder-key", kind).unwrap();
            assert!(
                pair.public_key().starts_with(prefix),
                "{}",
                pair.public_key()
            );
            assert!(pair.public_key().ends_with(" builder-key"));
            let private = PrivateKey::from_openssh(pair.private_key()).unwrap();
            assert_eq!(
                private.public_key().to_openssh().unwrap(),
                pair.public_key(),
                "{kind:?}"
            );
            let debug = format!("{pair:?}");
            assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        }
    }
}
