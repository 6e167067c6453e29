//! The Kubernetes side of the controller: what it writes to the API server.
//!
//! `patches` and `secrets` build the objects as plain data (tested without a cluster);
//! the I/O that sends them lives next to the controller loop.

pub mod patches;
pub mod secrets;
