//! The FIFO of TaskRuns waiting for a platform's hosts.
//!
//! Order: oldest creationTimestamp first, equal timestamps by namespace, then name.
//! Waiters are grouped by their failed-hosts set, because a freed slot goes to the
//! oldest waiter that *may* use it: within a group every waiter may use the same
//! hosts, so only the group heads need looking at. Nearly every waiter has an empty
//! set, so there are very few groups.

use std::collections::{BTreeMap, BTreeSet};

use super::TaskRunKey;
use super::rank::RankSet;
use crate::config::HostName;
use crate::time::Timestamp;

/// A waiter's place in the FIFO.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueueKey {
    /// creationTimestamp.
    pub created: Timestamp,
    /// Namespace, then name, break ties.
    pub taskrun: TaskRunKey,
}

/// The waiters of one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WaitQueue {
    /// Waiters by failed-hosts set, each group in FIFO order.
    groups: BTreeMap<BTreeSet<HostName>, BTreeSet<QueueKey>>,
    /// All waiters in FIFO order, for positions.
    order: RankSet<QueueKey>,
}

impl WaitQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.order.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Adds a waiter; returns how many waiters are before it. O(log n).
    pub(crate) fn push(&mut self, key: QueueKey, failed: &BTreeSet<HostName>) -> usize {
        let ahead = match self.order.insert(key.clone()) {
            Some(position) => position,
            None => self.order.rank(&key),
        };
        match self.groups.get_mut(failed) {
            Some(group) => {
                group.insert(key);
            }
            None => {
                self.groups.insert(failed.clone(), BTreeSet::from([key]));
            }
        }
        ahead
    }

    /// Removes a waiter. O(log n).
    pub(crate) fn remove(&mut self, key: &QueueKey, failed: &BTreeSet<HostName>) -> bool {
        let removed = self.order.remove(key);
        if let Some(group) = self.groups.get_mut(failed) {
            group.remove(key);
            if group.is_empty() {
                self.groups.remove(failed);
            }
        }
        removed
    }

    /// How many waiters are before `key`. O(log n).
    pub(crate) fn ahead(&self, key: &QueueKey) -> usize {
        self.order.rank(key)
    }

    /// The oldest waiter of each failed-hosts group.
    pub(crate) fn heads(&self) -> impl Iterator<Item = (&QueueKey, &BTreeSet<HostName>)> {
        self.groups
            .iter()
            .filter_map(|(failed, group)| group.first().map(|head| (head, failed)))
    }

    /// Every group: its failed-hosts set and its waiters.
    pub(crate) fn groups(
        &self,
    ) -> impl Iterator<Item = (&BTreeSet<HostName>, &BTreeSet<QueueKey>)> {
        self.groups.iter()
    }

    /// All waiters in FIFO order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &QueueKey> {
        self.order.iter()
    }
}
