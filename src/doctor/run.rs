//! The command: read the cluster, probe the hosts at once, decide, print.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use super::args::{DoctorArgs, OutputFormat};
use super::cluster::{self, Fatal};
use super::facts::{AdminKeyFact, HostFacts, Observation};
use super::known_hosts::{SnapshotKnownHosts, parse_entries, remembered_key};
use super::probe::probe_host;
use super::report::Report;
use super::{table, verdict};
use crate::remote::{self, AdminKey, SshPool};
use mpc_core::config::{self, Host, HostKeyChecking, PoolConfig};

/// Exit status when doctor cannot run (usage, API server, no host-config).
pub const EXIT_CANNOT_RUN: u8 = 2;

/// Runs doctor: prints the report (or why it cannot run, on stderr) and returns the
/// exit status: 0 all fine, 1 a problem, [`EXIT_CANNOT_RUN`] cannot check.
pub async fn run(args: &DoctorArgs) -> u8 {
    match observe(args).await {
        Ok(observation) => {
            let report = verdict::report(&observation);
            print!("{}", render(&report, args.output));
            report.exit_code()
        }
        Err(fatal) => {
            eprintln!("doctor: {fatal}");
            EXIT_CANNOT_RUN
        }
    }
}

/// The report in `format`.
pub fn render(report: &Report, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => table::render(report),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
                serde_json::json!({ "error": format!("cannot encode the report: {e}") }).to_string()
            });
            json.push('\n');
            json
        }
    }
}

/// Which hosts `--host` selects; `None` for all. Unknown names are a usage error.
pub fn select(config: &PoolConfig, wanted: &[String]) -> Result<Option<BTreeSet<String>>, Fatal> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let known: BTreeSet<String> = config
        .hosts
        .keys()
        .map(|n| n.as_str().to_owned())
        .chain(config.excluded_hosts.iter().map(|h| h.name.clone()))
        .collect();
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !known.contains(*w))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        return Err(Fatal::UnknownHost {
            unknown: unknown.join(", "),
            known: if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(Some(wanted.iter().cloned().collect()))
}

/// Reads the cluster and probes the (selected) hosts, all hosts at once.
pub async fn observe(args: &DoctorArgs) -> Result<Observation, Fatal> {
    let timeout = Duration::from_secs(args.timeout);
    let namespace = args.namespace.as_str();
    let client = cluster::client(timeout).await?;
    let host_config = cluster::host_config(&client, namespace).await?;
    let config = config::parse(&host_config.data);
    let selected = select(&config, &args.hosts)?;
    let hosts: Vec<&Host> = config
        .hosts
        .values()
        .filter(|h| {
            selected
                .as_ref()
                .is_none_or(|s| s.contains(h.name.as_str()))
        })
        .collect();

    let secret_names: BTreeSet<&str> = hosts.iter().map(|h| h.secret.as_str()).collect();
    let read_keys = join_all(secret_names.into_iter().map(|name| {
        let client = &client;
        async move { (name, cluster::admin_key(client, namespace, name).await) }
    }));
    let (keys, known_hosts, slots_used) = tokio::join!(
        read_keys,
        cluster::known_hosts(&client, namespace),
        cluster::slots_used(&client),
    );
    let keys: BTreeMap<&str, (AdminKeyFact, Option<AdminKey>)> = keys.into_iter().collect();
    let (entries, known_hosts_error) = match known_hosts {
        Ok(data) => (parse_entries(&data), None),
        Err(why) => (BTreeMap::new(), Some(why)),
    };
    // With checking off the controller compares nothing, and neither does doctor.
    let store = Arc::new(
        if config.settings.host_key_checking == HostKeyChecking::AcceptNew {
            SnapshotKnownHosts::new(&entries)
        } else {
            SnapshotKnownHosts::default()
        },
    );

    let pool = SshPool::new(remote::SshSettings {
        connect_timeout: timeout,
        command_timeout: timeout,
        ..remote::SshSettings::default()
    });
    let probes = hosts.iter().map(|host| {
        let (pool, store, keys, entries) = (&pool, &store, &keys, &entries);
        async move {
            let (admin_key, key) = keys
                .get(host.secret.as_str())
                .cloned()
                .unwrap_or_else(|| (AdminKeyFact::SecretMissing, None));
            let (contact, user_test) =
                probe_host(pool, store, host, key.as_ref(), namespace, timeout).await;
            let facts = HostFacts {
                admin_key,
                remembered_key: remembered_key(entries, host.name.as_str()),
                contact,
                user_test,
            };
            (host.name.as_str().to_owned(), facts)
        }
    });
    let probed: BTreeMap<String, HostFacts> = join_all(probes).await.into_iter().collect();

    Ok(Observation {
        namespace: namespace.to_owned(),
        config_labelled: host_config.labelled,
        config,
        selected,
        known_hosts_error: known_hosts_error.map(|e| e.to_string()),
        slots_used: slots_used.map_err(|e| e.to_string()),
        hosts: probed,
    })
}
