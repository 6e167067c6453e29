//! The Kubernetes side of doctor: reads host-config, the admin-key Secrets, the
//! known-hosts ConfigMap and the TaskRuns holding slots. Read-only.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

use super::facts::AdminKeyFact;
use crate::cluster::TaskRunObject;
use crate::remote::AdminKey;
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, CONFIG_LABEL, HOST_CONFIG_NAME, KNOWN_HOSTS_CONFIG_NAME, LOCALHOST,
    SECRET_LABEL, secret_keys,
};

/// TaskRuns fetched per list request.
const PAGE_SIZE: u32 = 500;

/// Why doctor cannot run at all (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// No usable kubeconfig or in-cluster configuration.
    #[error(
        "no Kubernetes configuration: {0}; set KUBECONFIG, create ~/.kube/config, or run doctor in the cluster"
    )]
    Kubeconfig(String),
    /// The API server did not answer.
    #[error("cannot reach the API server: {0}; check KUBECONFIG and that the cluster is up")]
    Unreachable(String),
    /// There is no host-config ConfigMap.
    #[error(
        "no ConfigMap {HOST_CONFIG_NAME} in namespace {namespace}: create it (see config/examples/host-config.yaml), or point --namespace (env POD_NAMESPACE) at the controller's namespace"
    )]
    NoHostConfig {
        /// The namespace looked in.
        namespace: String,
    },
    /// The API server refused to give out host-config.
    #[error(
        "cannot read ConfigMap {HOST_CONFIG_NAME} in namespace {namespace}: {reason}; doctor needs get on ConfigMaps and Secrets in {namespace} and list on TaskRuns in all namespaces"
    )]
    HostConfigRefused {
        /// The namespace looked in.
        namespace: String,
        /// What the API server said.
        reason: String,
    },
    /// `--host` names a host host-config does not have.
    #[error("host-config has no host {unknown}; its hosts are: {known}")]
    UnknownHost {
        /// The unknown name(s).
        unknown: String,
        /// Every host name in host-config.
        known: String,
    },
}

/// A client from `KUBECONFIG`, `~/.kube/config` or the in-cluster configuration, whose
/// requests give up after `timeout`.
pub async fn client(timeout: Duration) -> Result<kube::Client, Fatal> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| Fatal::Kubeconfig(e.to_string()))?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(|e| Fatal::Kubeconfig(e.to_string()))
}

/// The host-config ConfigMap's data and whether it carries the config label.
#[derive(Debug, Clone, Default)]
pub struct HostConfigMap {
    /// `data`.
    pub data: BTreeMap<String, String>,
    /// Whether the label is there.
    pub labelled: bool,
}

/// Reads host-config.
pub async fn host_config(client: &kube::Client, namespace: &str) -> Result<HostConfigMap, Fatal> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(HOST_CONFIG_NAME).await {
        Ok(Some(cm)) => Ok(HostConfigMap {
            labelled: cm
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(CONFIG_LABEL)),
            data: cm.data.unwrap_or_default(),
        }),
        Ok(None) => Err(Fatal::NoHostConfig {
            namespace: namespace.to_owned(),
        }),
        Err(kube::Error::Api(status)) => Err(Fatal::HostConfigRefused {
            namespace: namespace.to_owned(),
            reason: status.message.clone(),
        }),
        Err(other) => Err(Fatal::Unreachable(other.to_string())),
    }
}

/// Reads the admin-key Secret `name`: the fact to report and the key, when usable.
pub async fn admin_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> (AdminKeyFact, Option<AdminKey>) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return (AdminKeyFact::SecretMissing, None),
        Err(e) => return (AdminKeyFact::Unreadable(api_error(&e)), None),
    };
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SECRET_LABEL));
    let Some(bytes) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(secret_keys::ADMIN_KEY))
    else {
        return (AdminKeyFact::KeyMissing, None);
    };
    match AdminKey::parse(&bytes.0) {
        Ok(key) => (
            AdminKeyFact::Loaded {
                fingerprint: key.fingerprint(),
                labelled,
            },
            Some(key),
        ),
        Err(e) => (AdminKeyFact::Invalid(e.to_string()), None),
    }
}

/// Why doctor could not read what it needs from the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The API server refused or failed the request.
    #[error("{}", api_error(.0))]
    Api(#[source] kube::Error),
    /// Listing TaskRuns failed.
    #[error("{}; doctor needs list on taskruns.tekton.dev in all namespaces", api_error(.0))]
    TaskRuns(#[source] kube::Error),
    /// The cluster serves no TaskRuns.
    #[error("the TaskRun API (tekton.dev/v1 taskruns) is not served; is Tekton installed?")]
    NoTekton,
}

/// The known-hosts ConfigMap's data; empty when it does not exist.
pub async fn known_hosts(
    client: &kube::Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>, ReadError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(KNOWN_HOSTS_CONFIG_NAME).await {
        Ok(cm) => Ok(cm.and_then(|cm| cm.data).unwrap_or_default()),
        Err(e) => Err(ReadError::Api(e)),
    }
}

/// TaskRuns (all namespaces) per `assigned-host` label value, `localhost` left out.
pub async fn slots_used(client: &kube::Client) -> Result<BTreeMap<String, u32>, ReadError> {
    let api: Api<TaskRunObject> = Api::all(client.clone());
    let mut params = ListParams::default()
        .labels(ASSIGNED_HOST_LABEL)
        .limit(PAGE_SIZE);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        let page = api.list_metadata(&params).await.map_err(|e| match &e {
            kube::Error::Api(status) if status.is_not_found() => ReadError::NoTekton,
            _ => ReadError::TaskRuns(e),
        })?;
        for taskrun in &page.items {
            let host = taskrun
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ASSIGNED_HOST_LABEL));
            if let Some(host) = host.filter(|h| h.as_str() != LOCALHOST) {
                *counts.entry(host.clone()).or_default() += 1;
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(counts),
        }
    }
}

fn api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => other.to_string(),
    }
}
