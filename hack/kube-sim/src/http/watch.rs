//! Watch streams: newline-delimited JSON events over a chunked HTTP/1.1 response.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::present::{self, Format};
use super::{Body, Shared};
use crate::error::ApiError;
use crate::resources::{GroupResource, ResourceInfo};
use crate::store::{Store, WatchItem, WatchStart};

/// Unregisters the watcher when the stream is dropped (client gone or stream ended).
struct Guard {
    store: Arc<Store>,
    gr: GroupResource,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.store.unwatch(&self.gr, self.id);
    }
}

struct Stream {
    shared: Arc<Shared>,
    info: Arc<ResourceInfo>,
    guard: Guard,
    initial: VecDeque<WatchItem>,
    rx: mpsc::Receiver<WatchItem>,
    gone: Option<ApiError>,
    deadline: Instant,
    bookmarks: bool,
    ticker: Interval,
    sent: u64,
    format: Format,
    finished: bool,
    shutdown: watch::Receiver<bool>,
}

/// Parameters of one watch response.
pub struct WatchParams {
    /// Send BOOKMARK events (`allowWatchBookmarks=true`).
    pub bookmarks: bool,
    /// End the stream after this long (`timeoutSeconds`).
    pub timeout: Duration,
    /// Representation of objects.
    pub format: Format,
}

/// Builds the streaming body of a registered watch.
pub fn body(
    shared: Arc<Shared>,
    info: Arc<ResourceInfo>,
    start: WatchStart,
    params: WatchParams,
) -> Body {
    let period = shared.bookmark_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = Stream {
        guard: Guard {
            store: shared.store.clone(),
            gr: info.storage_resource(),
            id: start.id,
        },
        shutdown: shared.shutdown.clone(),
        shared,
        info,
        initial: start.initial.into(),
        rx: start.rx,
        gone: start.gone,
        deadline: Instant::now() + params.timeout,
        bookmarks: params.bookmarks,
        ticker,
        sent: 0,
        format: params.format,
        finished: false,
    };
    let stream = futures::stream::unfold(state, next_chunk);
    http_body_util::BodyExt::boxed_unsync(StreamBody::new(stream))
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + 32);
    out.put_slice(b"{\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"object\":");
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

fn bookmark(info: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta});
    line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

async fn next_chunk(mut st: Stream) -> Option<(Result<Frame<Bytes>, Infallible>, Stream)> {
    if st.finished {
        return None;
    }
    if let Some(e) = st.gone.take() {
        st.finished = true;
        let status = serde_json::to_vec(&e.to_status()).unwrap_or_default();
        return Some((Ok(Frame::data(line("ERROR", &status))), st));
    }
    loop {
        let item = match st.initial.pop_front() {
            Some(i) => i,
            None => {
                tokio::select! {
                    i = st.rx.recv() => i?,
                    _ = tokio::time::sleep_until(st.deadline) => return None,
                    _ = st.ticker.tick(), if st.bookmarks => {
                        st.shared.store.bookmark(&st.guard.gr, st.guard.id);
                        continue;
                    }
                    _ = st.shutdown.changed() => return None,
                }
            }
        };
        let chunk = match item {
            WatchItem::Bookmark(rv) => {
                if !st.bookmarks {
                    continue;
                }
                bookmark(&st.info, rv, false)
            }
            WatchItem::InitialEventsEnd(rv) => bookmark(&st.info, rv, true),
            WatchItem::Change(kind, change) => {
                let obj =
                    present::one(&change.object, &st.info, st.format, "PartialObjectMetadata");
                st.sent += 1;
                if st.shared.faults.cut_watch(&st.info.plural, st.sent) {
                    st.finished = true;
                }
                line(kind.as_str(), &obj)
            }
        };
        return Some((Ok(Frame::data(chunk)), st));
    }
}
