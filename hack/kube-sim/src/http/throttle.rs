//! The API server's in-flight limit (`--max-requests-inflight`,
//! `--max-mutating-requests-inflight`): requests beyond it are refused with 429 Too Many
//! Requests and `Retry-After: 1`, the bytes `k8s.io/apiserver`'s `WithMaxInFlightLimit`
//! filter writes (a plain-text body, not a `Status`). Watches are long-running requests and
//! do not count. Clients are expected to retry (client-go and kube 5 do, honouring
//! `Retry-After`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::Body;

/// The limits and counters of one server.
#[derive(Debug, Default)]
pub struct InFlight {
    max_readonly: usize,
    max_mutating: usize,
    readonly: AtomicUsize,
    mutating: AtomicUsize,
    rejected: AtomicU64,
}

/// A request's place in the limit; released when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<InFlight>,
    mutating: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits
            .counter(self.mutating)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// Limits for read-only (get, list) and mutating requests; 0 means unlimited.
    pub fn new(max_readonly: usize, max_mutating: usize) -> Arc<Self> {
        Arc::new(InFlight {
            max_readonly,
            max_mutating,
            ..Default::default()
        })
    }

    fn counter(&self, mutating: bool) -> &AtomicUsize {
        if mutating {
            &self.mutating
        } else {
            &self.readonly
        }
    }

    /// Takes a place for a request, or `None` when the limit is reached (answer 429).
    pub fn enter(self: &Arc<Self>, mutating: bool) -> Option<Slot> {
        let max = if mutating {
            self.max_mutating
        } else {
            self.max_readonly
        };
        let counter = self.counter(mutating);
        let taken = counter.fetch_add(1, Ordering::AcqRel);
        if max != 0 && taken >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot {
            limits: self.clone(),
            mutating,
        })
    }

    /// Requests refused with 429 so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// The seconds the API server asks a throttled client to wait.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The API server's 429 answer: `http.Error(w, "Too many requests, please try again
/// later.", 429)` with `Retry-After: 1`.
pub fn too_many_requests() -> Response<Body> {
    Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(
            Full::new(Bytes::from_static(
                b"Too many requests, please try again later.\n",
            ))
            .boxed_unsync(),
        )
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let l = InFlight::new(1, 2);
        let r1 = l.enter(false).unwrap();
        assert!(l.enter(false).is_none(), "read-only limit 1");
        let m1 = l.enter(true).unwrap();
        let _m2 = l.enter(true).unwrap();
        assert!(l.enter(true).is_none(), "mutating limit 2");
        drop(r1);
        drop(m1);
        assert!(l.enter(false).is_some() && l.enter(true).is_some());
        assert_eq!(l.rejected(), 2);
        let unlimited = InFlight::new(0, 0);
        let held: Vec<_> = (0..1000).map(|_| unlimited.enter(true).unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
