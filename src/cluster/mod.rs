//! The Kubernetes side of the controller: what it reads from and writes to the API
//! server. The objects themselves are built as plain data in [`mpc_core::cluster`].

pub mod io;
pub mod taskrun;

pub use taskrun::TaskRunObject;
