//! Starting and stopping an in-process kube-sim, its kubeconfig and its `kube::Client`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::crds::CrdError;
use crate::error::{ApiError, Reason};
use crate::faults::{FaultConfig, Faults};
use crate::http::throttle::InFlight;
use crate::http::{self, Shared};
use crate::store::{Store, StoreConfig, WatchCacheWindow, WriteOptions};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig. Default: a file in a temporary directory that is
    /// removed with the server.
    pub kubeconfig: Option<PathBuf>,
    /// Faults to inject from the start (change them later with [`RunningServer::faults`]).
    pub faults: FaultConfig,
    /// The watch cache window of each resource: watches from a resourceVersion inside it
    /// replay the changes since, older ones get 410 Gone. Default: the API server's (at
    /// least 100 changes, every change of the last 75 s, at most 102 400).
    pub watch_cache: WatchCacheWindow,
    /// Events buffered per watcher before a slow watcher is disconnected.
    pub watch_buffer: usize,
    /// How often watch streams that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Install the upstream Tekton CRDs ([`crate::crds`]) at start.
    pub with_tekton_crds: bool,
    /// `--max-requests-inflight`: read-only requests (get, list) served at once before
    /// further ones get 429 Too Many Requests; watches do not count. 0 = unlimited.
    /// Default 400, as the API server.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`: writes served at once before 429. 0 = unlimited.
    /// Default 200, as the API server.
    pub max_mutating_requests_inflight: usize,
}

impl Default for Options {
    fn default() -> Self {
        let store = StoreConfig::default();
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            faults: FaultConfig::default(),
            watch_cache: store.watch_cache,
            watch_buffer: store.watch_buffer,
            bookmark_interval: Duration::from_secs(10),
            with_tekton_crds: false,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address is taken or not allowed.
    #[error("kube-sim cannot listen on {addr}: {source} (pick another address or port 0)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The kubeconfig file could not be written.
    #[error(
        "kube-sim cannot write its kubeconfig to {path}: {source} (check the directory exists and is writable)"
    )]
    Kubeconfig {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The server URL did not parse (cannot happen for a socket address).
    #[error("kube-sim built an invalid URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// The parse error.
        reason: String,
    },
    /// The kube client could not be built.
    #[error("cannot build a kube client for {url}: {source}")]
    Client {
        /// Server URL.
        url: String,
        /// The cause.
        source: kube::Error,
    },
    /// The Tekton CRDs could not be read.
    #[error(transparent)]
    TektonCrds(#[from] CrdError),
    /// A Tekton CRD was refused.
    #[error("installing the Tekton CRDs failed: {0}")]
    Crd(ApiError),
}

/// The entry point: `Server::start(Options::default()).await`.
pub struct Server;

impl Server {
    /// Starts a server on the current tokio runtime. It serves until the returned handle is
    /// dropped or [`RunningServer::shutdown`] is awaited.
    pub async fn start(options: Options) -> Result<RunningServer, Error> {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: options.listen,
            source,
        })?;
        let url = format!("http://{addr}");
        let store = Store::new(StoreConfig {
            watch_cache: options.watch_cache,
            watch_buffer: options.watch_buffer.max(16),
        });
        if options.with_tekton_crds {
            install_tekton_crds(&store)?;
        }
        let faults = Faults::new(options.faults.clone());

        let (tmp, kubeconfig) = match &options.kubeconfig {
            Some(p) => (None, p.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("kube-sim-")
                    .tempdir()
                    .map_err(|source| Error::Kubeconfig {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let p = dir.path().join("kubeconfig");
                (Some(dir), p)
            }
        };
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).map_err(|source| Error::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;

        let client = client_for(&url, "default")?;
        let identities = crate::auth::Identities::default();
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            store: store.clone(),
            faults: faults.clone(),
            addr,
            bookmark_interval: options.bookmark_interval.max(Duration::from_millis(10)),
            shutdown: shutdown_rx,
            in_flight: InFlight::new(
                options.max_requests_inflight,
                options.max_mutating_requests_inflight,
            ),
            openapi: Default::default(),
            identities: identities.clone(),
        });
        let in_flight_handle = shared.in_flight.clone();
        let tasks = vec![
            tokio::spawn(http::serve(listener, shared)),
            tokio::spawn(store.clone().run_collectors()),
        ];
        tracing::info!(%url, kubeconfig = %kubeconfig.display(), "kube-sim serving");
        Ok(RunningServer {
            in_flight: in_flight_handle,
            addr,
            url,
            client,
            kubeconfig,
            _tmp: tmp,
            faults,
            identities,
            store,
            shutdown: shutdown_tx,
            tasks,
        })
    }
}

fn client_for(url: &str, namespace: &str) -> Result<kube::Client, Error> {
    let uri: ::http::Uri = url
        .parse()
        .map_err(|e: ::http::uri::InvalidUri| Error::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let mut config = kube::Config::new(uri);
    config.default_namespace = namespace.to_string();
    kube::Client::try_from(config).map_err(|source| Error::Client {
        url: url.to_string(),
        source,
    })
}

/// The kubeconfig for a plain-http server without authentication.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\nusers:\n- name: kube-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// Creates the Tekton CRDs that do not exist yet.
fn install_tekton_crds(store: &Store) -> Result<(), Error> {
    let info = store
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| Error::Crd(ApiError::internal("CRDs are not served")))?;
    for crd in crate::crds::tekton_crds()?.iter() {
        match store.create(&info, None, crd.clone(), &WriteOptions::manager("kube-sim")) {
            Ok(_) => {}
            Err(e) if e.reason == Reason::AlreadyExists => {}
            Err(e) => return Err(Error::Crd(e)),
        }
    }
    Ok(())
}

/// A running server. Dropping it stops the server and closes every connection.
pub struct RunningServer {
    addr: SocketAddr,
    url: String,
    client: kube::Client,
    kubeconfig: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    faults: Faults,
    identities: crate::auth::Identities,
    store: Arc<Store>,
    in_flight: Arc<InFlight>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for this server (default namespace `default`). Clones share a connection pool.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A new client whose default namespace is `namespace`.
    pub fn client_in(&self, namespace: &str) -> Result<kube::Client, Error> {
        client_for(&self.url, namespace)
    }

    /// The kubeconfig file pointing at this server (plain http, no credentials).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The fault injection handle; changes take effect for the next request.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The tokens TokenReviews accept: add static ones here; TokenRequests
    /// (`serviceaccounts/<name>/token`) add their own.
    pub fn identities(&self) -> &crate::auth::Identities {
        &self.identities
    }

    /// Direct access to the object store (inspection in tests and benchmarks).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Forgets the change history, like an etcd compaction: watches resuming from an
    /// earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Installs the upstream Tekton CRDs ([`crate::crds`]); those that exist are kept.
    pub fn install_tekton_crds(&self) -> Result<(), Error> {
        install_tekton_crds(&self.store)
    }

    /// Requests refused with 429 Too Many Requests so far (the in-flight limit).
    pub fn throttled_requests(&self) -> u64 {
        self.in_flight.rejected()
    }

    /// Stops the server and waits until its tasks are gone.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
