//! The second allocation strategy: cloud VMs, one per TaskRun, at most `max-instances`
//! per platform (contract §6).
//!
//! A dynamic platform has no hosts to rank, only a number of instances it may run. The
//! quota counts two kinds of instances against it: those of TaskRuns holding a slot
//! (from the moment the slot is given until the instance's termination is confirmed),
//! and *untracked* ones, which the cloud runs with our tags but no TaskRun we track
//! accounts for (leftovers of a crash, of a previous controller, a launch retried after
//! an ambiguous failure). Untracked instances are learnt from cloud listings; until the
//! first listing of a platform arrives, nothing is launched for it, so a new leader
//! never overshoots because of instances it has not seen yet.
//!
//! Waiters queue FIFO per platform (oldest creationTimestamp, then namespace, then
//! name), as on static pools; a freed slot goes to the oldest waiter at once.

use std::collections::{BTreeMap, BTreeSet};

use super::TaskRunKey;
use crate::platform::Platform;
use crate::time::Timestamp;

/// The answer for one TaskRun that wants an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaDecision {
    /// It may launch an instance (new or earlier slot).
    Granted,
    /// The platform is at its limit (or not listed yet): it waits; `ahead` wait before it.
    Queued {
        /// Waiters before it in the FIFO.
        ahead: usize,
    },
    /// The platform is not a dynamic platform of the current configuration.
    Unknown,
}

/// The instance slots of every dynamic platform.
#[derive(Clone, Debug, Default)]
pub struct InstanceQuota {
    platforms: BTreeMap<Platform, PlatformQuota>,
    /// Which platform each holder or waiter belongs to.
    members: BTreeMap<TaskRunKey, Platform>,
}

#[derive(Clone, Debug, Default)]
struct PlatformQuota {
    /// `max-instances`; 0 once the platform left the configuration.
    max: u32,
    holders: BTreeSet<TaskRunKey>,
    queue: BTreeSet<(Timestamp, TaskRunKey)>,
    /// Instances running for no tracked TaskRun, from the latest listing.
    untracked: usize,
    /// Whether a cloud listing has been seen: before it, nothing is granted.
    listed: bool,
}

impl PlatformQuota {
    fn free(&self) -> usize {
        if !self.listed {
            return 0;
        }
        (self.max as usize).saturating_sub(self.holders.len() + self.untracked)
    }

    /// Hands free slots to the oldest waiters.
    fn hand_out(&mut self) -> Vec<TaskRunKey> {
        let mut granted = Vec::new();
        while self.free() > 0 {
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            self.holders.insert(key.clone());
            granted.push(key);
        }
        granted
    }
}

/// What the quota knows about one instance slot of a platform, for gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// `max-instances`.
    pub max: u32,
    /// TaskRuns holding a slot.
    pub holders: usize,
    /// TaskRuns waiting.
    pub waiting: usize,
    /// Instances that run for no tracked TaskRun.
    pub untracked: usize,
}

impl InstanceQuota {
    /// Sets a platform's limit (a new or changed configuration); a platform missing from
    /// `limits` keeps its holders but takes nobody new. Returns waiters that got a slot.
    pub fn configure(&mut self, limits: &BTreeMap<Platform, u32>) -> Vec<TaskRunKey> {
        for (platform, quota) in &mut self.platforms {
            quota.max = limits.get(platform).copied().unwrap_or(0);
        }
        for (platform, max) in limits {
            self.platforms.entry(platform.clone()).or_default().max = *max;
        }
        self.platforms
            .values_mut()
            .flat_map(PlatformQuota::hand_out)
            .collect()
    }

    /// Whether `platform` is a dynamic platform of the configuration.
    pub fn serves(&self, platform: &Platform) -> bool {
        self.platforms.get(platform).is_some_and(|q| q.max > 0)
    }

    /// Asks for a slot; idempotent for a TaskRun that holds or waits already.
    pub fn request(
        &mut self,
        key: &TaskRunKey,
        platform: &Platform,
        created: Timestamp,
    ) -> QuotaDecision {
        let Some(quota) = self.platforms.get_mut(platform).filter(|q| q.max > 0) else {
            return QuotaDecision::Unknown;
        };
        if quota.holders.contains(key) {
            return QuotaDecision::Granted;
        }
        let place = (created, key.clone());
        if !quota.queue.contains(&place) {
            if quota.queue.is_empty() && quota.free() > 0 {
                quota.holders.insert(key.clone());
                self.members.insert(key.clone(), platform.clone());
                return QuotaDecision::Granted;
            }
            quota.queue.insert(place.clone());
            self.members.insert(key.clone(), platform.clone());
        }
        let ahead = quota.queue.range(..place).count();
        QuotaDecision::Queued { ahead }
    }

    /// Records a holder found at start-up (its slot was given before the restart).
    pub fn restore(&mut self, key: &TaskRunKey, platform: &Platform) {
        self.platforms
            .entry(platform.clone())
            .or_default()
            .holders
            .insert(key.clone());
        self.members.insert(key.clone(), platform.clone());
    }

    /// Frees a TaskRun's slot (its instance is terminated) or queue place. Returns
    /// waiters that got a slot.
    pub fn release(&mut self, key: &TaskRunKey) -> Vec<TaskRunKey> {
        let Some(platform) = self.members.remove(key) else {
            return Vec::new();
        };
        let Some(quota) = self.platforms.get_mut(&platform) else {
            return Vec::new();
        };
        quota.holders.remove(key);
        quota.queue.retain(|(_, k)| k != key);
        let granted = quota.hand_out();
        for k in &granted {
            self.members.insert(k.clone(), platform.clone());
        }
        granted
    }

    /// The latest cloud listing of a platform: `untracked` instances run for no tracked
    /// TaskRun. Returns waiters that got a slot.
    pub fn listed(&mut self, platform: &Platform, untracked: usize) -> Vec<TaskRunKey> {
        let quota = self.platforms.entry(platform.clone()).or_default();
        quota.listed = true;
        quota.untracked = untracked;
        quota.hand_out()
    }

    /// Whether `key` holds a slot.
    pub fn holds(&self, key: &TaskRunKey) -> bool {
        self.members
            .get(key)
            .and_then(|p| self.platforms.get(p))
            .is_some_and(|q| q.holders.contains(key))
    }

    /// The holders of a platform's slots.
    pub fn holders(&self, platform: &Platform) -> impl Iterator<Item = &TaskRunKey> + '_ {
        self.platforms
            .get(platform)
            .into_iter()
            .flat_map(|q| q.holders.iter())
    }

    /// Usage of every platform the quota knows.
    pub fn usage(&self) -> impl Iterator<Item = (&Platform, QuotaUsage)> + '_ {
        self.platforms.iter().map(|(p, q)| {
            (
                p,
                QuotaUsage {
                    max: q.max,
                    holders: q.holders.len(),
                    waiting: q.queue.len(),
                    untracked: q.untracked,
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_unix_seconds;

    fn key(n: &str) -> TaskRunKey {
        TaskRunKey::new("ns", n)
    }

    fn arm() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    fn quota(max: u32) -> InstanceQuota {
        let mut q = InstanceQuota::default();
        q.configure(&BTreeMap::from([(arm(), max)]));
        q
    }

    #[test]
    fn nothing_is_granted_before_the_first_listing() {
        let mut q = quota(2);
        let t = from_unix_seconds(1);
        assert_eq!(
            q.request(&key("a"), &arm(), t),
            QuotaDecision::Queued { ahead: 0 }
        );
        assert_eq!(q.listed(&arm(), 0), vec![key("a")]);
        assert!(q.holds(&key("a")));
    }

    #[test]
    fn untracked_instances_count_against_the_limit() {
        let mut q = quota(2);
        q.listed(&arm(), 1);
        let t = from_unix_seconds(1);
        assert_eq!(q.request(&key("a"), &arm(), t), QuotaDecision::Granted);
        assert_eq!(
            q.request(&key("b"), &arm(), t),
            QuotaDecision::Queued { ahead: 0 }
        );
        // The sweep terminated the untracked one.
        assert_eq!(q.listed(&arm(), 0), vec![key("b")]);
    }

    #[test]
    fn waiters_are_served_oldest_first_and_release_hands_over() {
        let mut q = quota(1);
        q.listed(&arm(), 0);
        assert_eq!(
            q.request(&key("run"), &arm(), from_unix_seconds(1)),
            QuotaDecision::Granted
        );
        assert_eq!(
            q.request(&key("late"), &arm(), from_unix_seconds(9)),
            QuotaDecision::Queued { ahead: 0 }
        );
        assert_eq!(
            q.request(&key("early"), &arm(), from_unix_seconds(5)),
            QuotaDecision::Queued { ahead: 0 }
        );
        assert_eq!(
            q.request(&key("late"), &arm(), from_unix_seconds(9)),
            QuotaDecision::Queued { ahead: 1 }
        );
        assert_eq!(q.release(&key("run")), vec![key("early")]);
        assert_eq!(q.release(&key("late")), Vec::<TaskRunKey>::new());
        assert_eq!(q.release(&key("early")), Vec::<TaskRunKey>::new());
        assert_eq!(q.usage().next().map(|(_, u)| u.holders), Some(0));
    }

    #[test]
    fn a_lower_limit_never_evicts_and_a_removed_platform_takes_nobody() {
        let mut q = quota(2);
        q.listed(&arm(), 0);
        let t = from_unix_seconds(1);
        q.request(&key("a"), &arm(), t);
        q.request(&key("b"), &arm(), t);
        q.configure(&BTreeMap::new());
        assert!(q.holds(&key("a")) && q.holds(&key("b")));
        assert_eq!(q.request(&key("c"), &arm(), t), QuotaDecision::Unknown);
        assert!(q.release(&key("a")).is_empty());
    }

    proptest::proptest! {
        /// Whatever happens, a grant never takes the platform past its limit (holders
        /// plus untracked instances), no waiter is left behind while a slot is free, and
        /// grants go oldest first.
        #[test]
        fn grants_respect_the_limit_and_the_fifo(ops in proptest::collection::vec((0u8..4, 0u8..8, 0u8..4), 1..120)) {
            let mut q = quota(3);
            let mut max = 3u32;
            let mut untracked = 0usize;
            for (op, n, m) in ops {
                let k = key(&format!("t{n}"));
                let granted = match op {
                    0 => {
                        let held = q.holds(&k);
                        match q.request(&k, &arm(), from_unix_seconds(i64::from(n))) {
                            QuotaDecision::Granted if !held => vec![k.clone()],
                            _ => Vec::new(),
                        }
                    }
                    1 => q.release(&k),
                    2 => {
                        untracked = usize::from(m);
                        q.listed(&arm(), untracked)
                    }
                    _ => {
                        max = u32::from(m) + 1;
                        q.configure(&BTreeMap::from([(arm(), max)]))
                    }
                };
                let usage = q.usage().next().map(|(_, u)| u).unwrap();
                if !granted.is_empty() {
                    proptest::prop_assert!(usage.holders + usage.untracked <= max as usize, "{usage:?}");
                }
                let free = (max as usize).saturating_sub(usage.holders + untracked);
                proptest::prop_assert!(usage.waiting == 0 || free == 0 || !q.platforms[&arm()].listed);
                // FIFO: every waiter is younger than (or as old as) every grant of this step.
                let oldest_waiting = q.platforms[&arm()].queue.first().map(|(t, _)| *t);
                for g in &granted {
                    let created = from_unix_seconds(g.name[1..].parse::<i64>().unwrap());
                    proptest::prop_assert!(oldest_waiting.is_none_or(|w| created <= w));
                }
            }
        }
    }

    #[test]
    fn restored_holders_count_before_anything_is_granted() {
        let mut q = quota(1);
        q.restore(&key("old"), &arm());
        q.listed(&arm(), 0);
        assert_eq!(
            q.request(&key("new"), &arm(), from_unix_seconds(1)),
            QuotaDecision::Queued { ahead: 0 }
        );
        assert_eq!(q.release(&key("old")), vec![key("new")]);
    }
}
