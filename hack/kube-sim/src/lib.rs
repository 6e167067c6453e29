//! kube-sim: an in-memory Kubernetes API server for tests and demos.
//!
//! It serves the Kubernetes REST API over plain HTTP on a loopback address, faithfully
//! enough that the real `kube` client, `kube::runtime` (watcher, reflector, Controller,
//! finalizer helper, events Recorder), Lease-based leader election and `kubectl` work
//! against it unchanged. One generic store, driven by a table of resources, serves every
//! type; CRDs add rows to the table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! let server = kube_sim::Server::start(kube_sim::Options::default()).await?;
//! let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
//! let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}}))?;
//! cms.create(&PostParams::default(), &cm).await?;
//! println!("export KUBECONFIG={}", server.kubeconfig_path().display());
//! # Ok(()) }
//! ```
//!
//! Integration tests start from [`testenv::TestEnv`], which runs against a real cluster
//! instead when `MPC_TEST_KUBECONFIG` is set.

#![warn(missing_docs)]

pub mod auth;
pub mod convert;
pub mod crds;
pub mod error;
pub mod faults;
pub mod fieldcheck;
pub mod http;
pub mod managed;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod testenv;
pub mod typed;

pub use error::{ApiError, Reason};
pub use faults::{FaultConfig, FaultStats, Faults};
pub use server::{Options, RunningServer, Server};
pub use testenv::{TestEnv, wait_for, wait_until};
