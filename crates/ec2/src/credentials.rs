//! The AWS credentials a platform's Secret holds.

use std::fmt;

use zeroize::Zeroizing;

/// Static AWS credentials: the `access-key-id`, `secret-access-key` and optional
/// `session-token` of the platform's Secret. The secret parts are wiped from memory on
/// drop and never printed (`Debug` shows the access key id only).
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl Credentials {
    /// Credentials from their parts; an empty session token counts as none.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token: session_token.filter(|t| !t.is_empty()).map(Zeroizing::new),
        }
    }

    /// The access key id (not secret: it names the key, CloudTrail logs it).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The SDK's form of these credentials.
    pub(crate) fn to_sdk(&self) -> aws_sdk_ec2::config::Credentials {
        aws_sdk_ec2::config::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.to_string(),
            self.session_token.as_ref().map(|t| t.to_string()),
            None,
            "multi-platform-controller-secret",
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_parts() {
        let c = Credentials::new("AKIDEXAMPLE", "s3cr3t-key", Some("t0ken".into()));
        let text = format!("{c:?}");
        assert!(text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("t0ken"), "{text}");
        let sdk = format!("{:?}", c.to_sdk());
        assert!(!sdk.contains("s3cr3t") && !sdk.contains("t0ken"), "{sdk}");
    }

    #[test]
    fn an_empty_session_token_is_none() {
        let c = Credentials::new("a", "b", Some(String::new()));
        assert!(c.to_sdk().session_token().is_none());
        let c = Credentials::new("a", "b", Some("t".into()));
        assert_eq!(c.to_sdk().session_token(), Some("t"));
    }
}
