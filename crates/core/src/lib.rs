//! The multi-platform-controller's decisions, as pure functions over plain data.
//!
//! Nothing in this crate performs I/O, awaits, or reads a clock: the Kubernetes and SSH
//! shells (the `multi-platform-controller` crate) observe the world, hand what they saw
//! to these functions, and carry out what they answer. The behaviour they implement is
//! written down in `docs/contract.md`; comments cite it as `contract §N`.
//!
//! - [`platform`], [`naming`]: the platform format and every name the contract fixes;
//! - [`taskrun`]: what we read from a Tekton TaskRun (is it ours, finished, which
//!   platform, which of our marks it carries);
//! - [`config`]: host-config as typed pool configuration, with a problem per bad entry;
//! - [`allocation`]: the slot ledger and FIFO queues of static host pools;
//! - [`machine`]: the allocation lifecycle of every TaskRun as a state machine that takes
//!   observations and reports and gives work for the shells;
//! - [`cluster`]: the patches and Secrets written to the API server;
//! - [`host_work`]: the fixed scripts run on build hosts and how their answers are read;
//! - [`time`]: instants and the clock-free arithmetic the machine does on them.

pub mod allocation;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod host_work;
pub mod machine;
pub mod naming;
pub mod platform;
pub mod taskrun;
pub mod time;

#[cfg(test)]
mod test_keys;
