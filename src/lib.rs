//! multi-platform-controller: gives Tekton TaskRuns SSH access to build hosts of
//! other CPU architectures.
//!
//! The crate is a functional core (pure decisions over plain data) wrapped in thin
//! Kubernetes and SSH shells; see `ARCHITECTURE` in the README.

pub mod allocation;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod doctor;
pub mod logging;
pub mod metrics;
pub mod naming;
pub mod platform;
pub mod remote;
pub mod server;
pub mod taskrun;
