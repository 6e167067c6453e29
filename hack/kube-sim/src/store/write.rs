//! Writes: create, update (main and status), patch (all four kinds) and delete.

use std::sync::Arc;

use serde_json::{Value, json};

use super::rules::{
    create_defaults, drained, is_crd, is_namespace, key_for, normalize_write, scope_of,
    set_or_remove, spec_part, validate_meta,
};
use super::{FOREGROUND_FINALIZER, GcWork, ORPHAN_FINALIZER, ObjKey, State, Store, Stored};
use crate::error::{ApiError, ApiResult, Reason};
use crate::fieldcheck::{FieldCheck, WriteVerb};
use crate::managed::{self, ManagedEntry};
use crate::object::{self, meta, meta_mut};
use crate::patch::{self, PatchKind};
use crate::resources::{GroupResource, ResourceInfo};

/// Who writes and how.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Field manager (`fieldManager`, or derived from the User-Agent).
    pub manager: String,
    /// `dryRun=All`: validate and compute, but keep nothing.
    pub dry_run: bool,
    /// `force=true` for server-side apply.
    pub force: bool,
    /// Field validation (`fieldValidation`) and its warnings.
    pub fields: FieldCheck,
    /// Which verb writes (the API server words field validation errors per verb).
    pub verb: WriteVerb,
}

impl WriteOptions {
    /// Options with just a field manager.
    pub fn manager(manager: &str) -> Self {
        WriteOptions {
            manager: manager.to_string(),
            ..Default::default()
        }
    }
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete the owner now, dependents in the background (the default).
    #[default]
    Background,
    /// Delete dependents first, then the owner.
    Foreground,
    /// Delete the owner and leave dependents without the owner reference.
    Orphan,
}

/// `DeleteOptions`.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Propagation policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl Store {
    /// Creates an object (POST). `ns` is the namespace of the URL.
    pub fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Arc<Stored>> {
        let mut st = self.lock();
        let r = match st.storage_view(info, body) {
            Ok((sinfo, body)) => st.create(&sinfo, ns, body, opts, None),
            Err(e) => Err(e),
        };
        drop(st);
        self.gc_wakeup.notify_one();
        r
    }

    /// Replaces an object (PUT), or its status with `status = true`.
    pub fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> ApiResult<Arc<Stored>> {
        let mut st = self.lock();
        let r = match st.storage_view(info, body) {
            Ok((sinfo, body)) => st.update(&sinfo, ns, name, body, status, opts),
            Err(e) => Err(e),
        };
        drop(st);
        self.gc_wakeup.notify_one();
        r
    }

    /// Patches an object (PATCH). Server-side apply creates missing objects; the flag says
    /// whether that happened.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &Value,
        status: bool,
        opts: &WriteOptions,
    ) -> ApiResult<(Arc<Stored>, bool)> {
        let mut st = self.lock();
        let r = st.patch(info, ns, name, kind, body, status, opts);
        drop(st);
        self.gc_wakeup.notify_one();
        r
    }

    /// Deletes an object (DELETE). Returns its last state: still present with a
    /// deletionTimestamp while finalizers remain, otherwise removed.
    pub fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Arc<Stored>> {
        let mut st = self.lock();
        let r = st.delete(info, ns, name, opts);
        drop(st);
        self.gc_wakeup.notify_one();
        r
    }

    /// Deletes every object a list would return (DELETE on a collection).
    pub fn delete_collection(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        list: &super::ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Arc<Stored>>> {
        let mut st = self.lock();
        let keys: Vec<ObjKey> = st
            .select(info, ns, list)?
            .into_iter()
            .map(|s| {
                (
                    object::namespace(&s.value).to_string(),
                    object::name(&s.value).to_string(),
                )
            })
            .collect();
        let mut out = Vec::new();
        for (ns, name) in keys {
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            match st.delete(info, ns, &name, opts) {
                Ok(s) => out.push(s),
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        drop(st);
        self.gc_wakeup.notify_one();
        Ok(out)
    }
}

impl State {
    pub(super) fn create(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOptions,
        entries: Option<Vec<ManagedEntry>>,
    ) -> ApiResult<Arc<Stored>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let api_version = info.api_version();
        if let Some(v) = body.get("apiVersion").and_then(Value::as_str)
            && v != api_version
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
        body["apiVersion"] = json!(api_version);
        body["kind"] = json!(info.kind);
        let unknown = decode_checks(info, &mut body)?;
        opts.fields.report(info, &unknown, opts.verb)?;

        let gr = info.storage_resource();
        let ns_name = if info.namespaced {
            let url_ns = ns.unwrap_or("");
            let body_ns = object::namespace(&body).to_string();
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut body).insert("namespace".into(), json!(url_ns));
            url_ns.to_string()
        } else {
            meta_mut(&mut body).remove("namespace");
            String::new()
        };

        let mut name = object::name(&body).to_string();
        if name.is_empty() {
            let generate = object::meta_str(&body, "generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    &["metadata.name: Required value: name or generateName is required".into()],
                ));
            }
            name = format!("{generate}{}", object::random_suffix());
            for _ in 0..8 {
                if self.get(&gr, &(ns_name.clone(), name.clone())).is_none() {
                    break;
                }
                name = format!("{generate}{}", object::random_suffix());
            }
            meta_mut(&mut body).insert("name".into(), json!(name));
        }
        let problem = if is_namespace(info) {
            object::check_label(&name)
        } else {
            object::check_subdomain(&name)
        };
        if let Some(p) = problem {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                &name,
                &[format!("metadata.name: Invalid value: {name:?}: {p}")],
            ));
        }
        if info.namespaced {
            match self.get(
                &GroupResource::new("", "namespaces"),
                &(String::new(), ns_name.clone()),
            ) {
                None => return Err(ApiError::not_found("", "namespaces", &ns_name)),
                Some(n) if object::is_deleting(&n.value) => {
                    return Err(ApiError::new(
                        Reason::Forbidden,
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns_name} because it is being terminated",
                            crate::error::qualified(&info.group, &info.plural)
                        ),
                    )
                    .with_details(&info.group, &info.plural, &name));
                }
                Some(_) => {}
            }
        }
        let key = (ns_name, name.clone());
        if self.get(&gr, &key).is_some() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }

        {
            let m = meta_mut(&mut body);
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
                "selfLink",
            ] {
                m.remove(f);
            }
            m.insert("uid".into(), json!(object::new_uid()));
            m.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
            if info.tracks_generation {
                m.insert("generation".into(), json!(1));
            }
        }
        if info.status_subresource
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        create_defaults(info, &mut body)?;
        normalize_write(info, &mut body);
        validate_meta(info, &body)?;
        validate_schema(info, &body, None)?;

        let entries = entries.unwrap_or_else(|| {
            let mut e = Vec::new();
            managed::record_update(
                &mut e,
                None,
                &body,
                &opts.manager,
                &api_version,
                scope_of(info, false),
                &object::now_rfc3339(),
            );
            e
        });
        managed::write_entries(&mut body, &entries);

        if opts.dry_run {
            return Ok(Stored::new(body, self.rv));
        }
        Ok(self.commit(&gr, &key, Some(body), None))
    }

    fn current(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<(ObjKey, Arc<Stored>)> {
        let key = key_for(info, ns, name);
        match self.get(&info.storage_resource(), &key) {
            Some(s) => Ok((key, s)),
            None => Err(ApiError::not_found(&info.group, &info.plural, name)),
        }
    }

    fn update(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> ApiResult<Arc<Stored>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let (key, current) = self.current(info, ns, name)?;
        let body_name = object::name(&body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced {
            let body_ns = object::namespace(&body);
            if !body_ns.is_empty() && Some(body_ns) != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let rv = object::resource_version(&body);
        if rv.is_empty() {
            if !info.allow_unconditional_update {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    &["metadata.resourceVersion: Invalid value: 0x0: must be specified for an update".into()],
                ));
            }
        } else if rv != current.rv.to_string() {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        self.finish_update(info, &key, &current, body, status, opts, None)
    }

    /// The common tail of update, patch and internal writes: subresource separation,
    /// server-owned metadata, validation, generation, managed fields, and removal of a
    /// deleting object whose last finalizer is gone.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_update(
        &mut self,
        info: &ResourceInfo,
        key: &ObjKey,
        current: &Arc<Stored>,
        mut new: Value,
        status: bool,
        opts: &WriteOptions,
        entries: Option<Vec<ManagedEntry>>,
    ) -> ApiResult<Arc<Stored>> {
        let cur = &current.value;
        let unknown = decode_checks(info, &mut new)?;
        opts.fields.report(info, &unknown, opts.verb)?;
        if info.status_subresource {
            let mut merged = if status { cur.clone() } else { new.clone() };
            let status_from = if status { &new } else { cur };
            if let Some(m) = merged.as_object_mut() {
                set_or_remove(m, "status", status_from.get("status"));
            }
            new = merged;
        }
        {
            let cm = meta(cur).cloned().unwrap_or_default();
            let nm = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
                "resourceVersion",
            ] {
                set_or_remove(nm, f, cm.get(f));
            }
            nm.remove("managedFields");
            nm.remove("selfLink");
        }
        new["apiVersion"] = json!(info.api_version());
        new["kind"] = json!(info.kind);
        if is_namespace(info) && !status {
            // A namespace's spec.finalizers change only through /finalize (the namespace
            // controller here), like on a real cluster.
            if let Some(m) = new.as_object_mut() {
                set_or_remove(m, "spec", cur.get("spec"));
            }
        }
        normalize_write(info, &mut new);
        validate_meta(info, &new)?;
        validate_schema(info, &new, Some(cur))?;
        if object::is_deleting(cur) {
            let before = object::finalizers(cur);
            let added: Vec<String> = object::finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    &key.1,
                    &[format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    )],
                ));
            }
        }
        if is_crd(info) {
            crate::resources::rows_from_crd(&new)
                .map_err(|causes| crate::resources::invalid_crd(&key.1, &causes))?;
        }

        // A write that changes nothing is not a write: no new resourceVersion, no event.
        let mut cur_cmp = cur.clone();
        if let Some(m) = cur_cmp.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        cur_cmp["apiVersion"] = new["apiVersion"].clone();
        if cur_cmp == new {
            return Ok(current.clone());
        }
        if info.tracks_generation && spec_part(cur) != spec_part(&new) {
            let g = meta(cur)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let api_version = info.api_version();
        let entries = entries.unwrap_or_else(|| {
            let mut e = managed::read_entries(cur);
            managed::record_update(
                &mut e,
                Some(cur),
                &new,
                &opts.manager,
                &api_version,
                scope_of(info, status),
                &object::now_rfc3339(),
            );
            e
        });
        managed::write_entries(&mut new, &entries);
        if opts.dry_run {
            return Ok(Stored::new(new, current.rv));
        }
        let gr = info.storage_resource();
        if drained(&new) {
            return Ok(self.commit(&gr, key, None, Some(new)));
        }
        Ok(self.commit(&gr, key, Some(new), None))
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &Value,
        status: bool,
        opts: &WriteOptions,
    ) -> ApiResult<(Arc<Stored>, bool)> {
        if kind == PatchKind::Strategic && !info.strategic_merge {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        if kind == PatchKind::Apply {
            return self.apply(info, ns, name, body, status, opts);
        }
        let sinfo = self.storage_row(info)?;
        let (key, current) = self.current(&sinfo, ns, name)?;
        let mut doc = crate::convert::to_served(&current.value, info);
        doc["apiVersion"] = json!(info.api_version());
        match kind {
            PatchKind::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                patch::merge(&mut doc, body);
            }
            PatchKind::Json => patch::json_patch(&mut doc, body)?,
            PatchKind::Strategic => patch::strategic(&mut doc, body)?,
            PatchKind::Apply => unreachable!("handled above"),
        }
        // A resourceVersion in the patch is a precondition.
        let rv = object::resource_version(&doc);
        if !rv.is_empty() && rv != current.rv.to_string() {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        let name_after = object::name(&doc);
        if name_after != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name_after}) does not match the name on the URL ({name})"
            )));
        }
        let doc = crate::convert::to_storage(&doc, info);
        self.finish_update(&sinfo, &key, &current, doc, status, opts, None)
            .map(|s| (s, false))
    }

    fn apply(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: &Value,
        status: bool,
        opts: &WriteOptions,
    ) -> ApiResult<(Arc<Stored>, bool)> {
        if opts.manager.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &["fieldManager: Required value: is required for apply patch".into()],
            ));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        let api_version = info.api_version();
        for (field, want) in [
            ("apiVersion", api_version.as_str()),
            ("kind", info.kind.as_str()),
        ] {
            match body.get(field).and_then(Value::as_str) {
                Some(v) if v == want => {}
                Some(v) => {
                    return Err(ApiError::bad_request(format!(
                        "{field} {v:?} in the apply configuration does not match {want:?}"
                    )));
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{field} must be set in the apply configuration"
                    )));
                }
            }
        }
        let body_name = object::name(body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        // Like the API server, an apply configuration may leave the name to the URL.
        let mut body = body.clone();
        object::meta_mut(&mut body).insert("name".into(), json!(name));
        let body = &body;
        let scope = scope_of(info, status);
        let now = object::now_rfc3339();
        let key = key_for(info, ns, name);
        // Both branches apply the body to a base object: the live one, or a bare skeleton.
        let apply_to = |base: &Value, entries| {
            managed::apply(
                base,
                body,
                entries,
                &opts.manager,
                &api_version,
                opts.force,
                scope,
                &now,
            )
            .map_err(|c| {
                ApiError::conflict_apply(info, name, &managed::conflict_message(&c, &api_version))
            })
        };
        match self.get(&info.storage_resource(), &key) {
            None => {
                if status {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                let skeleton = json!({"apiVersion": api_version, "kind": info.kind,
                    "metadata": {"name": name}});
                let applied = apply_to(&skeleton, Vec::new())?;
                let sinfo = self.storage_row(info)?;
                let object = crate::convert::to_storage(&applied.object, info);
                self.create(&sinfo, ns, object, opts, Some(applied.entries))
                    .map(|s| (s, true))
            }
            Some(current) => {
                let rv = object::resource_version(body);
                if !rv.is_empty() && rv != current.rv.to_string() {
                    return Err(ApiError::stale(&info.group, &info.plural, name));
                }
                let mut live = crate::convert::to_served(&current.value, info);
                live["apiVersion"] = json!(api_version);
                let applied = apply_to(&live, managed::read_entries(&current.value))?;
                let sinfo = self.storage_row(info)?;
                let object = crate::convert::to_storage(&applied.object, info);
                self.finish_update(
                    &sinfo,
                    &key,
                    &current,
                    object,
                    status,
                    opts,
                    Some(applied.entries),
                )
                .map(|s| (s, false))
            }
        }
    }

    pub(super) fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Arc<Stored>> {
        let (key, current) = self.current(info, ns, name)?;
        let cur = &current.value;
        if let Some(uid) = &opts.precondition_uid
            && uid != object::uid(cur)
        {
            return Err(ApiError::conflict(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(cur)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != &current.rv.to_string()
        {
            return Err(ApiError::conflict(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current.rv
                ),
            ));
        }
        if object::is_deleting(cur) {
            return Ok(current);
        }
        let mut fins = object::finalizers(cur);
        let extra = match opts.propagation {
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
            Propagation::Background => None,
        };
        let has_dependents = self
            .dependents
            .get(object::uid(cur))
            .is_some_and(|d| !d.is_empty());
        if let Some(f) = extra
            && has_dependents
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let gr = info.storage_resource();
        if fins.is_empty() && !is_namespace(info) {
            if opts.dry_run {
                return Ok(current);
            }
            return Ok(self.commit(&gr, &key, None, None));
        }
        let mut new = cur.clone();
        {
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.insert("finalizers".into(), json!(fins));
            if info.tracks_generation {
                let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                m.insert("generation".into(), json!(g + 1));
            }
        }
        if is_namespace(info) {
            new["status"] = json!({"phase": "Terminating"});
        }
        if opts.dry_run {
            return Ok(Stored::new(new, current.rv));
        }
        let stored = self.commit(&gr, &key, Some(new), None);
        if is_namespace(info) {
            self.gc_queue.push_back(GcWork::Namespace(name.to_string()));
        } else if is_crd(info) {
            self.gc_queue.push_back(GcWork::Crd(name.to_string()));
        }
        if extra.is_some() && has_dependents {
            self.gc_queue.push_back(GcWork::Propagate(gr, key));
        }
        Ok(stored)
    }
}

/// What decoding a written object does on the API server: unknown fields are dropped (the
/// CRD's structural schema, or the built-in kind's Go type), and a custom resource gets its
/// schema's defaults. Returns the dropped fields for field validation.
fn decode_checks(info: &ResourceInfo, obj: &mut Value) -> ApiResult<Vec<String>> {
    match &info.schema {
        Some(schema) => {
            let unknown = schema.structural.prune(obj);
            schema.structural.apply_defaults(obj);
            Ok(unknown)
        }
        None if info.custom => Ok(Vec::new()),
        None => crate::typed::prune_builtin(info, obj),
    }
}

/// Validates a custom resource against its CRD version's schema (ratcheting against the
/// live object on updates).
fn validate_schema(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let Some(schema) = &info.schema else {
        return Ok(());
    };
    let errors = schema.structural.validate(obj, old);
    if errors.is_empty() {
        return Ok(());
    }
    let causes: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(ApiError::invalid(
        &info.group,
        &info.kind,
        object::name(obj),
        &causes,
    ))
}

impl ApiError {
    fn conflict_apply(info: &ResourceInfo, name: &str, message: &str) -> ApiError {
        ApiError::new(Reason::Conflict, message.to_string()).with_details(
            &info.group,
            &info.plural,
            name,
        )
    }
}
