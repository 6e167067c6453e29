//! Key pairs for tests of request and script building.

use ssh_key::{Algorithm, PrivateKey, PublicKey};

/// A fresh ed25519 key pair, as the shell generates for a build user.
pub struct TestPair(PrivateKey);

impl TestPair {
    /// Its public half.
    pub fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }

    /// Its public half as an OpenSSH line without comment, as written to authorized_keys.
    pub fn public_key_line(&self) -> String {
        PublicKey::new(self.0.public_key().key_data().clone(), "")
            .to_openssh()
            .unwrap_or_default()
    }
}

/// Generates a pair from the thread RNG.
pub fn generate() -> Result<TestPair, ssh_key::Error> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map(TestPair)
}
