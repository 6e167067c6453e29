//! The generic object store: one collection per group resource, a global resourceVersion,
//! a bounded event history per collection, watchers and the garbage-collection work queue.
//!
//! Every write goes through [`State::commit`], which assigns the resourceVersion, keeps the
//! uid and owner indexes, appends to the history and fans the change out to watchers while
//! the store lock is held — so watchers see changes in resourceVersion order without gaps.

mod gc;
mod internal;
mod read;
mod rules;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use crate::resources::{GroupResource, ResourceInfo, ResourceTable};
use crate::selector::{FieldSelector, LabelSelector};

pub use read::{ListOptions, ListPage, WatchOptions, WatchStart, list_metadata};
pub use write::{DeleteOptions, Propagation, WriteOptions};

/// Namespace and name of an object (namespace "" for cluster-scoped objects).
pub type ObjKey = (String, String);

/// A stored object version: the JSON value and its serialization, made once per write.
#[derive(Debug)]
pub struct Stored {
    /// The object.
    pub value: Value,
    /// `value` serialized, shared by every response and watch event that carries it.
    pub json: Bytes,
    /// Its resourceVersion.
    pub rv: u64,
}

impl Stored {
    fn new(value: Value, rv: u64) -> Arc<Self> {
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Arc::new(Stored { value, json, rv })
    }
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change of one object.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED: its last state).
    pub object: Arc<Stored>,
    /// The object before the change (for MODIFIED/DELETED).
    pub previous: Option<Arc<Stored>>,
}

/// What a watcher receives.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A change, with the event type this watcher sees (selectors can turn a MODIFIED into
    /// ADDED or DELETED).
    Change(EventType, Arc<Change>),
    /// A progress notification at this resourceVersion.
    Bookmark(u64),
    /// The bookmark that ends the initial events of a streaming list.
    InitialEventsEnd(u64),
}

struct Watcher {
    id: u64,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    tx: mpsc::Sender<WatchItem>,
}

impl Watcher {
    fn selects(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && crate::object::namespace(obj) != ns
        {
            return false;
        }
        self.labels.matches(crate::object::labels(obj)) && self.fields.matches(obj)
    }

    /// The event type this watcher sees for a change, or `None` when it concerns it not.
    fn sees(&self, c: &Change) -> Option<EventType> {
        let now = self.selects(&c.object.value);
        let before = c.previous.as_ref().is_some_and(|p| self.selects(&p.value));
        match c.kind {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => before.then_some(EventType::Deleted),
            EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
        }
    }
}

#[derive(Default)]
struct Collection {
    objects: BTreeMap<ObjKey, Arc<Stored>>,
    /// The watch cache: recent changes with the time they were made.
    history: VecDeque<(Instant, Arc<Change>)>,
    /// Highest resourceVersion no longer in `history`: watches from below it get 410 Gone.
    compacted: u64,
    watchers: Vec<Watcher>,
}

/// Work for the garbage collector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GcWork {
    /// An object with this uid was removed: look at its dependents.
    OwnerGone(String),
    /// Check whether this object's owners still exist.
    Dependent(GroupResource, ObjKey),
    /// A namespace is terminating: delete its content, then finalize it.
    Namespace(String),
    /// A CRD is being deleted: delete its objects, then drop its cleanup finalizer.
    Crd(String),
    /// An owner deleted with `Foreground` or `Orphan` propagation.
    Propagate(GroupResource, ObjKey),
}

/// The window of recent changes each resource keeps for watches that resume from a
/// resourceVersion, like the API server's watch cache: it grows while its oldest change is
/// younger than `fresh_for` (up to `max_events`) and otherwise keeps `min_events`. A watch
/// from a resourceVersion before the window gets 410 Gone; one inside it gets every change
/// since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCacheWindow {
    /// Changes always kept (the API server's lower bound: 100).
    pub min_events: usize,
    /// Changes never exceeded (the API server's upper bound: 100 × 1024).
    pub max_events: usize,
    /// How long a change stays in the window beyond `min_events` (the API server's
    /// `eventFreshDuration`: 75 s).
    pub fresh_for: Duration,
}

impl Default for WatchCacheWindow {
    fn default() -> Self {
        WatchCacheWindow {
            min_events: 100,
            max_events: 100 * 1024,
            fresh_for: Duration::from_secs(75),
        }
    }
}

impl WatchCacheWindow {
    /// A window of exactly `events` changes, whatever their age.
    pub fn events(events: usize) -> Self {
        WatchCacheWindow {
            min_events: events,
            max_events: events,
            fresh_for: Duration::ZERO,
        }
    }

    /// Whether the oldest of `len` kept changes, made at `oldest`, leaves the window.
    fn evicts(&self, len: usize, oldest: Instant, now: Instant) -> bool {
        len > self.max_events.max(1)
            || (len > self.min_events.max(1) && now.duration_since(oldest) > self.fresh_for)
    }
}

/// Store sizing.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The watch cache window of each resource.
    pub watch_cache: WatchCacheWindow,
    /// Events buffered per watcher; a watcher that falls this far behind is closed.
    pub watch_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            watch_cache: WatchCacheWindow::default(),
            watch_buffer: 65_536,
        }
    }
}

pub(crate) struct State {
    rv: u64,
    table: ResourceTable,
    collections: HashMap<GroupResource, Collection>,
    /// uid → where the object lives.
    uids: HashMap<String, (GroupResource, ObjKey)>,
    /// owner uid → dependents.
    dependents: HashMap<String, BTreeSet<(GroupResource, ObjKey)>>,
    gc_queue: VecDeque<GcWork>,
    next_watcher_id: u64,
    /// resourceVersion of the last full compaction; new collections start from it.
    compacted_floor: u64,
    /// Bumped whenever the resource table changes (CRDs), for cached documents.
    table_generation: u64,
    config: StoreConfig,
}

/// The in-memory API object store. Cheap to share behind an `Arc`.
pub struct Store {
    state: Mutex<State>,
    gc_wakeup: Notify,
}

/// The namespace cleanup finalizer kept in a namespace's `spec.finalizers`.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// The finalizer the API server puts on CRDs until their objects are gone.
pub const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Owner finalizer of `Foreground` deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Owner finalizer of `Orphan` deletion.
pub const ORPHAN_FINALIZER: &str = "orphan";

impl Store {
    /// An empty store serving the built-in resources, with the `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease` namespaces. Resource versions written before
    /// start-up count as compacted.
    pub fn new(config: StoreConfig) -> Arc<Self> {
        let store = Arc::new(Store {
            state: Mutex::new(State {
                rv: 0,
                table: ResourceTable::builtin(),
                collections: HashMap::new(),
                uids: HashMap::new(),
                dependents: HashMap::new(),
                gc_queue: VecDeque::new(),
                next_watcher_id: 0,
                compacted_floor: 0,
                table_generation: 0,
                config,
            }),
            gc_wakeup: Notify::new(),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let info = store
                .resource("", "v1", "namespaces")
                .expect("namespaces are built in");
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store
                .create(&info, None, body, &WriteOptions::manager("kube-apiserver"))
                .expect("bootstrap namespaces are valid");
        }
        store.compact();
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The served row for group/version/plural.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.lock().table.get(group, version, plural)
    }

    /// A snapshot of the resource table (for discovery).
    pub fn table(&self) -> ResourceTable {
        self.lock().table.clone()
    }

    /// Changes whenever the resource table changes (a CRD was written or deleted).
    pub fn table_generation(&self) -> u64 {
        self.lock().table_generation
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Drops the change history of every collection, like an etcd compaction: watches that
    /// resume from an earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut st = self.lock();
        let floor = st.rv;
        st.compacted_floor = floor;
        for c in st.collections.values_mut() {
            c.history.clear();
            c.compacted = floor;
        }
    }

    /// Number of objects of a group resource (all namespaces).
    pub fn count(&self, gr: &GroupResource) -> usize {
        self.lock()
            .collections
            .get(gr)
            .map_or(0, |c| c.objects.len())
    }

    /// Number of open watches.
    pub fn watcher_count(&self) -> usize {
        self.lock()
            .collections
            .values()
            .map(|c| c.watchers.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }

    /// Sends a bookmark at the current resourceVersion to one watcher. The store lock
    /// orders it after every change the watcher was sent. Returns false when the watcher
    /// is gone.
    pub fn bookmark(&self, gr: &GroupResource, watcher_id: u64) -> bool {
        let st = self.lock();
        let rv = st.rv;
        st.collections
            .get(gr)
            .and_then(|c| c.watchers.iter().find(|w| w.id == watcher_id))
            .is_some_and(|w| w.tx.try_send(WatchItem::Bookmark(rv)).is_ok())
    }

    /// Removes a watcher (its stream ended).
    pub fn unwatch(&self, gr: &GroupResource, watcher_id: u64) {
        let mut st = self.lock();
        if let Some(c) = st.collections.get_mut(gr) {
            c.watchers.retain(|w| w.id != watcher_id);
        }
    }
}

impl State {
    fn collection(&mut self, gr: &GroupResource) -> &mut Collection {
        let floor = self.compacted_floor;
        self.collections
            .entry(gr.clone())
            .or_insert_with(|| Collection {
                compacted: floor,
                ..Default::default()
            })
    }

    fn get(&self, gr: &GroupResource, key: &ObjKey) -> Option<Arc<Stored>> {
        self.collections.get(gr)?.objects.get(key).cloned()
    }

    /// Commits a new state of one object (`None` removes it) and returns the stored version.
    /// The object's `metadata.resourceVersion` is set here.
    fn commit(
        &mut self,
        gr: &GroupResource,
        key: &ObjKey,
        new: Option<Value>,
        removed_state: Option<Value>,
    ) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        let previous = self.get(gr, key);
        let (kind, mut value) = match (&previous, new) {
            (None, Some(v)) => (EventType::Added, v),
            (Some(_), Some(v)) => (EventType::Modified, v),
            (_, None) => (
                EventType::Deleted,
                removed_state
                    .or_else(|| previous.as_ref().map(|p| p.value.clone()))
                    .unwrap_or(Value::Null),
            ),
        };
        crate::object::meta_mut(&mut value)
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        let stored = Stored::new(value, rv);

        // Indexes: uid and owner → dependents.
        if let Some(p) = &previous {
            for r in crate::object::owner_refs(&p.value) {
                if let Some(set) = self.dependents.get_mut(&r.uid) {
                    set.remove(&(gr.clone(), key.clone()));
                    if set.is_empty() {
                        self.dependents.remove(&r.uid);
                    }
                }
            }
        }
        let uid = crate::object::uid(&stored.value).to_string();
        if kind == EventType::Deleted {
            self.uids.remove(&uid);
            self.gc_queue.push_back(GcWork::OwnerGone(uid));
            // An owner waiting in foreground deletion may now be free to go.
            for r in crate::object::owner_refs(&stored.value) {
                if let Some((ogr, okey)) = self.uids.get(&r.uid) {
                    self.gc_queue
                        .push_back(GcWork::Propagate(ogr.clone(), okey.clone()));
                }
            }
            let ns = &key.0;
            if !ns.is_empty() && self.namespace_terminating(ns) {
                self.gc_queue.push_back(GcWork::Namespace(ns.clone()));
            }
            if let Some(crd) = self.terminating_crd_of(gr) {
                self.gc_queue.push_back(GcWork::Crd(crd));
            }
        } else {
            self.uids.insert(uid, (gr.clone(), key.clone()));
            let refs = crate::object::owner_refs(&stored.value);
            let mut orphan_check = false;
            for r in &refs {
                self.dependents
                    .entry(r.uid.clone())
                    .or_default()
                    .insert((gr.clone(), key.clone()));
                orphan_check |= !self.uids.contains_key(&r.uid);
            }
            if orphan_check {
                self.gc_queue
                    .push_back(GcWork::Dependent(gr.clone(), key.clone()));
            }
        }

        let change = Arc::new(Change {
            rv,
            kind,
            object: stored.clone(),
            previous,
        });
        let window = self.config.watch_cache;
        let now = Instant::now();
        let coll = self.collection(gr);
        match kind {
            EventType::Deleted => {
                coll.objects.remove(key);
            }
            _ => {
                coll.objects.insert(key.clone(), stored.clone());
            }
        }
        coll.history.push_back((now, change.clone()));
        while let Some((at, _)) = coll.history.front()
            && window.evicts(coll.history.len(), *at, now)
        {
            if let Some((_, old)) = coll.history.pop_front() {
                coll.compacted = coll.compacted.max(old.rv);
            }
        }
        coll.watchers.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            match w.sees(&change) {
                // A watcher too slow to keep its buffer drained is closed, as the API
                // server does; its client resumes from its last resourceVersion.
                Some(t) => w.tx.try_send(WatchItem::Change(t, change.clone())).is_ok(),
                None => true,
            }
        });
        if gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions" {
            self.sync_crd(&stored.value, kind == EventType::Deleted);
        }
        stored
    }

    /// Serves (or stops serving) the resource a CRD defines.
    fn sync_crd(&mut self, crd: &Value, removed: bool) {
        let s = |p: &str| {
            crd.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let gr = GroupResource::new(&s("/spec/group"), &s("/spec/names/plural"));
        self.table_generation += 1;
        self.table.remove(&gr);
        if removed {
            // Dropping the collection closes its watch streams, as a real cluster does.
            self.collections.remove(&gr);
            return;
        }
        if let Ok(rows) = crate::resources::rows_from_crd(crd) {
            for r in rows {
                self.table.insert(r);
            }
        }
    }

    fn namespace_terminating(&self, ns: &str) -> bool {
        self.get(
            &GroupResource::new("", "namespaces"),
            &(String::new(), ns.to_string()),
        )
        .is_some_and(|n| crate::object::is_deleting(&n.value))
    }

    fn terminating_crd_of(&self, gr: &GroupResource) -> Option<String> {
        if gr.group.is_empty() {
            return None;
        }
        let name = format!("{}.{}", gr.resource, gr.group);
        self.get(
            &GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions"),
            &(String::new(), name.clone()),
        )
        .filter(|c| crate::object::is_deleting(&c.value))
        .map(|_| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_fresh_changes_between_its_bounds() {
        let w = WatchCacheWindow {
            min_events: 2,
            max_events: 4,
            fresh_for: Duration::from_secs(75),
        };
        let made = Instant::now();
        let later = made + Duration::from_secs(80);
        assert!(!w.evicts(2, made, later), "the minimum stays, however old");
        assert!(
            w.evicts(3, made, later),
            "beyond the minimum, stale changes go"
        );
        assert!(
            !w.evicts(4, made, made),
            "fresh changes stay up to the maximum"
        );
        assert!(w.evicts(5, made, made), "never beyond the maximum");
        let d = WatchCacheWindow::default();
        assert_eq!(
            (d.min_events, d.max_events, d.fresh_for),
            (100, 102_400, Duration::from_secs(75))
        );
    }
}
