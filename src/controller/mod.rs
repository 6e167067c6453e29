//! The controller: pure decisions in [`mpc_core::machine`], the Kubernetes and SSH shells around it.
//!
//! - [`mpc_core::machine`]: the allocation lifecycle as a state machine (no I/O).
//! - [`runner`]: the event loop — watches in, commands out, reports back.
//! - [`executor`]: carries out one command against Kubernetes and a host.
//! - [`probing`]: host probes and the reaper of leftover build users.
//! - [`targets`], [`known_hosts`]: admin keys and host-key checking.
//! - [`leader`]: leader election on a Lease.

mod cloud_watch;
pub mod executor;
pub mod known_hosts;
pub mod leader;
pub mod probing;
pub mod runner;
pub mod targets;
mod vm;

pub use runner::{RunSettings, run};
