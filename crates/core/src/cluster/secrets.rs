//! The per-TaskRun Secret (contract §2.3), built as plain data.
//!
//! Tasks mount `multi-platform-ssh-<taskrun>` and read `id_rsa`, `host` and `user-dir`,
//! or print `error` and fail. The Secret is owned by its TaskRun so Kubernetes deletes
//! it even if the controller never gets to.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::naming::{LOCALHOST, SECRET_LABEL, secret_keys, secret_name};

/// The TaskRun a Secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretOwner {
    /// TaskRun namespace (the Secret's namespace).
    pub namespace: String,
    /// TaskRun name.
    pub name: String,
    /// TaskRun uid, for the ownerReference.
    pub uid: String,
}

/// What a build needs to log in to its host.
#[derive(Clone, PartialEq, Eq)]
pub struct HostAccess<'a> {
    /// The throwaway user.
    pub user: &'a str,
    /// Address the Task connects to (IP literal or DNS name).
    pub address: &'a str,
    /// The user's private key in OpenSSH format.
    pub private_key: &'a str,
    /// A `known_hosts` line pinning the host key, when we know it.
    pub known_hosts: Option<&'a str>,
    /// The user's home when it is not `/home/<user>` (Windows and macOS VMs).
    pub user_dir: Option<&'a str>,
}

/// The Secret that lets a build log in to its host.
pub fn access_secret(owner: &SecretOwner, access: &HostAccess<'_>) -> Secret {
    let mut data = BTreeMap::from([
        (secret_keys::ID_RSA, access.private_key.to_owned()),
        (
            secret_keys::HOST,
            format!("{}@{}", access.user, access.address),
        ),
        (
            secret_keys::USER_DIR,
            access
                .user_dir
                .map_or_else(|| format!("/home/{}", access.user), str::to_owned),
        ),
    ]);
    if let Some(line) = access.known_hosts {
        data.insert(secret_keys::KNOWN_HOSTS, line.to_owned());
    }
    secret(owner, data)
}

/// The Secret for a local platform: the build runs in the cluster.
pub fn local_secret(owner: &SecretOwner) -> Secret {
    secret(
        owner,
        BTreeMap::from([(secret_keys::HOST, LOCALHOST.to_owned())]),
    )
}

/// The Secret that makes the Task fail fast with `message`.
///
/// `platform` is the requested platform as written (even when it is malformed), so the
/// person reading the build log sees what was asked for.
pub fn error_secret(owner: &SecretOwner, message: &str, platform: &str) -> Secret {
    secret(
        owner,
        BTreeMap::from([(secret_keys::ERROR, error_text(message, platform))]),
    )
}

/// The `error` value: the message, a blank line and the context block (contract §2.3).
pub fn error_text(message: &str, platform: &str) -> String {
    format!(
        "{}\n\nContext info:\n  Platform: {platform}\n",
        message.trim_end()
    )
}

fn secret(owner: &SecretOwner, data: BTreeMap<&str, String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&owner.name)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(BTreeMap::from([(
                SECRET_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: "tekton.dev/v1".to_owned(),
                kind: "TaskRun".to_owned(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                // Not blockOwnerDeletion: that needs update rights on taskruns/finalizers,
                // and nothing should wait for this Secret when a TaskRun goes.
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> SecretOwner {
        SecretOwner {
            namespace: "tenant".into(),
            name: "build-1".into(),
            uid: "0d5e-uid".into(),
        }
    }

    fn data(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    fn assert_owned_and_labelled(secret: &Secret) {
        let meta = &secret.metadata;
        assert_eq!(meta.name.as_deref(), Some("multi-platform-ssh-build-1"));
        assert_eq!(meta.namespace.as_deref(), Some("tenant"));
        assert_eq!(meta.labels.as_ref().unwrap()[SECRET_LABEL], "true");
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("TaskRun", "build-1", "0d5e-uid")
        );
        assert_eq!(owner.api_version, "tekton.dev/v1");
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn access_secret_has_the_keys_tasks_read() {
        let s = access_secret(
            &owner(),
            &HostAccess {
                user: "u-4506ed1faa17346fbd87bb80e48b",
                address: "10.0.0.7",
                private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\n...",
                known_hosts: Some("10.0.0.7 ssh-ed25519 AAAA"),
                user_dir: None,
            },
        );
        assert_owned_and_labelled(&s);
        let d = data(&s);
        assert_eq!(d["host"], "u-4506ed1faa17346fbd87bb80e48b@10.0.0.7");
        assert_eq!(d["user-dir"], "/home/u-4506ed1faa17346fbd87bb80e48b");
        assert!(d["id_rsa"].starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_eq!(d["known_hosts"], "10.0.0.7 ssh-ed25519 AAAA");
        assert!(!d.contains_key("error"));
    }

    #[test]
    fn a_handed_over_builder_account_keeps_its_own_home() {
        let s = access_secret(
            &owner(),
            &HostAccess {
                user: "konflux-builder",
                address: "10.0.0.8",
                private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\n...",
                known_hosts: None,
                user_dir: Some("C:\\Users\\konflux-builder"),
            },
        );
        let d = data(&s);
        assert_eq!(d["host"], "konflux-builder@10.0.0.8");
        assert_eq!(d["user-dir"], "C:\\Users\\konflux-builder");
    }

    #[test]
    fn local_secret_has_only_host_localhost() {
        let s = local_secret(&owner());
        assert_owned_and_labelled(&s);
        assert_eq!(
            data(&s),
            BTreeMap::from([("host".to_owned(), "localhost".to_owned())])
        );
    }

    #[test]
    fn error_secret_has_only_error_with_the_context_block() {
        let s = error_secret(
            &owner(),
            "no host is configured for platform linux/riscv64\n",
            "linux/riscv64",
        );
        assert_owned_and_labelled(&s);
        let d = data(&s);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d["error"],
            "no host is configured for platform linux/riscv64\n\nContext info:\n  Platform: linux/riscv64\n"
        );
    }
}
