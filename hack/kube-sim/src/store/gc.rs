//! The controllers a real cluster runs next to the API server, reduced to what the API
//! semantics need: the garbage collector (owner references, foreground and orphan
//! propagation), the namespace controller and CRD instance cleanup. They run in the
//! background, so clients see dependents disappear shortly after their owner, not at once.

use std::sync::Arc;

use serde_json::Value;

use super::{CRD_FINALIZER, FOREGROUND_FINALIZER, GcWork, ORPHAN_FINALIZER, ObjKey, State, Store};
use crate::object;
use crate::resources::GroupResource;

const GC_MANAGER: &str = "generic-garbage-collector";
const CRD_MANAGER: &str = "apiextensions-apiserver";

impl Store {
    /// Runs one queued piece of collection work. Returns false when the queue is empty.
    pub fn collect_garbage_step(&self) -> bool {
        let mut st = self.lock();
        let Some(work) = st.gc_queue.pop_front() else {
            return false;
        };
        st.run_gc(work);
        true
    }

    /// Runs the collectors until the store is dropped: wakes up after every write.
    pub async fn run_collectors(self: Arc<Self>) {
        loop {
            self.gc_wakeup.notified().await;
            // Yield between steps so a large cascade does not monopolise the runtime.
            while self.collect_garbage_step() {
                tokio::task::yield_now().await;
            }
        }
    }
}

impl State {
    fn run_gc(&mut self, work: GcWork) {
        match work {
            GcWork::OwnerGone(uid) => {
                let deps: Vec<_> = self
                    .dependents
                    .get(&uid)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default();
                for (gr, key) in deps {
                    self.check_dependent(&gr, &key);
                }
            }
            GcWork::Dependent(gr, key) => self.check_dependent(&gr, &key),
            GcWork::Namespace(ns) => self.clean_namespace(&ns),
            GcWork::Crd(name) => self.clean_crd(&name),
            GcWork::Propagate(gr, key) => self.propagate(&gr, &key),
        }
    }

    /// Deletes a dependent whose owners are all gone; drops references to missing owners
    /// when some owners remain.
    fn check_dependent(&mut self, gr: &GroupResource, key: &ObjKey) {
        let Some(obj) = self.get(gr, key) else { return };
        let refs = object::owner_refs(&obj.value);
        if refs.is_empty() {
            return;
        }
        let gone: Vec<String> = refs
            .iter()
            .filter(|r| !self.uids.contains_key(&r.uid))
            .map(|r| r.uid.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        if gone.len() == refs.len() {
            if !object::is_deleting(&obj.value) {
                self.internal_delete(gr, key);
            }
        } else {
            self.drop_owner_refs(gr, key, &gone);
        }
    }

    fn clean_namespace(&mut self, ns: &str) {
        if !self.namespace_terminating(ns) {
            return;
        }
        let mut remaining = 0usize;
        let grs: Vec<GroupResource> = self.collections.keys().cloned().collect();
        for gr in grs {
            let keys: Vec<(ObjKey, bool)> = match self.collections.get(&gr) {
                Some(c) => c
                    .objects
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((kns, _), _)| kns == ns)
                    .map(|(k, s)| (k.clone(), object::is_deleting(&s.value)))
                    .collect(),
                None => continue,
            };
            for (key, deleting) in keys {
                if !deleting {
                    self.internal_delete(&gr, &key);
                }
                if self.get(&gr, &key).is_some() {
                    remaining += 1;
                }
            }
        }
        if remaining == 0 {
            self.internal_finalize_namespace(ns);
        }
    }

    fn clean_crd(&mut self, name: &str) {
        let crd_gr = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        let crd_key = (String::new(), name.to_string());
        let Some(crd) = self.get(&crd_gr, &crd_key) else {
            return;
        };
        if !object::is_deleting(&crd.value) {
            return;
        }
        let s = |p: &str| {
            crd.value
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let gr = GroupResource::new(&s("/spec/group"), &s("/spec/names/plural"));
        let keys: Vec<(ObjKey, bool)> = self
            .collections
            .get(&gr)
            .map(|c| {
                c.objects
                    .iter()
                    .map(|(k, s)| (k.clone(), object::is_deleting(&s.value)))
                    .collect()
            })
            .unwrap_or_default();
        let mut remaining = 0usize;
        for (key, deleting) in keys {
            if !deleting {
                self.internal_delete(&gr, &key);
            }
            if self.get(&gr, &key).is_some() {
                remaining += 1;
            }
        }
        if remaining == 0 {
            self.drop_finalizer(&crd_gr, &crd_key, CRD_FINALIZER, CRD_MANAGER);
        }
    }

    /// Foreground: delete dependents, drop the owner's finalizer once no blocking dependent
    /// is left. Orphan: remove the owner reference from dependents, then the finalizer.
    fn propagate(&mut self, gr: &GroupResource, key: &ObjKey) {
        let Some(owner) = self.get(gr, key) else {
            return;
        };
        let uid = object::uid(&owner.value).to_string();
        let fins = object::finalizers(&owner.value);
        let deps: Vec<(GroupResource, ObjKey)> = self
            .dependents
            .get(&uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
            for (dgr, dkey) in &deps {
                self.drop_owner_refs(dgr, dkey, std::slice::from_ref(&uid));
            }
            self.drop_finalizer(gr, key, ORPHAN_FINALIZER, GC_MANAGER);
            return;
        }
        if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
            let mut blocking = 0usize;
            for (dgr, dkey) in &deps {
                let Some(d) = self.get(dgr, dkey) else {
                    continue;
                };
                if !object::is_deleting(&d.value) {
                    self.internal_delete(dgr, dkey);
                }
                let still = self.get(dgr, dkey);
                if still.is_some_and(|s| {
                    object::owner_refs(&s.value)
                        .iter()
                        .any(|r| r.uid == uid && r.block)
                }) {
                    blocking += 1;
                }
            }
            if blocking == 0 {
                self.drop_finalizer(gr, key, FOREGROUND_FINALIZER, GC_MANAGER);
            }
        }
    }
}
