//! The controller: pure decisions in [`core`], the Kubernetes and SSH shells around it.

pub mod core;
