//! `multi-platform-controller doctor`: checks, with the controller's own configuration
//! and credentials, that every build host can serve builds, and says what to fix.
//!
//! For each host of the `host-config` ConfigMap: reachable (round trip), host key
//! (pinned, remembered or new, never written), admin login with root or passwordless
//! sudo and the provisioning tools, sshd honouring `expiry-time` (a throwaway user gets
//! an expired key, which must be refused, then a valid one, which must work, and is
//! removed), and slots used against the concurrency.
//!
//! Functional core, imperative shell:
//! - [`facts`]: what was observed, as plain data;
//! - [`verdict`]: facts → [`Report`] (pure);
//! - [`table`]: the report as text (pure); JSON is the report serialized;
//! - [`cluster`], [`probe`]: the Kubernetes and SSH shells;
//! - [`known_hosts`]: the remembered host keys, read-only;
//! - [`mod@run`]: the command: observe, decide, print, exit status.

pub mod args;
pub mod cluster;
pub mod facts;
pub mod known_hosts;
pub mod probe;
pub mod report;
pub mod run;
pub mod table;
pub mod verdict;

pub use args::{DoctorArgs, OutputFormat};
pub use report::Report;
pub use run::run;

#[cfg(test)]
mod tests;
