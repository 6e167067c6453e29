//! Deadlines of the core: when to look at a TaskRun again.

use std::collections::BTreeSet;

use crate::allocation::TaskRunKey;

/// A set of (due time, TaskRun) entries. Entries are never removed early: a TaskRun
/// whose deadline moved keeps a stale entry, which the core ignores when it fires
/// (the TaskRun's own `timer` field is the truth). That keeps every operation O(log n).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    due: BTreeSet<(i64, TaskRunKey)>,
}

impl Timers {
    /// Adds an entry due at `at` (unix ms).
    pub fn insert(&mut self, at: i64, key: TaskRunKey) {
        self.due.insert((at, key));
    }

    /// The earliest due time.
    pub fn next(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub fn pop_due(&mut self, now: i64) -> Option<TaskRunKey> {
        if self.next()? > now {
            return None;
        }
        self.due.pop_first().map(|(_, key)| key)
    }
}
