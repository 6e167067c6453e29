//! Real sshd hosts for moto's instances: a background task watches moto's instances and
//! gives each live one a `test-hosts` host on its private (loopback) address, with the
//! image's default user authorized by the instance's key pair, and takes it away when the
//! instance ends.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::types::InstanceStateName;
use test_hosts::{ExtraAdmin, HostOptions, TestHost};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Error, admin};

/// How the hosts behave.
#[derive(Debug, Clone)]
pub struct HostsOptions {
    /// The image's default user: passwordless sudo, the key pair's key (`ec2-user`).
    pub user: String,
    /// How long after the watcher first sees an instance its host starts: the boot.
    pub boot_delay: Duration,
    /// How often moto is asked for its instances.
    pub poll_interval: Duration,
}

impl Default for HostsOptions {
    fn default() -> Self {
        HostsOptions {
            user: "ec2-user".to_owned(),
            boot_delay: Duration::ZERO,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Something the watcher did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A host for the instance listens on `address:22`.
    Started {
        /// The instance id.
        instance: String,
        /// Its private address.
        address: Ipv4Addr,
    },
    /// The instance ended; its host is gone.
    Stopped {
        /// The instance id.
        instance: String,
        /// Its private address.
        address: Ipv4Addr,
    },
    /// The instance's host could not be started (not retried).
    Failed {
        /// The instance id.
        instance: String,
        /// Why.
        reason: String,
    },
    /// The instance gets no host (not retried): no loopback address, no key pair, …
    Skipped {
        /// The instance id.
        instance: String,
        /// Why.
        reason: String,
    },
}

/// A running instance host.
#[derive(Debug)]
struct Host {
    address: Ipv4Addr,
    host: Arc<TestHost>,
}

#[derive(Debug, Default)]
struct State {
    hosts: HashMap<String, Host>,
    first_seen: HashMap<String, Instant>,
    /// Instances whose host is being started.
    starting: HashSet<String>,
    given_up: HashSet<String>,
    events: Vec<(Instant, HostEvent)>,
    polls: u64,
    last_poll_error: Option<String>,
}

impl State {
    fn record(&mut self, at: Instant, event: HostEvent) {
        self.events.push((at, event));
    }

    fn events(&self) -> Vec<HostEvent> {
        self.events.iter().map(|(_, e)| e.clone()).collect()
    }
}

/// A snapshot of what the watcher did, for [`InstanceHosts::wait_for`].
#[derive(Debug, Clone)]
pub struct HostsView {
    /// The instances that have a host, with its address.
    pub hosts: HashMap<String, Ipv4Addr>,
    /// Everything that happened, oldest first.
    pub events: Vec<HostEvent>,
    /// How many times moto was asked so far.
    pub polls: u64,
    /// The last failure to ask moto, if the last poll failed.
    pub last_poll_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the waiters of [`InstanceHosts::wait_for`] (the value stays the poll count).
    fn wake(&self) {
        self.changed.send_modify(|_| {});
    }
}

/// The watcher and its hosts; everything stops when dropped.
#[derive(Debug)]
pub struct InstanceHosts {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for InstanceHosts {
    fn drop(&mut self) {
        self.task.abort();
        // The hosts go with the state (each drop kills its namespace).
        self.shared.state().hosts.clear();
    }
}

impl InstanceHosts {
    /// Starts watching the instances of the moto that `client` talks to (directly, not
    /// through the fault proxy).
    pub fn start(client: Client, options: HostsOptions) -> InstanceHosts {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed,
        });
        let task = tokio::spawn(watch_instances(client, options, shared.clone()));
        InstanceHosts { shared, task }
    }

    /// A snapshot of the hosts and events.
    pub fn view(&self) -> HostsView {
        let state = self.shared.state();
        HostsView {
            hosts: state
                .hosts
                .iter()
                .map(|(id, h)| (id.clone(), h.address))
                .collect(),
            events: state.events(),
            polls: state.polls,
            last_poll_error: state.last_poll_error.clone(),
        }
    }

    /// Everything that happened so far.
    pub fn events(&self) -> Vec<HostEvent> {
        self.shared.state().events()
    }

    /// Everything that happened so far, each with when: a host's start when its sshd
    /// listened, its stop when sshd was stopped (for benchmarks that time the boot).
    pub fn timeline(&self) -> Vec<(Instant, HostEvent)> {
        self.shared.state().events.clone()
    }

    /// When the watcher first listed `instance` live (its boot delay starts there).
    pub fn first_seen(&self, instance: &str) -> Option<Instant> {
        self.shared.state().first_seen.get(instance).copied()
    }

    /// The host of `instance`, while it has one.
    pub fn host(&self, instance: &str) -> Option<Arc<TestHost>> {
        self.shared
            .state()
            .hosts
            .get(instance)
            .map(|h| h.host.clone())
    }

    /// Waits until `check` returns a value for the current view, at most `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&HostsView) -> Option<T>,
    ) -> Result<T, Error> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = self.view();
            if let Some(value) = check(&view) {
                return Ok(value);
            }
            let woke = tokio::time::timeout_at(deadline, changed.changed()).await;
            if woke.is_err() || self.task.is_finished() {
                let view = self.view();
                return Err(Error::Timeout {
                    what: format!(
                        "{what} (events so far: {:?}; last poll error: {:?})",
                        view.events, view.last_poll_error
                    ),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    }

    /// Waits until `instance` has a host and returns it; fails at once when its host
    /// failed or was skipped.
    pub async fn wait_for_host(
        &self,
        instance: &str,
        timeout: Duration,
    ) -> Result<Arc<TestHost>, Error> {
        let outcome = self
            .wait_for(&format!("a host for {instance}"), timeout, |view| {
                if view.hosts.contains_key(instance) {
                    return Some(Ok(()));
                }
                view.events.iter().find_map(|e| match e {
                    HostEvent::Failed {
                        instance: i,
                        reason,
                    }
                    | HostEvent::Skipped {
                        instance: i,
                        reason,
                    } if i == instance => Some(Err(reason.clone())),
                    _ => None,
                })
            })
            .await?;
        match outcome {
            Ok(()) => self.host(instance).ok_or_else(|| Error::Timeout {
                what: format!("a host for {instance} (it stopped at once)"),
                seconds: timeout.as_secs_f64(),
            }),
            Err(reason) => Err(Error::api(format!("a host for {instance}"), reason)),
        }
    }

    /// Waits until the host of `instance` was stopped.
    pub async fn wait_until_stopped(&self, instance: &str, timeout: Duration) -> Result<(), Error> {
        self.wait_for(
            &format!("the host of {instance} to stop"),
            timeout,
            |view| {
                view.events
                    .iter()
                    .any(|e| matches!(e, HostEvent::Stopped { instance: i, .. } if i == instance))
                    .then_some(())
            },
        )
        .await
    }
}

/// An instance as the watcher needs it.
struct Seen {
    id: String,
    alive: bool,
    address: Option<String>,
    key_name: Option<String>,
}

async fn list_instances(client: &Client) -> Result<Vec<Seen>, String> {
    let mut pages = client.describe_instances().into_paginator().send();
    let mut seen = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DisplayErrorContext(e).to_string())?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            let alive = matches!(
                instance.state().and_then(|s| s.name()),
                Some(InstanceStateName::Pending | InstanceStateName::Running)
            );
            seen.push(Seen {
                id: id.to_owned(),
                alive,
                address: instance.private_ip_address().map(str::to_owned),
                key_name: instance.key_name().map(str::to_owned),
            });
        }
    }
    Ok(seen)
}

async fn watch_instances(client: Client, options: HostsOptions, shared: Arc<Shared>) {
    let mut keys: HashMap<String, String> = HashMap::new();
    loop {
        match list_instances(&client).await {
            Ok(instances) => {
                shared.state().last_poll_error = None;
                stop_ended(&instances, &shared).await;
                start_new(&client, &instances, &options, &shared, &mut keys).await;
            }
            Err(e) => shared.state().last_poll_error = Some(e),
        }
        let polls = {
            let mut state = shared.state();
            state.polls += 1;
            state.polls
        };
        shared.changed.send_replace(polls);
        // The watcher's own pace, not a test's synchronisation: tests wait on events.
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// Stops the hosts of instances that ended or vanished (all at once), before any start:
/// EC2 may hand a freed address to the next instance (moto frees one only on reset). A
/// host still starting when its instance ended is stopped at the next poll.
async fn stop_ended(instances: &[Seen], shared: &Shared) {
    let alive: HashSet<&str> = instances
        .iter()
        .filter(|i| i.alive)
        .map(|i| i.id.as_str())
        .collect();
    let ended: Vec<(String, Host)> = {
        let mut state = shared.state();
        let ids: Vec<String> = state
            .hosts
            .keys()
            .filter(|id| !alive.contains(id.as_str()))
            .cloned()
            .collect();
        ids.into_iter()
            .filter_map(|id| state.hosts.remove(&id).map(|h| (id, h)))
            .collect()
    };
    let stops: Vec<_> = ended
        .into_iter()
        .map(|(instance, host)| {
            let address = host.address;
            // A test may still hold the host; stopping sshd frees the address regardless.
            let stopping = host.host.clone();
            let stop = tokio::task::spawn_blocking(move || {
                let _ = stopping.stop_sshd();
                let stopped = Instant::now();
                drop(host);
                stopped
            });
            (instance, address, stop)
        })
        .collect();
    for (instance, address, stop) in stops {
        let stopped = stop.await.unwrap_or_else(|_| Instant::now());
        shared
            .state()
            .record(stopped, HostEvent::Stopped { instance, address });
    }
}

/// Starts hosts for live instances that are due (booted) and have none yet, each on a
/// task of its own: the watcher goes on listing meanwhile, so a slow start (many at
/// once on a busy machine) does not delay noticing other instances or their boot.
async fn start_new(
    client: &Client,
    instances: &[Seen],
    options: &HostsOptions,
    shared: &Arc<Shared>,
    keys: &mut HashMap<String, String>,
) {
    let now = Instant::now();
    let mut due = Vec::new();
    for instance in instances.iter().filter(|i| i.alive) {
        let first_seen = {
            let mut state = shared.state();
            if state.hosts.contains_key(&instance.id)
                || state.starting.contains(&instance.id)
                || state.given_up.contains(&instance.id)
            {
                continue;
            }
            *state.first_seen.entry(instance.id.clone()).or_insert(now)
        };
        match plan(instance, first_seen, now, options.boot_delay) {
            Plan::Wait => {}
            Plan::Skip(reason) => give_up(shared, &instance.id, reason, false),
            Plan::Start { address, key_name } => due.push((instance.id.clone(), address, key_name)),
        }
    }
    for (instance, address, key_name) in due {
        if !keys.contains_key(&key_name) {
            match admin::public_key_of(client, &key_name).await {
                Ok(Some(key)) => {
                    keys.insert(key_name.clone(), key);
                }
                Ok(None) => {
                    let reason = format!("key pair {key_name} does not exist");
                    give_up(shared, &instance, reason, false);
                    continue;
                }
                // Asked again at the next poll.
                Err(_) => continue,
            }
        }
        let host_options = HostOptions {
            address: Some(address),
            extra_admin: Some(ExtraAdmin {
                user: options.user.clone(),
                authorized_key: keys.get(&key_name).cloned().unwrap_or_default(),
            }),
            ..HostOptions::default()
        };
        shared.state().starting.insert(instance.clone());
        tokio::spawn(start_host(
            Arc::clone(shared),
            instance,
            address,
            host_options,
        ));
    }
}

/// Starts the host of `instance` and records it (or why it failed).
async fn start_host(
    shared: Arc<Shared>,
    instance: String,
    address: Ipv4Addr,
    options: HostOptions,
) {
    let started = tokio::task::spawn_blocking(move || {
        let host = TestHost::start_with(&options);
        (host, Instant::now())
    })
    .await;
    shared.state().starting.remove(&instance);
    match started {
        Ok((Ok(host), listening)) => {
            let mut state = shared.state();
            state.hosts.insert(
                instance.clone(),
                Host {
                    address,
                    host: Arc::new(host),
                },
            );
            state.record(listening, HostEvent::Started { instance, address });
        }
        Ok((Err(e), _)) => give_up(&shared, &instance, e.to_string(), true),
        Err(e) => give_up(&shared, &instance, format!("start task: {e}"), true),
    }
    shared.wake();
}

fn give_up(shared: &Shared, instance: &str, reason: String, failed: bool) {
    let mut state = shared.state();
    state.given_up.insert(instance.to_owned());
    let instance = instance.to_owned();
    let event = if failed {
        HostEvent::Failed { instance, reason }
    } else {
        HostEvent::Skipped { instance, reason }
    };
    state.record(Instant::now(), event);
}

/// What to do about a live instance without a host.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Not yet: no address yet, or still booting.
    Wait,
    /// Never: it cannot have a host here.
    Skip(String),
    /// Start its host now.
    Start { address: Ipv4Addr, key_name: String },
}

fn plan(instance: &Seen, first_seen: Instant, now: Instant, boot_delay: Duration) -> Plan {
    let Some(address) = instance.address.as_deref() else {
        return Plan::Wait;
    };
    let address: Ipv4Addr = match address.parse() {
        Ok(a) => a,
        Err(_) => return Plan::Skip(format!("private address {address} is not IPv4")),
    };
    // Hosts live on loopback only: an instance outside the testbed's subnet (moto's
    // default VPC is 172.31.0.0/16) never gets one.
    if !address.is_loopback() || address == Ipv4Addr::LOCALHOST {
        return Plan::Skip(format!(
            "private address {address} is not a loopback address (launch into the testbed's subnet)"
        ));
    }
    let Some(key_name) = instance.key_name.clone().filter(|k| !k.is_empty()) else {
        return Plan::Skip("launched without a key pair".to_owned());
    };
    if now.duration_since(first_seen) < boot_delay {
        return Plan::Wait;
    }
    Plan::Start { address, key_name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(address: Option<&str>, key: Option<&str>) -> Seen {
        Seen {
            id: "i-1".into(),
            alive: true,
            address: address.map(str::to_owned),
            key_name: key.map(str::to_owned),
        }
    }

    #[test]
    fn only_booted_loopback_instances_with_a_key_get_a_host() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let boot = Duration::from_secs(2);
        assert_eq!(plan(&seen(None, Some("k")), t0, later, boot), Plan::Wait);
        assert_eq!(
            plan(&seen(Some("127.9.8.4"), Some("k")), t0, t0, boot),
            Plan::Wait,
            "still booting"
        );
        assert_eq!(
            plan(&seen(Some("127.9.8.4"), Some("k")), t0, later, boot),
            Plan::Start {
                address: Ipv4Addr::new(127, 9, 8, 4),
                key_name: "k".into()
            }
        );
        for address in ["172.31.0.5", "10.0.0.1", "127.0.0.1"] {
            assert!(
                matches!(
                    plan(&seen(Some(address), Some("k")), t0, later, boot),
                    Plan::Skip(_)
                ),
                "{address}"
            );
        }
        assert!(matches!(
            plan(&seen(Some("127.9.8.4"), None), t0, later, boot),
            Plan::Skip(_)
        ));
    }
}
