//! Conformance tests: every behaviour kube-sim promises, checked through the real `kube`
//! client. They run against kube-sim by default and against a real cluster when
//! `MPC_TEST_KUBECONFIG` is set (each test in its own namespace, deleted afterwards), so the
//! same assertions check kube-sim's fidelity against the real thing.
//!
//! One test binary holds every module: one link instead of a dozen.

mod common;

mod auth;
mod crd;
mod crud;
mod delete_gc;
mod faults;
mod fieldvalidation;
mod kinds;
mod kubectl;
mod openapi;
mod patch;
mod runtime;
mod scale;
mod selectors;
mod tekton;
mod throttle;
mod watch;
