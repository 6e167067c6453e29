//! The cloud shell: EC2 clients built from the platforms' credential Secrets, and cloud
//! listings turned into the core's plain data.
//!
//! Credentials are read from the Secret cache at each use and a client is rebuilt when
//! the Secret's version changes, so a rotated key is picked up without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use mpc_core::cloud::{CloudInstance, CloudTarget, InstanceId, InstanceState, parse_taskrun_id};
use mpc_core::time::Timestamp;
use mpc_ec2::{Credentials, Ec2Client, InstanceSummary};

/// Keys of an AWS credentials Secret (the Go controller's).
pub mod secret_keys {
    /// The access key id.
    pub const ACCESS_KEY_ID: &str = "access-key-id";
    /// The secret access key.
    pub const SECRET_ACCESS_KEY: &str = "secret-access-key";
    /// An optional session token.
    pub const SESSION_TOKEN: &str = "session-token";
}

/// Why a platform's EC2 client cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret is not in the cache.
    #[error(
        "the AWS credentials Secret {secret:?} of platform {platform} does not exist in \
         namespace {namespace} (or lacks the label \
         build.appstudio.redhat.com/multi-platform-secret); create it with access-key-id and \
         secret-access-key"
    )]
    MissingSecret {
        /// The platform.
        platform: String,
        /// The Secret name (`dynamic.<platform>.aws-secret`).
        secret: String,
        /// The controller namespace.
        namespace: String,
    },
    /// A key is missing or not UTF-8.
    #[error(
        "the AWS credentials Secret {secret:?} of platform {platform} has no usable `{key}`; \
         it needs access-key-id and secret-access-key (and may have session-token)"
    )]
    MissingKey {
        /// The platform.
        platform: String,
        /// The Secret name.
        secret: String,
        /// The key.
        key: &'static str,
    },
}

/// EC2 clients per region and credentials Secret, built on first use and rebuilt when
/// the Secret changes. Cheap to clone.
#[derive(Clone)]
pub struct CloudClients {
    secrets: Store<Secret>,
    namespace: String,
    endpoint: Option<String>,
    built: Arc<Mutex<Built>>,
}

/// Clients by (region, Secret name), with the Secret version each was built from.
type Built = HashMap<(String, String), (String, Ec2Client)>;

impl CloudClients {
    /// Clients from the labelled Secrets of `namespace`; `endpoint` overrides the EC2
    /// endpoint (else `AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, or the region's).
    pub fn new(secrets: Store<Secret>, namespace: &str, endpoint: Option<String>) -> Self {
        CloudClients {
            secrets,
            namespace: namespace.to_owned(),
            endpoint,
            built: Arc::default(),
        }
    }

    /// The client for a platform's instances.
    pub async fn client(&self, target: &CloudTarget) -> Result<Ec2Client, CredentialsError> {
        let secret = self
            .secrets
            .get(&ObjectRef::new(&target.aws_secret).within(&self.namespace))
            .ok_or_else(|| CredentialsError::MissingSecret {
                platform: target.platform.to_string(),
                secret: target.aws_secret.clone(),
                namespace: self.namespace.clone(),
            })?;
        let version = secret.resource_version().unwrap_or_default();
        let cache_key = (target.region.clone(), target.aws_secret.clone());
        if let Some((v, client)) = self.lock().get(&cache_key)
            && *v == version
        {
            return Ok(client.clone());
        }
        let credentials = credentials(&secret, target)?;
        let mut builder = Ec2Client::builder(credentials, target.region.clone());
        if let Some(url) = &self.endpoint {
            builder = builder.endpoint_url(url.clone());
        }
        let client = builder.build().await;
        self.lock().insert(cache_key, (version, client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Built> {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The credentials in a Secret.
fn credentials(secret: &Secret, target: &CloudTarget) -> Result<Credentials, CredentialsError> {
    let read = |key: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let missing = |key| CredentialsError::MissingKey {
        platform: target.platform.to_string(),
        secret: target.aws_secret.clone(),
        key,
    };
    let id = read(secret_keys::ACCESS_KEY_ID).ok_or_else(|| missing(secret_keys::ACCESS_KEY_ID))?;
    let key = read(secret_keys::SECRET_ACCESS_KEY)
        .ok_or_else(|| missing(secret_keys::SECRET_ACCESS_KEY))?;
    Ok(Credentials::new(id, key, read(secret_keys::SESSION_TOKEN)))
}

/// An instance of a listing as the core sees it (its address chosen as `target` says);
/// `None` for an id that is not one.
pub fn cloud_instance(summary: &InstanceSummary, target: &CloudTarget) -> Option<CloudInstance> {
    Some(CloudInstance {
        id: InstanceId::parse(summary.id.as_str()).ok()?,
        state: InstanceState::parse(summary.state.as_str())?,
        instance_type: summary.instance_type.clone(),
        taskrun: summary.task_run_id().and_then(parse_taskrun_id),
        launched: summary
            .launch_time
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH),
        address: summary
            .address(target.strict_public_address)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use mpc_core::platform::Platform;
    use std::collections::BTreeMap;

    fn target() -> CloudTarget {
        CloudTarget {
            platform: Platform::parse("linux/arm64").unwrap(),
            region: "us-east-1".into(),
            aws_secret: "aws-account".into(),
            instance_tag: "prod-arm64".into(),
            instance_type: "m6g.large".into(),
            strict_public_address: false,
        }
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn credentials_need_both_keys_and_never_print_the_secret() {
        let ok = credentials(
            &secret(&[
                ("access-key-id", "AKIDEXAMPLE"),
                ("secret-access-key", "wJalrXUtnFEMI\n"),
            ]),
            &target(),
        )
        .unwrap();
        assert_eq!(ok.access_key_id(), "AKIDEXAMPLE");
        assert!(!format!("{ok:?}").contains("wJalr"));
        let err = credentials(&secret(&[("access-key-id", "AKID")]), &target()).unwrap_err();
        assert!(
            err.to_string().contains("no usable `secret-access-key`"),
            "{err}"
        );
    }
}
