//! The operations HTTP endpoints: `/metrics` (plain, or secured by
//! [`crate::secure_metrics`]), `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::secure_metrics::reviews::KubeReviewer;
use crate::secure_metrics::tls::ServingCerts;
use crate::secure_metrics::{self, TlsListener};

/// How long the controller loop may stay silent before `/healthz` says it is stuck.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// Liveness and readiness, as the controller loop reports them.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    leader: AtomicBool,
    heartbeat_ms: AtomicI64,
}

impl Health {
    /// The loop is alive: call it on every turn (and at least once a minute).
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Caches are synced (as leader or standby) — or no longer, when shutting down.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` succeeds.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// This instance leads (allocates) — or no longer, as a standby or after losing
    /// the Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this instance leads: `/readyz` says `ready (leader)` rather than
    /// `ready (standby)`.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Whether `/healthz` succeeds: the loop turned within the stall limit.
    pub fn is_alive(&self) -> bool {
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        let limit = i64::try_from(STALL_LIMIT.as_millis()).unwrap_or(i64::MAX);
        last == 0 || now_ms().saturating_sub(last) < limit
    }
}

/// Unix milliseconds: what the heartbeat atomic holds.
fn now_ms() -> i64 {
    mpc_core::time::Timestamp::now().as_millisecond()
}

/// Binds `addr`, failing early (before the controller starts) when it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Where and how `/metrics` is served.
pub enum MetricsEndpoint {
    /// Plain HTTP, no authentication (`--metrics-secure=false`).
    Plain(TcpListener),
    /// HTTPS; readers need a token allowed `get` on `/metrics`.
    Secure {
        /// The bound port.
        listener: TcpListener,
        /// The serving certificate.
        certs: Arc<ServingCerts>,
        /// Token and access reviews.
        reviewer: Arc<KubeReviewer>,
    },
}

/// Serves `/metrics` on `endpoint` and `/healthz`, `/readyz` on `health_listener`
/// until `shutdown` resolves.
pub async fn serve(
    endpoint: MetricsEndpoint,
    health_listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics_app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    let health_app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let a: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> =
        match endpoint {
            MetricsEndpoint::Plain(listener) => Box::pin(
                axum::serve(listener, metrics_app)
                    .with_graceful_shutdown(stop(stop_rx.clone()))
                    .into_future(),
            ),
            MetricsEndpoint::Secure {
                listener,
                certs,
                reviewer,
            } => {
                let tls = TlsListener::new(listener, certs)?;
                Box::pin(
                    axum::serve(tls, secure_metrics::guard(metrics_app, reviewer))
                        .with_graceful_shutdown(stop(stop_rx.clone()))
                        .into_future(),
                )
            }
        };
    let b = axum::serve(health_listener, health_app)
        .with_graceful_shutdown(stop(stop_rx))
        .into_future();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (a, b) = tokio::join!(a, b);
    a.and(b)
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_alive() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "controller loop stalled")
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_ready() && health.is_leader() {
        (StatusCode::OK, "ready (leader)")
    } else if health.is_ready() {
        (StatusCode::OK, "ready (standby)")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// A bind address flag that is not `:PORT` or `IP:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("invalid bind address {value:?}: expected `:PORT` or `IP:PORT`, e.g. `:8080`")]
pub struct InvalidBindAddress {
    /// The flag's value.
    pub value: String,
    /// Why it does not parse.
    #[source]
    pub source: std::net::AddrParseError,
}

/// Parses `:8080` (all interfaces) or a full `host:port` address.
pub fn parse_bind_address(value: &str) -> Result<SocketAddr, InvalidBindAddress> {
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_owned()
    };
    full.parse().map_err(|source| InvalidBindAddress {
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_accept_the_go_style_port_only_form() {
        assert_eq!(
            parse_bind_address(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(
            parse_bind_address("8080")
                .unwrap_err()
                .to_string()
                .contains(":PORT")
        );
    }

    #[test]
    fn health_starts_alive_and_not_ready() {
        let h = Health::default();
        assert!(h.is_alive());
        assert!(!h.is_ready());
        h.beat();
        h.set_ready(true);
        assert!(h.is_alive() && h.is_ready());
        h.heartbeat_ms.store(1, Ordering::Relaxed);
        assert!(!h.is_alive(), "a loop silent since 1970 is stalled");
    }
}
