//! Writes by the server's own controllers (garbage collector, namespace and CRD cleanup),
//! and the mapping of served versions onto their storage rows.

use std::sync::Arc;

use serde_json::Value;

use super::rules::{GC_MANAGER, drained};
use super::write::{DeleteOptions, WriteOptions};
use super::{NAMESPACE_FINALIZER, ObjKey, State, Stored};
use crate::error::{ApiError, ApiResult};
use crate::resources::{GroupResource, ResourceInfo};

impl State {
    /// An internal write by a controller of the server (garbage collector, namespace
    /// controller): read-modify-write without preconditions.
    pub(super) fn internal_update(
        &mut self,
        gr: &GroupResource,
        key: &ObjKey,
        manager: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Option<Arc<Stored>> {
        let current = self.get(gr, key)?;
        let info = self.info_for(gr)?;
        let mut new = current.value.clone();
        edit(&mut new);
        self.finish_update(
            &info,
            key,
            &current,
            new,
            false,
            &WriteOptions::manager(manager),
            None,
        )
        .ok()
    }

    /// Clears the namespace controller's finalizer from `spec.finalizers` (what `/finalize`
    /// does on a real cluster) and removes the namespace when nothing else holds it.
    pub(super) fn internal_finalize_namespace(&mut self, name: &str) -> Option<Arc<Stored>> {
        let gr = GroupResource::new("", "namespaces");
        let key = (String::new(), name.to_string());
        let current = self.get(&gr, &key)?;
        let mut new = current.value.clone();
        if let Some(f) = new
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| x != NAMESPACE_FINALIZER);
        }
        if drained(&new) {
            return Some(self.commit(&gr, &key, None, Some(new)));
        }
        Some(self.commit(&gr, &key, Some(new), None))
    }

    /// The row objects of `info` are stored under (itself, unless it converts).
    pub(super) fn storage_row(&self, info: &ResourceInfo) -> ApiResult<Arc<ResourceInfo>> {
        let row = match info.conversion {
            crate::resources::Conversion::None => {
                self.table.get(&info.group, &info.version, &info.plural)
            }
            _ => self.info_for(&info.storage_resource()),
        };
        row.ok_or_else(|| ApiError::not_found(&info.group, &info.plural, ""))
    }

    /// Checks a written object against the served version and turns it into its storage
    /// form, with the row to store it under.
    pub(super) fn storage_view(
        &self,
        info: &ResourceInfo,
        body: Value,
    ) -> ApiResult<(Arc<ResourceInfo>, Value)> {
        let row = self.storage_row(info)?;
        if info.conversion == crate::resources::Conversion::None {
            return Ok((row, body));
        }
        let served = info.api_version();
        if let Some(v) = body.get("apiVersion").and_then(Value::as_str)
            && v != served
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({served})"
            )));
        }
        Ok((row, crate::convert::to_storage(&body, info)))
    }

    /// Any served row of a group resource (internal writes do not care which version).
    pub(super) fn info_for(&self, gr: &GroupResource) -> Option<Arc<ResourceInfo>> {
        self.table.versions_of(gr).into_iter().next()
    }

    /// Deletes an object by key in the background (garbage collector).
    pub(super) fn internal_delete(&mut self, gr: &GroupResource, key: &ObjKey) {
        if let Some(info) = self.info_for(gr) {
            let ns = (!key.0.is_empty()).then_some(key.0.as_str());
            let _ = self.delete(&info, ns, &key.1, &DeleteOptions::default());
        }
    }

    /// Removes dangling owner references (garbage collector).
    pub(super) fn drop_owner_refs(&mut self, gr: &GroupResource, key: &ObjKey, gone: &[String]) {
        self.internal_update(gr, key, GC_MANAGER, |v| {
            if let Some(refs) = v
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| {
                    !r.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| gone.iter().any(|g| g == u))
                });
                if refs.is_empty()
                    && let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    m.remove("ownerReferences");
                }
            }
        });
    }

    /// Drops one finalizer (garbage collector, CRD cleanup).
    pub(super) fn drop_finalizer(
        &mut self,
        gr: &GroupResource,
        key: &ObjKey,
        finalizer: &str,
        manager: &str,
    ) {
        self.internal_update(gr, key, manager, |v| {
            if let Some(f) = v
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|x| x != finalizer);
            }
        });
    }
}
