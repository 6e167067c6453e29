//! What runs on a build host, as plain data: the validated provisioning request
//! ([`request`]), the fixed remote scripts and their exact command lines ([`script`]),
//! and how their answers are read ([`report`]). The SSH shell runs them.

pub mod report;
pub mod request;
pub mod script;
