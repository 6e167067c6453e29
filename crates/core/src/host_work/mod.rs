//! What runs on a build host, as plain data: the validated provisioning request
//! ([`request`]), the fixed remote scripts and their exact command lines ([`script`]),
//! and how their answers are read ([`report`]); the builder-key handover of Windows and
//! macOS VMs ([`handover`]). The SSH shell runs them.

pub mod handover;
pub mod report;
pub mod request;
pub mod script;
