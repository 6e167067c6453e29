//! The command line of `multi-platform-controller doctor`.

use clap::{Args, ValueEnum};

use mpc_core::naming::DEFAULT_CONTROLLER_NAMESPACE;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// A table with a problem line per failing check.
    #[default]
    Table,
    /// The whole report as one JSON document.
    Json,
}

/// Arguments of `doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Namespace of the controller: host-config, the admin-key Secrets and the
    /// remembered host keys live there.
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_CONTROLLER_NAMESPACE)]
    pub namespace: String,
    /// Check only this host (repeatable); default: every host in host-config.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Seconds each host's checks may take (API requests get the same limit); hosts are
    /// checked at once, and the throwaway user is removed even after the limit.
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}
