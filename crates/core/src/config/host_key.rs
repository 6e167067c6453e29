//! Pinned host keys (`host.<name>.host-key`) and the global `host-key-checking` mode.

use std::fmt;

use ssh_key::PublicKey;

/// How the controller verifies the host key of a build host it connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HostKeyChecking {
    /// Only pinned keys (`host.<name>.host-key`) are accepted; a host without one is unusable.
    Strict,
    /// A pinned key is enforced; otherwise the first key seen is remembered and a
    /// different one is refused later (trust on first use).
    #[default]
    AcceptNew,
    /// Pinned keys are still enforced; unpinned hosts are not verified at all.
    Off,
}

impl HostKeyChecking {
    /// Parses the ConfigMap value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "strict" => Some(HostKeyChecking::Strict),
            "accept-new" => Some(HostKeyChecking::AcceptNew),
            "off" => Some(HostKeyChecking::Off),
            _ => None,
        }
    }

    /// The ConfigMap spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyChecking::Strict => "strict",
            HostKeyChecking::AcceptNew => "accept-new",
            HostKeyChecking::Off => "off",
        }
    }
}

impl fmt::Display for HostKeyChecking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value is not a host key; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHostKey(pub String);

/// A host's public key as an admin pinned it: OpenSSH format, `type base64 [comment]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKey {
    key: PublicKey,
}

/// Key types OpenSSH servers offer as host keys.
const HOST_KEY_TYPES: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

const EXPECTED: &str = "expected one OpenSSH public key line `<type> <base64> [comment]`, as in \
                        the host's /etc/ssh/ssh_host_ed25519_key.pub (or the output of \
                        `ssh-keyscan -t ed25519 <address>` without the leading address)";

impl HostKey {
    /// Parses and validates an OpenSSH public key line.
    pub fn parse(value: &str) -> Result<Self, InvalidHostKey> {
        Self::parse_line(value).map_err(InvalidHostKey)
    }

    fn parse_line(value: &str) -> Result<Self, String> {
        let line = value.trim();
        if line.contains('\n') || line.contains('\r') {
            return Err(format!("holds more than one line; {EXPECTED}"));
        }
        let mut fields = line.split_whitespace();
        let (Some(first), second) = (fields.next(), fields.next()) else {
            return Err(format!("is empty; {EXPECTED}"));
        };
        if !HOST_KEY_TYPES.contains(&first) {
            if second.is_some_and(|s| HOST_KEY_TYPES.contains(&s)) {
                return Err(format!(
                    "starts with {first:?}, which looks like the host-name column of a \
                     known_hosts line; remove it; {EXPECTED}"
                ));
            }
            return Err(format!(
                "key type {first:?} is not a host key type ({}); {EXPECTED}",
                HOST_KEY_TYPES.join(", ")
            ));
        }
        if second.is_none() {
            return Err(format!(
                "has no base64 key data after {first:?}; {EXPECTED}"
            ));
        }
        let key = PublicKey::from_openssh(line)
            .map_err(|err| format!("is not a valid {first} public key ({err}); {EXPECTED}"))?;
        if key.algorithm().as_str() != first {
            return Err(format!(
                "says {first:?} but the base64 data holds a {} key; {EXPECTED}",
                key.algorithm().as_str()
            ));
        }
        Ok(HostKey { key })
    }

    /// The parsed key, to compare with the key a server presents.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// `type base64` without the comment: the form for a `known_hosts` line.
    pub fn openssh(&self) -> String {
        let mut key = self.key.clone();
        key.set_comment("");
        key.to_openssh().unwrap_or_default()
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.openssh())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real ed25519 host key (generated for these tests).
    pub(crate) const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMuPgXjTO9W2e7VPFxEmNO2Ch2EPgvUFhMSZ0ZOekyUb root@arm-1";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCgc2FujJB3KBdEeH7zvkzR7L/ZaKHdhYsc8G6WHgDzrgwearSYNvSVH9G5Wlp9vcEm7jTTCQn4FwKvbDy0JHVpvYhs6XskLRa6uOIMG8p+p6Jqf+llS9AdL9N4ex8l+uS8551hhStzq1x5PNVsbRILODbfSQ50lC9pGqghHdZpNQ==";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCYzpBbxkN0WwJQ3TBsBs/VyqXaLwd8Wn8DO5ggtXfERWtVD0l0A97r+GhOMVhC3b5u1jAX7RabpSdFzaTwzeDE=";

    #[test]
    fn accepts_openssh_public_keys_with_or_without_comment() {
        let key = HostKey::parse(ED25519).unwrap();
        assert!(
            key.openssh()
                .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
        );
        assert!(!key.openssh().contains("root@arm-1"));
        let without_comment = HostKey::parse(&key.openssh()).unwrap();
        assert_eq!(
            without_comment.public_key().key_data(),
            key.public_key().key_data()
        );
        assert!(HostKey::parse(ECDSA).is_ok());
        assert!(HostKey::parse(RSA).is_ok());
        assert!(HostKey::parse(&format!("  {ED25519}\n")).is_ok());
    }

    #[test]
    fn rejects_malformed_keys_with_the_reason() {
        let known_hosts_line = format!("10.0.0.1 {ED25519}");
        let wrong_type = ED25519.replace("ssh-ed25519", "ecdsa-sha2-nistp256");
        let cases = [
            ("", "is empty"),
            ("ssh-ed25519", "no base64 key data"),
            ("ssh-ed25519 AAAA!!!", "not a valid ssh-ed25519 public key"),
            ("ssh-dss AAAAB3NzaC1kc3M=", "not a host key type"),
            (known_hosts_line.as_str(), "known_hosts"),
            (wrong_type.as_str(), "not a valid ecdsa-sha2-nistp256"),
        ];
        for (input, why) in cases {
            let err = HostKey::parse(input).expect_err(input).to_string();
            assert!(err.contains(why), "{input}: {err}");
            assert!(
                err.contains("expected one OpenSSH public key line"),
                "{err}"
            );
        }
        let two = format!("{ED25519}\n{ECDSA}");
        assert!(
            HostKey::parse(&two)
                .unwrap_err()
                .0
                .contains("more than one line")
        );
    }

    #[test]
    fn checking_modes() {
        assert_eq!(HostKeyChecking::default(), HostKeyChecking::AcceptNew);
        for mode in [
            HostKeyChecking::Strict,
            HostKeyChecking::AcceptNew,
            HostKeyChecking::Off,
        ] {
            assert_eq!(HostKeyChecking::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(HostKeyChecking::parse("yes"), None);
    }
}
