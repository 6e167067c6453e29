//! Build platforms (`linux/arm64`): parsing, validation and the label form.
//!
//! The rules are the Go controller's (contract §2.4): `local`, `localhost` and
//! `linux/x86_64` are accepted as they are; anything else must be exactly two
//! `/`-separated RFC 1035 labels. Platforms are otherwise opaque: a TaskRun's
//! platform must equal a host's platform string exactly.

use std::fmt;
use std::str::FromStr;

/// A validated platform string such as `linux/arm64` or `linux-c4xlarge/arm64`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform(String);

/// Longest RFC 1035 label.
const MAX_LABEL_LEN: usize = 63;

/// Platforms accepted without the two-label check.
const EXCEPTIONAL: [&str; 3] = ["local", "localhost", "linux/x86_64"];

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {value:?}: {reason}; expected `os/arch` made of two RFC 1035 labels \
     (lowercase letters, digits and `-`, starting with a letter, e.g. `linux/arm64`), \
     or one of `local`, `localhost`, `linux/x86_64`"
)]
pub struct InvalidPlatform {
    /// The rejected input.
    pub value: String,
    /// What exactly is wrong with it.
    pub reason: String,
}

impl Platform {
    /// Parses and validates a platform string.
    pub fn parse(value: &str) -> Result<Self, InvalidPlatform> {
        let invalid = |reason: String| InvalidPlatform {
            value: value.to_owned(),
            reason,
        };
        if EXCEPTIONAL.contains(&value) {
            return Ok(Platform(value.to_owned()));
        }
        let parts: Vec<&str> = value.split('/').collect();
        if parts.len() != 2 {
            return Err(invalid(format!(
                "it has {} `/`-separated parts, not 2",
                parts.len()
            )));
        }
        for part in parts {
            check_rfc1035_label(part).map_err(|why| invalid(format!("{part:?} {why}")))?;
        }
        // The label form goes into a label value, which Kubernetes caps at 63 characters.
        if value.len() > MAX_LABEL_LEN {
            return Err(invalid(format!(
                "it is {} characters long, but its label form must fit in {MAX_LABEL_LEN}",
                value.len()
            )));
        }
        Ok(Platform(value.to_owned()))
    }

    /// The platform as written by users (`linux/arm64`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used in label values and dynamic config keys: `/` replaced by `-`.
    pub fn label_value(&self) -> String {
        self.0.replace('/', "-")
    }

    /// Whether this is one of the special local names (`local`, `localhost`).
    pub fn is_local_name(&self) -> bool {
        self.0 == "local" || self.0 == "localhost"
    }
}

/// Checks one label against RFC 1035; the error completes "<label> …".
fn check_rfc1035_label(label: &str) -> Result<(), &'static str> {
    let bytes = label.as_bytes();
    let Some((&first, _)) = bytes.split_first() else {
        return Err("is empty");
    };
    if bytes.len() > MAX_LABEL_LEN {
        return Err("is longer than 63 characters");
    }
    if !first.is_ascii_lowercase() {
        return Err("does not start with a lowercase letter");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("contains a character other than a-z, 0-9 and `-`");
    }
    if bytes.last() == Some(&b'-') {
        return Err("ends with `-`");
    }
    Ok(())
}

impl FromStr for Platform {
    type Err = InvalidPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_platforms() {
        for ok in [
            "linux/arm64",
            "linux/amd64",
            "linux/ppc64le",
            "linux/s390x",
            "linux-c4xlarge/arm64",
            "linux-g6xlarge/amd64",
            "linux/x86_64",
            "local",
            "localhost",
        ] {
            assert!(Platform::parse(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn rejects_malformed_platforms_with_the_reason() {
        let cases = [
            ("", "1 `/`-separated parts"),
            ("linux", "1 `/`-separated parts"),
            ("linux/arm64/v8", "3 `/`-separated parts"),
            ("linux/", "\"\" is empty"),
            ("Linux/arm64", "does not start with a lowercase letter"),
            ("linux/x86_64v2", "other than a-z"),
            ("linux/arm64-", "ends with `-`"),
            ("linux/1arm", "does not start with a lowercase letter"),
            ("linux/arm64;reboot", "other than a-z"),
            ("linux/arm64; rm -rf /", "3 `/`-separated parts"),
        ];
        for (input, reason) in cases {
            let err = Platform::parse(input).expect_err(input);
            assert!(err.to_string().contains(reason), "{input}: {err}");
        }
        let long = format!("linux/a{}", "b".repeat(63));
        assert!(Platform::parse(&long).is_err());
        let too_long_for_a_label = format!("linux/a{}", "b".repeat(57));
        let err = Platform::parse(&too_long_for_a_label).expect_err("64 characters");
        assert!(
            err.to_string().contains("label form must fit in 63"),
            "{err}"
        );
    }

    #[test]
    fn label_value_replaces_slashes() {
        let p = Platform::parse("linux-c4xlarge/arm64").unwrap();
        assert_eq!(p.label_value(), "linux-c4xlarge-arm64");
        assert_eq!(p.to_string(), "linux-c4xlarge/arm64");
    }

    proptest! {
        #[test]
        fn valid_platforms_are_safe_label_values(s in "[a-z][a-z0-9-]{0,20}[a-z0-9]/[a-z][a-z0-9-]{0,20}[a-z0-9]") {
            let p = Platform::parse(&s).unwrap();
            let label = p.label_value();
            prop_assert!(label.len() <= 63);
            prop_assert!(label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }

        #[test]
        fn parse_never_panics(s in ".{0,100}") {
            let _ = Platform::parse(&s);
        }
    }
}
