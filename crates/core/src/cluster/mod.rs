//! What the controller writes to the API server, built as plain data: JSON patches of
//! our own labels, annotations and finalizer on TaskRuns ([`patches`]), and the Secrets
//! a TaskRun mounts ([`secrets`]). The shell only sends them.

pub mod patches;
pub mod secrets;
