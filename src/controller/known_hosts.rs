//! `accept-new` host keys, remembered in a ConfigMap the controller owns.
//!
//! `data` maps a host's pool name to the OpenSSH public key line it presented first.
//! An admin accepts a changed key by deleting the entry (or by pinning the new key in
//! host-config). Writes use the ConfigMap's resourceVersion as a precondition, so two
//! controllers meeting a host for the first time at once cannot overwrite each other:
//! the second one reads the first one's key and, if it differs, reports a mismatch.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use russh::keys::PublicKey;
use serde_json::json;

use crate::cluster::io::FIELD_MANAGER;
use crate::remote::keys::parse_host_key;
use crate::remote::{KnownHosts, KnownHostsError};
use mpc_core::naming::KNOWN_HOSTS_CONFIG_NAME;

/// Attempts at a write that lost a race with another writer.
const ATTEMPTS: usize = 5;

/// A [`KnownHosts`] store on the known-hosts ConfigMap.
pub struct ConfigMapKnownHosts {
    api: Api<ConfigMap>,
}

impl ConfigMapKnownHosts {
    /// The store in the controller's namespace.
    pub fn new(client: Client, namespace: &str) -> Self {
        ConfigMapKnownHosts {
            api: Api::namespaced(client, namespace),
        }
    }

    async fn read(&self) -> Result<Option<ConfigMap>, KnownHostsError> {
        self.api
            .get_opt(KNOWN_HOSTS_CONFIG_NAME)
            .await
            .map_err(|e| error("read", e))
    }

    async fn remember(&self, host: &str, key: &PublicKey) -> Result<PublicKey, KnownHostsError> {
        let line = key
            .to_openssh()
            .map_err(|e| KnownHostsError(format!("cannot encode the host key: {e}")))?;
        for _ in 0..ATTEMPTS {
            let current = self.read().await?;
            if let Some(known) = current.as_ref().and_then(|cm| remembered(cm, host)) {
                return known;
            }
            let written = match current {
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(KNOWN_HOSTS_CONFIG_NAME.to_owned()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_owned(),
                                FIELD_MANAGER.to_owned(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(host.to_owned(), line.clone())])),
                        ..ConfigMap::default()
                    };
                    self.api
                        .create(&PostParams::default(), &cm)
                        .await
                        .map(|_| ())
                }
                Some(cm) => {
                    // The resourceVersion makes this fail if anyone wrote in between.
                    let patch = json!({
                        "metadata": {"resourceVersion": cm.resource_version()},
                        "data": {host: line},
                    });
                    self.api
                        .patch(
                            KNOWN_HOSTS_CONFIG_NAME,
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                        .map(|_| ())
                }
            };
            match written {
                Ok(()) => return Ok(key.clone()),
                Err(kube::Error::Api(status))
                    if status.is_conflict() || status.is_already_exists() =>
                {
                    continue;
                }
                Err(e) => return Err(error("write", e)),
            }
        }
        Err(KnownHostsError(format!(
            "could not record the host key of {host} in ConfigMap {KNOWN_HOSTS_CONFIG_NAME}: \
             it kept changing; try again"
        )))
    }
}

fn error(what: &str, e: kube::Error) -> KnownHostsError {
    KnownHostsError(format!(
        "cannot {what} ConfigMap {KNOWN_HOSTS_CONFIG_NAME} (remembered host keys): {e}"
    ))
}

/// The key remembered for `host` in the ConfigMap, if any.
fn remembered(cm: &ConfigMap, host: &str) -> Option<Result<PublicKey, KnownHostsError>> {
    let line = cm.data.as_ref()?.get(host)?;
    Some(parse_host_key(line).map_err(|e| {
        KnownHostsError(format!(
            "the key remembered for host {host} in ConfigMap {KNOWN_HOSTS_CONFIG_NAME} is not a \
             valid OpenSSH public key ({e}); delete that entry to accept the host's key again"
        ))
    }))
}

impl KnownHosts for ConfigMapKnownHosts {
    fn get<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<PublicKey>, KnownHostsError>> {
        Box::pin(async move {
            match self.read().await? {
                Some(cm) => remembered(&cm, host).transpose(),
                None => Ok(None),
            }
        })
    }

    fn remember_first<'a>(
        &'a self,
        host: &'a str,
        key: &'a PublicKey,
    ) -> BoxFuture<'a, Result<PublicKey, KnownHostsError>> {
        Box::pin(self.remember(host, key))
    }
}
