//! Reads: get, list (selectors, limit/continue, resourceVersion semantics) and watch.

use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Change, EventType, ObjKey, State, Store, Stored, WatchItem, Watcher};
use crate::error::{ApiError, ApiResult, Reason};
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (page size).
    pub limit: Option<usize>,
    /// `continue` token from the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`NotOlderThan` or `Exact`).
    pub resource_version_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// The objects, ordered by namespace and name.
    pub items: Vec<Arc<Stored>>,
    /// resourceVersion of the list.
    pub rv: u64,
    /// Token for the next page, if there is one.
    pub continue_token: Option<String>,
    /// Objects after this page (only without selectors, like the API server).
    pub remaining: Option<u64>,
}

/// Options of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion` to resume from (`None`/`"0"`: start with the current objects).
    pub resource_version: Option<String>,
    /// `sendInitialEvents=true` (streaming list).
    pub send_initial_events: bool,
}

/// A registered watch.
pub struct WatchStart {
    /// Watcher id, for bookmarks and unregistering.
    pub id: u64,
    /// Events to send before anything from `rx`.
    pub initial: Vec<WatchItem>,
    /// Set when the resourceVersion is compacted: send this as an ERROR event and end.
    pub gone: Option<ApiError>,
    /// Later events.
    pub rx: mpsc::Receiver<WatchItem>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: (String, String),
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: key.clone(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(s: &str) -> ApiResult<ContinueToken> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
}

impl Store {
    /// Reads one object.
    pub fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Arc<Stored>> {
        let st = self.lock();
        let key = if info.namespaced {
            (ns.unwrap_or("").to_string(), name.to_string())
        } else {
            (String::new(), name.to_string())
        };
        st.get(&info.storage_resource(), &key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Lists objects (one page).
    pub fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let st = self.lock();
        st.list(info, ns, opts)
    }

    /// Registers a watch.
    pub fn watch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: WatchOptions,
    ) -> ApiResult<WatchStart> {
        let mut st = self.lock();
        st.next_watcher_id += 1;
        let id = st.next_watcher_id;
        let buffer = st.config.watch_buffer;
        let current = st.rv;
        let (tx, rx) = mpsc::channel(buffer);
        let watcher = Watcher {
            id,
            namespace: ns.filter(|_| info.namespaced).map(str::to_string),
            labels: opts.labels,
            fields: opts.fields,
            tx,
        };
        let coll = st.collection(&info.storage_resource());
        let mut initial = Vec::new();
        let from = opts
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0");
        if opts.send_initial_events || from.is_none() {
            for obj in coll.objects.values() {
                if watcher.selects(&obj.value) {
                    initial.push(WatchItem::Change(
                        EventType::Added,
                        Arc::new(Change {
                            rv: obj.rv,
                            kind: EventType::Added,
                            object: obj.clone(),
                            previous: None,
                        }),
                    ));
                }
            }
            if opts.send_initial_events {
                initial.push(WatchItem::InitialEventsEnd(current));
            }
        } else if let Some(rv) = from {
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            if rv < coll.compacted {
                let gone = ApiError::new(
                    Reason::Expired,
                    format!("too old resource version: {rv} ({})", coll.compacted),
                );
                let (_, rx) = mpsc::channel(1);
                return Ok(WatchStart {
                    id,
                    initial: Vec::new(),
                    gone: Some(gone),
                    rx,
                });
            }
            for (_, change) in coll.history.iter().filter(|(_, c)| c.rv > rv) {
                if let Some(t) = watcher.sees(change) {
                    initial.push(WatchItem::Change(t, change.clone()));
                }
            }
        }
        coll.watchers.push(watcher);
        Ok(WatchStart {
            id,
            initial,
            gone: None,
            rx,
        })
    }
}

impl State {
    /// Every object a list with these options would return, ignoring paging.
    pub(super) fn select(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Vec<Arc<Stored>>> {
        let all = ListOptions {
            limit: None,
            continue_token: None,
            ..opts.clone()
        };
        Ok(self.list(info, ns, &all)?.items)
    }

    fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let ns = ns.filter(|_| info.namespaced);
        let (mut list_rv, after) = match &opts.continue_token {
            Some(t) if !t.is_empty() => {
                let token = decode_continue(t)?;
                (token.rv, Some(token.start))
            }
            _ => (self.rv, None),
        };
        if after.is_none() {
            list_rv = self.check_list_rv(opts)?;
        }
        let Some(coll) = self.collections.get(&info.storage_resource()) else {
            return Ok(ListPage {
                items: Vec::new(),
                rv: list_rv,
                continue_token: None,
                remaining: None,
            });
        };
        let selects = |s: &Stored| {
            opts.labels.matches(crate::object::labels(&s.value)) && opts.fields.matches(&s.value)
        };
        // A name pinned by the field selector within one namespace is a point lookup.
        if let (Some(name), Some(n)) = (
            opts.fields.pinned_name(),
            ns.or((!info.namespaced).then_some("")),
        ) && after.is_none()
        {
            let items = coll
                .objects
                .get(&(n.to_string(), name.to_string()))
                .filter(|s| selects(s))
                .cloned()
                .into_iter()
                .collect();
            return Ok(ListPage {
                items,
                rv: list_rv,
                continue_token: None,
                remaining: None,
            });
        }
        let lower = match (&after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut iter = coll
            .objects
            .range((lower, Bound::Unbounded))
            .take_while(|((kns, _), _)| ns.is_none_or(|n| kns == n));
        let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last_key = None;
        for (k, s) in iter.by_ref() {
            if selects(s) {
                items.push(s.clone());
                last_key = Some(k.clone());
                if items.len() == limit {
                    break;
                }
            }
        }
        let mut continue_token = None;
        let mut remaining = None;
        if items.len() == limit {
            let no_selectors = opts.labels.is_empty() && opts.fields.is_empty();
            let rest: Vec<_> = if no_selectors {
                iter.collect()
            } else {
                iter.filter(|(_, s)| selects(s)).take(1).collect()
            };
            if !rest.is_empty() {
                if let Some(k) = &last_key {
                    continue_token = Some(encode_continue(list_rv, k));
                }
                if no_selectors {
                    remaining = Some(rest.len() as u64);
                }
            }
        }
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
            remaining,
        })
    }

    /// The resourceVersion a list is served at, per `resourceVersion`/`resourceVersionMatch`.
    fn check_list_rv(&self, opts: &ListOptions) -> ApiResult<u64> {
        let Some(rv) = opts.resource_version.as_deref().filter(|r| !r.is_empty()) else {
            return Ok(self.rv);
        };
        let n: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
        match opts.resource_version_match.as_deref() {
            Some("Exact") if n != self.rv => Err(ApiError::new(
                Reason::Expired,
                format!("too old resource version: {n} ({})", self.rv),
            )),
            Some("Exact") | Some("NotOlderThan") | None | Some("") => {
                if n > self.rv {
                    Err(ApiError::new(
                        Reason::Timeout,
                        format!("Too large resource version: {n}, current: {}", self.rv),
                    ))
                } else {
                    Ok(self.rv)
                }
            }
            Some(other) => Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            ))),
        }
    }
}

/// The `metadata` of a list response.
pub fn list_metadata(page: &ListPage) -> Value {
    let mut m = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        m["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, &("ns".into(), "x".into()));
        let d = decode_continue(&t).unwrap();
        assert_eq!(d.rv, 42);
        assert_eq!(d.start, ("ns".to_string(), "x".to_string()));
        assert_eq!(decode_continue("garbage").unwrap_err().code(), 400);
    }
}
