//! multi-platform-controller: gives Tekton TaskRuns SSH access to build hosts of
//! other CPU architectures.
//!
//! This crate is the imperative shell around [`mpc_core`], where every decision lives
//! as a pure function over plain data: it watches the cluster, hands what it saw to the
//! core, and carries out what the core answers against the Kubernetes API
//! ([`cluster`]) and build hosts over SSH ([`remote`]). See "How it works" in the
//! README and `docs/contract.md` for the behaviour.

pub mod cloud;
pub mod cluster;
pub mod controller;
pub mod doctor;
pub mod logging;
pub mod metrics;
pub mod remote;
pub mod secure_metrics;
pub mod server;
