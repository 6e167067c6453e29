//! Leader election on a coordination.k8s.io/v1 Lease, so two replicas never allocate
//! at once.
//!
//! The protocol is client-go's: every replica reads the Lease; the holder renews it, a
//! free Lease is taken at once, and a held one is taken over only after its record
//! stayed unchanged for the holder's lease duration *as measured by the replica's own
//! clock* (so clock skew between replicas does not matter). Every write is an update
//! carrying the `resourceVersion` just read, so of two replicas racing for the Lease
//! exactly one wins.
//!
//! The leader also keeps a local guard: it counts itself leader only until its last
//! successful renewal (measured from the moment the request was sent) is a lease
//! duration old, less one retry period. Since any other replica observes that renewal
//! later than it was sent, and waits a whole lease duration after observing it, a
//! leader cut off from the API always stops acting before another can take over —
//! however long its requests hang.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use mpc_core::naming::LEASE_NAME;

/// How long a release on shutdown may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How this instance takes part in leader election.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// This instance's identity (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal: a dead leader is replaced after this.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
    pub renew_grace: Duration,
}

impl LeaderElection {
    /// Defaults: 15 s leases renewed 5 s before they expire.
    pub fn new(identity: impl Into<String>) -> Self {
        LeaderElection {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_grace: Duration::from_secs(5),
        }
    }
}

/// The periods of the election, derived from [`LeaderElection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The lease duration written to the Lease (whole seconds, rounded up).
    pub lease_duration: Duration,
    /// Time between a successful renewal and the next.
    pub renew_every: Duration,
    /// Time between attempts while not leading, or after a failed renewal.
    pub retry: Duration,
    /// How long after sending a successful renewal the leader may act.
    pub valid_for: Duration,
    /// Longest wait for one API request.
    pub request_timeout: Duration,
}

impl Timing {
    /// The periods for `election`; a grace not shorter than the lease, or shorter
    /// than 200 ms, is taken as a third of the lease.
    pub fn of(election: &LeaderElection) -> Timing {
        let seconds = election.lease_duration.as_secs_f64().ceil().max(1.0);
        let lease_duration = Duration::from_secs_f64(seconds);
        let grace = election.renew_grace;
        let grace = if grace < Duration::from_millis(200) || grace >= lease_duration {
            lease_duration / 3
        } else {
            grace
        };
        let retry = (grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
        Timing {
            lease_duration,
            renew_every: lease_duration - grace,
            retry,
            valid_for: lease_duration - retry,
            request_timeout: grace.max(Duration::from_secs(1)),
        }
    }
}

/// What a replica does with the Lease it just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It holds the Lease: renew it.
    Renew,
    /// The Lease is free, or its holder let it lapse: take it.
    Acquire,
    /// Another replica holds it.
    Wait,
}

/// Decides the [`Step`] for `me`, given the Lease's holder, its lease duration, and
/// how long this replica has seen its record unchanged.
pub fn decide(
    me: &str,
    holder: Option<&str>,
    holder_duration: Duration,
    unchanged_for: Duration,
) -> Step {
    match holder {
        Some(h) if h == me => Step::Renew,
        None => Step::Acquire,
        Some(_) if unchanged_for >= holder_duration => Step::Acquire,
        Some(_) => Step::Wait,
    }
}

/// The parts of a Lease the election reads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration: Option<Duration>,
    transitions: i32,
    /// Changes with every write: a renewal shows up here even if nothing else changed.
    version: String,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            transitions: spec.lease_transitions.unwrap_or(0),
            version: lease.resource_version().unwrap_or_default(),
        }
    }
}

/// A running election: tells when this instance becomes or stops being leader.
pub struct Leadership {
    changes: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Why this instance could not join the leader election.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The Lease could not be read: RBAC, a wrong namespace, an API server error.
    #[error(
        "cannot read Lease {namespace}/{LEASE_NAME}; check the controller's Role grants get on leases there"
    )]
    Read {
        /// The controller's namespace.
        namespace: String,
        /// What the API server answered.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("reading Lease {namespace}/{LEASE_NAME} timed out; is the API server reachable?")]
    Timeout {
        /// The controller's namespace.
        namespace: String,
    },
}

impl Leadership {
    /// Joins the election (the Lease is created when it does not exist).
    pub async fn start(
        client: Client,
        namespace: &str,
        election: &LeaderElection,
    ) -> Result<Self, ElectionError> {
        let api = Api::<Lease>::namespaced(client, namespace);
        let timing = Timing::of(election);
        // Fail early when the Lease cannot even be read (RBAC, wrong namespace).
        match tokio::time::timeout(timing.request_timeout, api.get_opt(LEASE_NAME)).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(ElectionError::Read {
                    namespace: namespace.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(ElectionError::Timeout {
                    namespace: namespace.to_owned(),
                });
            }
        }
        let (tx, changes) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let state = Campaign {
            api,
            me: election.identity.clone(),
            timing,
            seen: None,
        };
        let guard = Guard {
            valid_until: None,
            tx,
        };
        let task = tokio::spawn(campaign(state, guard, stopped));
        info!(identity = %election.identity, lease = LEASE_NAME, "joined leader election");
        Ok(Leadership {
            changes,
            stop: Some(stop),
            task,
        })
    }

    /// Waits for the next change and returns whether this instance is now leader.
    pub async fn changed(&mut self) -> bool {
        match self.changes.changed().await {
            Ok(()) => *self.changes.borrow_and_update(),
            Err(_) => {
                // The election task ended: act as a standby, never as a leader without
                // a lease.
                warn!("leader election stopped; standing by");
                std::future::pending::<()>().await;
                false
            }
        }
    }

    /// Leaves the election, releasing the Lease if held, so a standby takes over at once.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            warn!(error = %e, "leader election task failed");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The election's view of the Lease.
struct Campaign {
    api: Api<Lease>,
    me: String,
    timing: Timing,
    /// The record last read and when this replica first saw it.
    seen: Option<(Record, Instant)>,
}

/// The local guard: whether, and until when, this replica may act as leader.
struct Guard {
    /// Until when this replica may act as leader (see the module docs).
    valid_until: Option<Instant>,
    tx: watch::Sender<bool>,
}

impl Guard {
    /// The last renewal is too old: stop acting before anyone else may start.
    fn lapse(&mut self) {
        self.valid_until = None;
        if *self.tx.borrow() {
            warn!("could not renew the Lease in time; stepping down");
        }
        self.publish();
    }

    fn set(&mut self, valid_until: Option<Instant>) {
        self.valid_until = valid_until;
        self.publish();
    }

    fn publish(&self) {
        let leading = self.valid_until.is_some_and(|t| Instant::now() < t);
        self.tx.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
    }
}

/// How one round ended.
enum Round {
    /// This replica holds the Lease (renewed or just acquired).
    Held,
    /// Another replica holds it, or won the race for it.
    NotHeld,
}

/// Waits until `at`, or forever when there is no such moment.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Takes part in the election until `stopped`, then releases the Lease if held.
async fn campaign(mut campaign: Campaign, mut guard: Guard, mut stopped: oneshot::Receiver<()>) {
    let timing = campaign.timing;
    'campaign: loop {
        let sent = Instant::now();
        let outcome = {
            let attempt = tokio::time::timeout(timing.request_timeout, campaign.round(sent));
            tokio::pin!(attempt);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break 'campaign,
                    () = until(guard.valid_until) => guard.lapse(),
                    outcome = &mut attempt => break outcome,
                }
            }
        };
        let renewed = match outcome {
            Ok(Ok(Round::Held)) => {
                guard.set(Some(sent + timing.valid_for));
                true
            }
            Ok(Ok(Round::NotHeld)) => {
                guard.set(None);
                false
            }
            Ok(Err(e)) => {
                warn!(error = %e, leading = guard.valid_until.is_some(),
                      "leader election: Lease request failed; retrying");
                false
            }
            Err(_) => {
                warn!(
                    leading = guard.valid_until.is_some(),
                    "leader election: Lease request timed out; retrying"
                );
                false
            }
        };
        let next = if renewed {
            sent + timing.renew_every
        } else {
            Instant::now() + timing.retry
        };
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break 'campaign,
                () = until(guard.valid_until) => guard.lapse(),
                () = tokio::time::sleep_until(next) => break,
            }
        }
    }
    let held = guard.valid_until.is_some();
    guard.set(None);
    if held {
        match tokio::time::timeout(RELEASE_TIMEOUT, campaign.release()).await {
            Ok(Ok(())) => info!("Lease released"),
            Ok(Err(e)) => warn!(error = %e, "could not release the Lease; it expires on its own"),
            Err(_) => warn!("releasing the Lease timed out; it expires on its own"),
        }
    }
}

impl Campaign {
    /// Reads the Lease and renews, takes or leaves it.
    async fn round(&mut self, now: Instant) -> Result<Round, kube::Error> {
        let Some(lease) = self.api.get_opt(LEASE_NAME).await? else {
            return self.create().await;
        };
        let record = Record::of(&lease);
        let since = match &self.seen {
            Some((seen, since)) if *seen == record => *since,
            _ => now,
        };
        self.seen = Some((record.clone(), since));
        let step = decide(
            &self.me,
            record.holder.as_deref(),
            record.duration.unwrap_or(self.timing.lease_duration),
            now.saturating_duration_since(since),
        );
        let stamp = Some(MicroTime(Timestamp::now()));
        let mut spec = lease.spec.clone().unwrap_or_default();
        match step {
            Step::Wait => return Ok(Round::NotHeld),
            Step::Renew => spec.renew_time = stamp,
            Step::Acquire => {
                info!(identity = %self.me, previous = record.holder.as_deref().unwrap_or("-"),
                      "taking the Lease");
                spec.holder_identity = Some(self.me.clone());
                spec.acquire_time = stamp.clone();
                spec.renew_time = stamp;
                spec.lease_transitions = Some(record.transitions + 1);
            }
        }
        spec.lease_duration_seconds = Some(lease_seconds(self.timing.lease_duration));
        let mut updated = lease;
        updated.spec = Some(spec);
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(Round::Held),
            Err(kube::Error::Api(s)) if s.is_conflict() => {
                debug!("the Lease changed meanwhile; another replica got there first");
                Ok(Round::NotHeld)
            }
            Err(e) => Err(e),
        }
    }

    async fn create(&mut self) -> Result<Round, kube::Error> {
        let now = Some(MicroTime(Timestamp::now()));
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.me.clone()),
                lease_duration_seconds: Some(lease_seconds(self.timing.lease_duration)),
                acquire_time: now.clone(),
                renew_time: now,
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                info!(identity = %self.me, "created and took the Lease");
                Ok(Round::Held)
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                Ok(Round::NotHeld)
            }
            Err(e) => Err(e),
        }
    }

    /// Clears the holder if it is still this replica, so a standby takes over at its
    /// next look instead of after the lease duration.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        if Record::of(&lease).holder.as_deref() != Some(self.me.as_str()) {
            return Ok(());
        }
        let mut updated = lease;
        let mut spec = updated.spec.clone().unwrap_or_default();
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        updated.spec = Some(spec);
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &updated)
            .await
            .map(drop)
    }
}

/// A Lease duration as the Lease writes it (whole seconds, at most `i32::MAX`).
fn lease_seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn election(lease: u64, grace: u64) -> LeaderElection {
        LeaderElection {
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_grace: Duration::from_secs(grace),
        }
    }

    #[test]
    fn defaults_renew_well_before_the_guard_stops_the_leader() {
        let t = Timing::of(&LeaderElection::new("me"));
        assert_eq!(t.lease_duration, Duration::from_secs(15));
        assert_eq!(t.renew_every, Duration::from_secs(10));
        assert_eq!(t.retry, Duration::from_millis(1250));
        assert_eq!(t.valid_for, Duration::from_millis(13750));
        // Renewal, then retries, all before the leader's own deadline.
        assert!(t.renew_every + 2 * t.retry < t.valid_for);
    }

    #[test]
    fn a_grace_as_long_as_the_lease_is_taken_as_a_third() {
        let t = Timing::of(&election(6, 6));
        assert_eq!(t.renew_every, Duration::from_secs(4));
        let t = Timing::of(&election(6, 0));
        assert_eq!(t.renew_every, Duration::from_secs(4));
    }

    #[test]
    fn decisions() {
        let d = Duration::from_secs(15);
        assert_eq!(decide("me", Some("me"), d, Duration::ZERO), Step::Renew);
        assert_eq!(decide("me", None, d, Duration::ZERO), Step::Acquire);
        assert_eq!(
            decide("me", Some("other"), d, Duration::from_secs(14)),
            Step::Wait
        );
        assert_eq!(decide("me", Some("other"), d, d), Step::Acquire);
    }

    proptest! {
        /// The leader renews, and can retry at least once, before its guard stops it.
        #[test]
        fn renewals_come_before_the_guard(lease_ms in 0u64..600_000, grace_ms in 0u64..600_000) {
            let t = Timing::of(&LeaderElection {
                identity: "me".into(),
                lease_duration: Duration::from_millis(lease_ms),
                renew_grace: Duration::from_millis(grace_ms),
            });
            prop_assert!(t.renew_every + t.retry < t.valid_for, "{t:?}");
            prop_assert!(t.valid_for < t.lease_duration);
        }

        /// A leader sends renewals (each reaching the API server `delay` later, or
        /// failing); a standby polls every `poll` and takes over once it has seen the
        /// same record for a lease duration. A renewal landing after the takeover
        /// fails on the resourceVersion, so it does not count. The standby never takes
        /// over while the old leader's guard lets it act.
        #[test]
        fn a_standby_never_takes_over_while_the_old_leader_may_act(
            lease in 1u64..60,
            grace_permille in 1u64..1000,
            outcomes in proptest::collection::vec((any::<bool>(), 0u64..3000), 1..40),
            poll_ms in 50u64..3000,
        ) {
            let e = LeaderElection {
                identity: "leader".into(),
                lease_duration: Duration::from_secs(lease),
                renew_grace: Duration::from_millis(lease * grace_permille),
            };
            let t = Timing::of(&e);
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
            // (sent, landed) of every renewal the server accepted.
            let mut now = 0u64;
            let mut writes = Vec::new();
            for (ok, delay) in &outcomes {
                if *ok {
                    writes.push((now, now + (*delay).min(ms(t.request_timeout))));
                    now += ms(t.renew_every);
                } else {
                    now += ms(t.retry);
                }
            }
            prop_assume!(!writes.is_empty());
            let mut seen_version = None;
            let mut since = 0u64;
            let mut at = 0u64;
            loop {
                let version = writes.iter().filter(|(_, landed)| *landed <= at).count();
                if seen_version != Some(version) {
                    seen_version = Some(version);
                    since = at;
                }
                let unchanged = Duration::from_millis(at - since);
                if version > 0
                    && decide("standby", Some("leader"), t.lease_duration, unchanged) == Step::Acquire
                {
                    let valid_until = writes
                        .iter()
                        .filter(|(_, landed)| *landed <= at)
                        .map(|(sent, _)| sent + ms(t.valid_for))
                        .max()
                        .unwrap_or(0);
                    prop_assert!(
                        at >= valid_until,
                        "standby took over at {at} ms, leader valid until {valid_until} ms"
                    );
                    break;
                }
                at += poll_ms;
            }
        }
    }
}
