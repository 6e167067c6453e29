//! The test environment every integration test of the project starts from.
//!
//! By default a [`TestEnv`] runs an in-process kube-sim. When the environment variable
//! `MPC_TEST_KUBECONFIG` names a kubeconfig, it connects to that (real) cluster instead.
//! Either way the test gets its own fresh namespace, deleted again by
//! [`TestEnv::cleanup`] or when the environment is dropped.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::faults::Faults;
use crate::server::{Options, RunningServer, Server};

/// The environment variable that points the tests at a real cluster.
pub const REAL_CLUSTER_ENV: &str = "MPC_TEST_KUBECONFIG";

/// Label on every namespace a test environment creates (find leaked ones with
/// `kubectl get ns -l kube-sim.test/env`).
pub const NAMESPACE_LABEL: &str = "kube-sim.test/env";

/// Why a test environment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    /// kube-sim did not start.
    #[error("starting kube-sim failed: {0}")]
    Server(#[from] crate::server::Error),
    /// The real cluster's kubeconfig could not be used.
    #[error("cannot use the kubeconfig {path} named by {REAL_CLUSTER_ENV}: {reason}")]
    Kubeconfig {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A request to the cluster failed.
    #[error("{what} failed: {source}")]
    Kube {
        /// What was attempted.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// A condition did not hold in time.
    #[error(transparent)]
    Timeout(#[from] WaitTimeout),
    /// The upstream Tekton CRDs could not be read.
    #[error(transparent)]
    TektonCrds(#[from] crate::crds::CrdError),
}

/// A condition that did not become true before its deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {after:?} waiting until {what}")]
pub struct WaitTimeout {
    /// Description of the condition.
    pub what: String,
    /// How long was waited.
    pub after: Duration,
}

/// A cluster (kube-sim or real) plus a namespace of the test's own.
pub struct TestEnv {
    client: kube::Client,
    namespace: String,
    kubeconfig: PathBuf,
    server: Option<RunningServer>,
    cleaned: bool,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("namespace", &self.namespace)
            .field("kubeconfig", &self.kubeconfig)
            .field("kube_sim", &self.server.is_some())
            .finish()
    }
}

/// `prefix` made into a namespace name with a random suffix (≤ 63 characters).
fn namespace_name(prefix: &str) -> String {
    let mut p: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    p.truncate(40);
    let p = p.trim_matches('-');
    let p = if p.is_empty() { "test" } else { p };
    format!("{p}-{}", crate::object::random_suffix())
}

impl TestEnv {
    /// Starts kube-sim (or connects to `MPC_TEST_KUBECONFIG`) and creates a namespace
    /// named after `prefix`.
    pub async fn start(prefix: &str) -> Result<TestEnv, TestEnvError> {
        TestEnv::start_with(prefix, Options::default()).await
    }

    /// Like [`TestEnv::start`], with kube-sim options (ignored on a real cluster).
    pub async fn start_with(prefix: &str, options: Options) -> Result<TestEnv, TestEnvError> {
        let namespace = namespace_name(prefix);
        let (client, kubeconfig, server) = match std::env::var_os(REAL_CLUSTER_ENV) {
            Some(path) if !path.is_empty() => {
                let path = PathBuf::from(path);
                let client = real_client(&path, Some(&namespace)).await?;
                (client, path, None)
            }
            _ => {
                let server = Server::start(options).await?;
                let client = server.client_in(&namespace)?;
                (client, server.kubeconfig_path().to_path_buf(), Some(server))
            }
        };
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": namespace, "labels": {NAMESPACE_LABEL: "true"}}
        }))
        .map_err(|e| TestEnvError::Kubeconfig {
            path: kubeconfig.clone(),
            reason: e.to_string(),
        })?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| TestEnvError::Kube {
                what: format!("creating namespace {namespace}"),
                source,
            })?;
        Ok(TestEnv {
            client,
            namespace,
            kubeconfig,
            server,
            cleaned: false,
        })
    }

    /// A client whose default namespace is the test's namespace.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A new, independent client (own connection pool) with the test's namespace as
    /// default — one per simulated controller replica.
    pub async fn new_client(&self) -> Result<kube::Client, TestEnvError> {
        match &self.server {
            Some(server) => Ok(server.client_in(&self.namespace)?),
            None => real_client(&self.kubeconfig, Some(&self.namespace)).await,
        }
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The kubeconfig of the cluster (kube-sim's own file, or `MPC_TEST_KUBECONFIG`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Whether the tests run against kube-sim (not a real cluster).
    pub fn is_kube_sim(&self) -> bool {
        self.server.is_some()
    }

    /// The kube-sim server, when running against kube-sim.
    pub fn server(&self) -> Option<&RunningServer> {
        self.server.as_ref()
    }

    /// Fault injection, only available on kube-sim.
    pub fn faults(&self) -> Option<&Faults> {
        self.server.as_ref().map(RunningServer::faults)
    }

    /// `Api<K>` in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A bearer token of the ServiceAccount `name` in the test's namespace (created when
    /// missing), from a TokenRequest: what a pod of that account would present. Valid
    /// for an hour, or until the ServiceAccount is deleted.
    pub async fn service_account_token(&self, name: &str) -> Result<String, TestEnvError> {
        let accounts: Api<ServiceAccount> = self.api();
        let kube_err = |what: String| move |source| TestEnvError::Kube { what, source };
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))
        .map_err(|e| TestEnvError::Kubeconfig {
            path: self.kubeconfig.clone(),
            reason: e.to_string(),
        })?;
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => {
                return Err(kube_err(format!("creating ServiceAccount {name}"))(source));
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(kube_err(format!(
                "requesting a token of ServiceAccount {name}"
            )))?;
        Ok(answer.status.map(|s| s.token).unwrap_or_default())
    }

    /// Makes TaskRuns served the way Tekton serves them: installs the upstream Tekton CRDs
    /// ([`crate::crds`], without their webhook conversion) unless the cluster has Tekton's
    /// TaskRun CRD already, and waits until TaskRuns are served. Fails naming the folder
    /// when the CRD files are missing.
    pub async fn ensure_tekton_crds(&self) -> Result<(), TestEnvError> {
        match &self.server {
            Some(server) => server.install_tekton_crds()?,
            None => self.install_tekton_crds_on_cluster().await?,
        }
        let taskruns: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &crate::crds::taskrun_api_resource(),
        );
        wait_until(Duration::from_secs(60), "TaskRuns are served", || async {
            taskruns.list(&Default::default()).await.is_ok()
        })
        .await?;
        Ok(())
    }

    async fn install_tekton_crds_on_cluster(&self) -> Result<(), TestEnvError> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let kube_err = |what: &str| {
            let what = what.to_string();
            move |source| TestEnvError::Kube { what, source }
        };
        if crds
            .get_opt(crate::crds::TASKRUN_CRD_NAME)
            .await
            .map_err(kube_err("looking for Tekton's TaskRun CRD"))?
            .is_some()
        {
            return Ok(());
        }
        for crd in crate::crds::tekton_crds()?.iter() {
            let name = crate::object::name(crd).to_string();
            let typed: CustomResourceDefinition =
                serde_json::from_value(crd.clone()).map_err(|e| TestEnvError::Kubeconfig {
                    path: crate::crds::tekton_crds_dir(),
                    reason: format!("{name} is not a valid CRD: {e}"),
                })?;
            match crds.create(&PostParams::default(), &typed).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => {
                    return Err(TestEnvError::Kube {
                        what: format!("creating the CRD {name}"),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes the test's namespace (without waiting for it to be gone).
    pub async fn cleanup(mut self) -> Result<(), TestEnvError> {
        self.cleaned = true;
        delete_namespace(&self.client, &self.namespace).await
    }
}

async fn delete_namespace(client: &kube::Client, namespace: &str) -> Result<(), TestEnvError> {
    match Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(TestEnvError::Kube {
            what: format!("deleting namespace {namespace}"),
            source,
        }),
    }
}

async fn real_client(path: &Path, namespace: Option<&str>) -> Result<kube::Client, TestEnvError> {
    let err = |reason: String| TestEnvError::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
    if let Some(ns) = namespace {
        config.default_namespace = ns.to_string();
    }
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // kube-sim vanishes with the environment; a real cluster keeps the namespace
        // unless it is deleted here. Drop cannot await, and the test's runtime may be
        // single-threaded, so a helper thread with its own runtime does the delete.
        if self.cleaned || self.server.is_some() {
            return;
        }
        let (path, namespace) = (self.kubeconfig.clone(), self.namespace.clone());
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = real_client(&path, None).await
                    && let Err(e) = delete_namespace(&client, &namespace).await
                {
                    eprintln!("kube-sim testenv: {e}");
                }
            });
        });
        let _ = done.join();
    }
}

/// Waits until `check` returns true, polling with a short backoff, for at most `timeout`.
pub async fn wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> Result<(), WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, what, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await
}

/// Waits until `probe` returns `Some`, polling with a short backoff, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> Result<T, WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(WaitTimeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Prints why a kube-sim-only test does nothing on a real cluster.
pub fn skip_on_real_cluster(test: &str, why: &str) {
    eprintln!(
        "SKIPPED on a real cluster ({REAL_CLUSTER_ENV} is set): {test}: {why} — this behaviour exists only in kube-sim"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn namespace_names_are_valid(prefix in ".{0,80}") {
            let n = namespace_name(&prefix);
            prop_assert!(crate::object::check_label(&n).is_none(), "{n}");
        }
    }

    #[tokio::test]
    async fn wait_until_times_out_and_succeeds() {
        let err = wait_until(Duration::from_millis(30), "never", || async { false })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never"));
        let mut n = 0;
        let v = wait_for(Duration::from_secs(5), "third try", || {
            n += 1;
            let k = n;
            async move { (k >= 3).then_some(k) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
