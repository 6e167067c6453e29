//! The Kubernetes side of the controller: what it writes to the API server.
//!
//! `patches` and `secrets` build the objects as plain data (tested without a cluster);
//! `io` sends them.

pub mod io;
pub mod patches;
pub mod secrets;
