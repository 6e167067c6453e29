//! The controller's integration tests, one module per suite, in one test binary: each
//! binary links kube, russh and axum, so one binary instead of fifteen is most of the
//! difference in a cold build.
//!
//! Suites on kube-sim run against a real cluster instead when `MPC_TEST_KUBECONFIG` is
//! set (see the README's "Against a real cluster").

// Test code: a failed unwrap is how a test fails, and its numbers are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;
mod common_controller;

mod check_config;
mod controller_allocation;
mod controller_cloud;
mod controller_failures;
mod controller_platforms;
mod controller_restart;
mod controller_scale;
mod controller_smoke;
mod doctor;
mod leader_election;
mod manifests;
mod metrics_endpoint;
mod monitoring;
mod operations;
mod ssh_build_users;
mod ssh_connection;
mod ssh_logging;
mod ssh_provisioning;
mod ssh_remote_task;
