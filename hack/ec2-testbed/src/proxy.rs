//! The fault proxy: an HTTP proxy on 127.0.0.1 in front of moto that the client under
//! test is pointed at. It records every request (EC2 action and form parameters),
//! injects faults per action, and gives `RunInstances` EC2's client-token idempotency,
//! which moto lacks.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::faults::{ActiveFault, Fault, FaultEffect, decide, ec2_error_body};
use crate::{Error, http};

/// Identifies an injected fault, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

/// What became of a recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled (or the client went away before the end).
    InFlight,
    /// Passed to moto, which answered with this status.
    Forwarded {
        /// moto's HTTP status.
        status: u16,
    },
    /// Answered by an injected fault.
    Injected {
        /// The status sent.
        status: u16,
        /// The EC2 error code sent, if any.
        code: Option<String>,
    },
    /// The connection was closed without an answer (injected).
    Closed,
    /// A `RunInstances` repeating an earlier client token: answered with the earlier
    /// launch's answer, not passed to moto.
    Replayed,
    /// moto could not be reached.
    UpstreamFailed(String),
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The EC2 action (`Action=`), empty when there was none.
    pub action: String,
    /// The form parameters, in the order sent (query string first).
    pub params: Vec<(String, String)>,
    /// What became of it.
    pub outcome: Outcome,
    /// When the proxy received it (for benchmarks: the moment it reached "EC2").
    pub received: Instant,
    /// When its outcome was decided (the answer sent, or the connection closed);
    /// `None` while in flight.
    pub answered: Option<Instant>,
}

impl RecordedCall {
    /// The value of parameter `name` (`BlockDeviceMapping.1.Ebs.VolumeSize`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter whose name starts with `prefix`, in order.
    pub fn params_with_prefix(&self, prefix: &str) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// How the proxy behaves besides the injected faults.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Give `RunInstances` EC2's client-token idempotency (moto starts a new instance
    /// for every call): a token seen before with the same parameters gets the first
    /// answer again, with other parameters `IdempotentParameterMismatch`. Default on.
    pub client_token_idempotency: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            client_token_idempotency: true,
        }
    }
}

/// A first `RunInstances` per client token: its parameters and moto's answer.
#[derive(Debug)]
struct Launch {
    params: Vec<(String, String)>,
    body: Bytes,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    options: ProxyOptions,
    faults: Mutex<Vec<ActiveFault>>,
    next_fault: AtomicU64,
    calls: Mutex<Vec<RecordedCall>>,
    // Bumped whenever a recorded call changes, for `wait_for_calls`.
    changed: tokio::sync::watch::Sender<u64>,
    launches: Mutex<HashMap<String, Launch>>,
    // Serialises RunInstances that carry a token, so two concurrent first calls with the
    // same token cannot both reach moto (EC2 guarantees one instance per token).
    launch_lock: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The proxy; stops serving when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` in front of `upstream` (moto).
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy, Error> {
        Self::start_with(upstream, ProxyOptions::default()).await
    }

    /// Starts a proxy with non-default options.
    pub async fn start_with(
        upstream: SocketAddr,
        options: ProxyOptions,
    ) -> Result<FaultProxy, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::io("listen on 127.0.0.1 for the fault proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("the fault proxy's address"))?;
        let shared = Arc::new(Shared {
            upstream,
            options,
            faults: Mutex::new(Vec::new()),
            next_fault: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::channel(0).0,
            launches: Mutex::new(HashMap::new()),
            launch_lock: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(FaultProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for the client under test.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Puts `fault` in force (after the ones already there).
    pub fn inject(&self, fault: Fault) -> FaultId {
        let id = self.shared.next_fault.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.faults).push(ActiveFault::new(id, fault));
        FaultId(id)
    }

    /// Removes one fault.
    pub fn remove(&self, id: FaultId) {
        lock(&self.shared.faults).retain(|f| f.id != id.0);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many faults are still in force (a limited one goes when spent).
    pub fn faults_in_force(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// How many requests for `action` arrived, whatever became of them.
    pub fn calls(&self, action: &str) -> usize {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.action == action)
            .count()
    }

    /// How many requests for `action` reached moto.
    pub fn forwarded(&self, action: &str) -> usize {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.action == action && matches!(c.outcome, Outcome::Forwarded { .. }))
            .count()
    }

    /// The requests for `action`, oldest first.
    pub fn requests(&self, action: &str) -> Vec<RecordedCall> {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }

    /// Every request, oldest first.
    pub fn all_requests(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    /// Waits until the recorded requests satisfy `check`, at most `timeout`.
    pub async fn wait_for_calls(
        &self,
        what: &str,
        timeout: std::time::Duration,
        mut check: impl FnMut(&[RecordedCall]) -> bool,
    ) -> Result<(), Error> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check(&lock(&self.shared.calls)) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(Error::Timeout {
                    what: format!("{what} (requests: {:?})", self.all_requests()),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: try again shortly, without spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                // Its own task: a request whose client gave up (timeout) still reaches
                // moto, as a request to EC2 does; only the answer is lost.
                let handling = tokio::spawn(handle(shared.clone(), request));
                async move { handling.await.unwrap_or(Err(Close)) }
            });
            // A connection ends with an error when a fault closes it; that is the point.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why the proxy closes a connection instead of answering.
#[derive(Debug)]
struct Close;

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by an injected fault")
    }
}

impl std::error::Error for Close {}

type Answer = Result<Response<Full<Bytes>>, Close>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Answer {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Close),
    };
    let mut params: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let index = {
        let mut calls = lock(&shared.calls);
        calls.push(RecordedCall {
            action: action.clone(),
            params: params.clone(),
            outcome: Outcome::InFlight,
            received: Instant::now(),
            answered: None,
        });
        calls.len() - 1
    };
    shared.changed.send_modify(|n| *n += 1);
    let record = |outcome: Outcome| {
        if let Some(call) = lock(&shared.calls).get_mut(index) {
            call.outcome = outcome;
            call.answered = Some(Instant::now());
        }
        shared.changed.send_modify(|n| *n += 1);
    };

    let decision = decide(&mut lock(&shared.faults), &action);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.terminal {
        Some(FaultEffect::Ec2Error {
            code,
            message,
            status,
        }) => {
            record(Outcome::Injected {
                status,
                code: Some(code.clone()),
            });
            return Ok(ec2_error(status, &code, &message));
        }
        Some(FaultEffect::Status(status)) => {
            record(Outcome::Injected { status, code: None });
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"injected by the ec2-testbed fault proxy\n",
            )));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return Ok(response);
        }
        Some(FaultEffect::CloseConnection) => {
            record(Outcome::Closed);
            return Err(Close);
        }
        Some(FaultEffect::Delay(_)) | None => {}
    }

    let token = (shared.options.client_token_idempotency && action == "RunInstances")
        .then(|| {
            params
                .iter()
                .find(|(k, _)| k == "ClientToken")
                .map(|(_, v)| v.clone())
        })
        .flatten();
    let Some(token) = token else {
        let (answer, outcome) = forward(&shared, parts, body).await;
        record(outcome);
        return Ok(answer.map(Full::new));
    };

    let _serialised = shared.launch_lock.lock().await;
    let earlier = lock(&shared.launches)
        .get(&token)
        .map(|launch| (launch.params == params, launch.body.clone()));
    match earlier {
        Some((true, body)) => {
            record(Outcome::Replayed);
            Ok(xml_response(StatusCode::OK, body))
        }
        Some((false, _)) => {
            let code = "IdempotentParameterMismatch";
            record(Outcome::Injected {
                status: 400,
                code: Some(code.to_owned()),
            });
            Ok(ec2_error(
                400,
                code,
                &format!(
                    "Arguments on this idempotent request are inconsistent with arguments \
                     used in previous request(s) with client token {token}"
                ),
            ))
        }
        None => {
            let (answer, outcome) = forward(&shared, parts, body).await;
            if answer.status() == StatusCode::OK {
                let body = answer.body().clone();
                lock(&shared.launches).insert(token, Launch { params, body });
            }
            record(outcome);
            Ok(answer.map(Full::new))
        }
    }
}

/// Passes the request to moto and its answer back.
async fn forward(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> (Response<Bytes>, Outcome) {
    let mut request = Request::from_parts(parts, Full::new(body));
    let headers = request.headers_mut();
    headers.remove(CONNECTION);
    if let Ok(host) = HeaderValue::from_str(&shared.upstream.to_string()) {
        headers.insert(HOST, host);
    }
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    if let Ok(uri) = path.parse() {
        *request.uri_mut() = uri;
    }
    match http::send(shared.upstream, request).await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let (mut parts, body) = answer.into_parts();
            // moto closes every connection; the proxy keeps its own client's open.
            parts.headers.remove(CONNECTION);
            parts.headers.remove(TRANSFER_ENCODING);
            (
                Response::from_parts(parts, body),
                Outcome::Forwarded { status },
            )
        }
        Err(e) => {
            let mut response = Response::new(Bytes::from(format!(
                "ec2-testbed fault proxy: moto unreachable: {e}\n"
            )));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            (response, Outcome::UpstreamFailed(e))
        }
    }
}

/// An EC2 error answer; the request id is in the body and, as EC2 also sends it, in
/// the `x-amzn-requestid` header.
fn ec2_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let request_id = format!("{:032x}", rand::random::<u128>());
    let mut response = xml_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Bytes::from(ec2_error_body(code, message, &request_id)),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

fn xml_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
}
