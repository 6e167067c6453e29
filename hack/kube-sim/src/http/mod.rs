//! The HTTP/1.1 front: accept loop, routing, request decoding and responses.

pub mod discovery;
pub mod present;
pub mod route;
pub mod throttle;
mod watch;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::{ApiError, ApiResult, Reason};
use crate::faults::{Faults, WriteFault};
use crate::fieldcheck::{FieldCheck, FieldValidation, WriteVerb};
use crate::patch::PatchKind;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOptions, ListOptions, Propagation, Store, WatchOptions, WriteOptions};
use present::Format;
use route::{ResourcePath, Route};

/// Response body type: whole documents and endless watch streams alike.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (the API server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// What every request handler shares.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub addr: SocketAddr,
    pub bookmark_interval: Duration,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub in_flight: Arc<throttle::InFlight>,
    pub openapi: crate::openapi::Cache,
    pub identities: crate::auth::Identities,
}

/// Serves connections until the task is aborted; connection tasks die with it.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(req, shared).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn respond(code: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    respond(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

fn error_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

fn not_found_route() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // The in-flight limit: watches are long-running and do not count.
    let watch = method == Method::GET && flag(&query, "watch");
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let _slot = if watch {
        None
    } else {
        match shared.in_flight.enter(mutating) {
            Some(slot) => Some(slot),
            None => {
                tracing::debug!(%method, %path, "request throttled (in-flight limit)");
                return throttle::too_many_requests();
            }
        }
    };
    let response = match route::parse(&path) {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Health => respond(StatusCode::OK, "text/plain", Bytes::from_static(b"ok")),
        Route::CoreVersions => json_response(
            StatusCode::OK,
            &discovery::core_versions(&shared.addr.to_string()),
        ),
        Route::Groups => json_response(StatusCode::OK, &discovery::groups(&shared.store.table())),
        Route::Group(g) => match discovery::group(&shared.store.table(), &g) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => error_response(&not_found_route()),
        },
        Route::GroupVersion(g, v) => match discovery::resources(&shared.store.table(), &g, &v) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => error_response(&not_found_route()),
        },
        Route::OpenApi => {
            let accept = header_str(req.headers(), header::ACCEPT).unwrap_or("");
            match crate::openapi::serve(&shared.openapi, &shared.store, &path, accept) {
                Some((content_type, body)) => respond(StatusCode::OK, content_type, body),
                None => error_response(&not_found_route()),
            }
        }
        Route::NotFound => error_response(&not_found_route()),
        Route::Resource(p) if crate::auth::reviews::Endpoint::of(&p).is_some() => {
            match review(&shared, &method, &p, req.into_body()).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
        Route::Resource(p) => {
            let (parts, body) = req.into_parts();
            match resource(&shared, &method, &parts.headers, &query, p, body).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// TokenRequest, TokenReview, SubjectAccessReview: computed answers, nothing stored.
async fn review(
    shared: &Shared,
    method: &Method,
    p: &ResourcePath,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    use crate::auth::reviews;
    let endpoint = reviews::Endpoint::of(p).ok_or_else(not_found_route)?;
    if *method != Method::POST {
        return Err(reviews::method_not_allowed(method));
    }
    let (request, _) = parse_json(&read_body(body).await?)?;
    let answer = reviews::answer(&shared.store, &shared.identities, endpoint, p, &request)?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

async fn read_body(body: Incoming) -> ApiResult<Bytes> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            Reason::RequestEntityTooLarge,
            "the request is too large",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

/// A create or update body: JSON, or the protobuf kubectl's generators send for built-ins;
/// with the keys the JSON gave twice.
fn parse_object(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<(Value, Vec<String>)> {
    match header_str(headers, header::CONTENT_TYPE) {
        Some(ct) if crate::protobuf::is_protobuf(ct) => {
            Ok((crate::protobuf::to_json(bytes)?, Vec::new()))
        }
        Some(ct) if ct.contains("cbor") || ct.contains("yaml") => Err(ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - kube-sim accepts application/json, not {ct:?}"
            ),
        )),
        _ => parse_json(bytes),
    }
}

fn parse_json(bytes: &[u8]) -> ApiResult<(Value, Vec<String>)> {
    crate::fieldcheck::parse_json_with_duplicates(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// An apply body may be YAML (kubectl) or JSON (kube-rs sends JSON, which is YAML too).
fn parse_apply(bytes: &[u8]) -> ApiResult<(Value, Vec<String>)> {
    if let Ok(v) = parse_json(bytes) {
        return Ok(v);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the apply configuration is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map(|v| (v, Vec::new()))
        .map_err(|e| {
            ApiError::bad_request(format!("the apply configuration is not valid YAML: {e}"))
        })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

/// The field manager of a write: `fieldManager`, else the User-Agent's product name.
fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    header_str(headers, header::USER_AGENT)
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn label_selector(query: &HashMap<String, String>) -> ApiResult<LabelSelector> {
    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
}

fn field_selector(
    query: &HashMap<String, String>,
    info: &ResourceInfo,
) -> ApiResult<FieldSelector> {
    FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str), |f| {
        info.field_selectable(f)
    })
    .map_err(ApiError::bad_request)
}

fn delete_options(query: &HashMap<String, String>, body: &[u8]) -> ApiResult<DeleteOptions> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(body)?.0
    };
    let policy = v
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| query.get("propagationPolicy").cloned())
        .or_else(|| {
            v.get("orphanDependents")
                .and_then(Value::as_bool)
                .filter(|o| *o)
                .map(|_| "Orphan".to_string())
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                &[format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )],
            ));
        }
    };
    let pre = |k: &str| {
        v.pointer(&format!("/preconditions/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All")
        || v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: pre("uid"),
        precondition_rv: pre("resourceVersion"),
        dry_run,
    })
}

fn injected(fault: WriteFault, info: &ResourceInfo, name: &str) -> ApiError {
    match fault {
        WriteFault::InternalError => ApiError::internal(
            "Internal error occurred: kube-sim injected a write failure (fault injection is on)",
        ),
        WriteFault::Conflict => ApiError::stale(&info.group, &info.plural, name),
    }
}

async fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    p: ResourcePath,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let store = &shared.store;
    let info = store
        .resource(&p.group, &p.version, &p.plural)
        .ok_or_else(not_found_route)?;
    if p.namespace.is_some() && !info.namespaced {
        return Err(not_found_route());
    }
    if p.name.is_some() && info.namespaced && p.namespace.is_none() {
        return Err(not_found_route());
    }
    let status = match p.subresource.as_deref() {
        None => false,
        Some("status") if info.status_subresource => true,
        Some(_) => return Err(not_found_route()),
    };
    let format = negotiate(headers)?;
    if let Some(d) = shared.faults.delay(&info.plural) {
        tokio::time::sleep(d).await;
    }
    let ns = p.namespace.as_deref();
    let include = query
        .get("includeObject")
        .map_or("PartialObjectMetadata", String::as_str);
    let field_validation =
        FieldValidation::parse(query.get("fieldValidation").map(String::as_str))?;
    let warnings = crate::fieldcheck::Warnings::default();
    let write_opts = |verb: WriteVerb, duplicates: Vec<String>| WriteOptions {
        manager: manager(query, headers),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        force: flag(query, "force"),
        fields: FieldCheck {
            mode: field_validation,
            duplicates,
            warnings: warnings.clone(),
        },
        verb,
    };
    let is_write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if is_write && let Some(fault) = shared.faults.on_write(&info.plural) {
        return Err(injected(fault, &info, p.name.as_deref().unwrap_or("")));
    }
    let ok = |code: StatusCode, b: Bytes| {
        let ct = match format {
            Format::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
            Format::Metadata => "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
            Format::Json => "application/json",
        };
        let mut response = respond(code, ct, b);
        // Field validation's `Warn`: one `Warning: 299` header per field.
        for w in warnings.take() {
            if let Ok(v) = http::HeaderValue::from_str(&crate::fieldcheck::warning_header(&w)) {
                response.headers_mut().append(header::WARNING, v);
            }
        }
        Ok(response)
    };

    match (method, p.name.as_deref()) {
        (&Method::GET, Some(name)) => {
            let s = store.get(&info, ns, name)?;
            ok(StatusCode::OK, present::one(&s, &info, format, include))
        }
        (&Method::GET, None) if flag(query, "watch") => {
            let opts = WatchOptions {
                labels: label_selector(query)?,
                fields: field_selector(query, &info)?,
                resource_version: query.get("resourceVersion").cloned(),
                send_initial_events: flag(query, "sendInitialEvents"),
            };
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .unwrap_or(1800);
            let start = store.watch(&info, ns, opts)?;
            let body = watch::body(
                shared.clone(),
                info.clone(),
                start,
                watch::WatchParams {
                    bookmarks: flag(query, "allowWatchBookmarks"),
                    timeout: Duration::from_secs(timeout),
                    format,
                },
            );
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .map_err(|e| ApiError::internal(e.to_string()))?)
        }
        (&Method::GET, None) => {
            let opts = list_options(query, &info)?;
            let page = store.list(&info, ns, &opts)?;
            let meta = crate::store::list_metadata(&page);
            ok(
                StatusCode::OK,
                present::list(&info, &page.items, meta, format, include),
            )
        }
        (&Method::POST, None) => {
            if info.namespaced && ns.is_none() {
                return Err(ApiError::new(
                    Reason::MethodNotAllowed,
                    format!("{} must be created in a namespace", info.plural),
                ));
            }
            let (v, dups) = parse_object(headers, &read_body(body).await?)?;
            let s = store.create(&info, ns, v, &write_opts(WriteVerb::CreateOrUpdate, dups))?;
            ok(
                StatusCode::CREATED,
                present::one(&s, &info, format, include),
            )
        }
        (&Method::PUT, Some(name)) => {
            let (v, dups) = parse_object(headers, &read_body(body).await?)?;
            let s = store.update(
                &info,
                ns,
                name,
                v,
                status,
                &write_opts(WriteVerb::CreateOrUpdate, dups),
            )?;
            ok(StatusCode::OK, present::one(&s, &info, format, include))
        }
        (&Method::PATCH, Some(name)) => {
            let ct = header_str(headers, header::CONTENT_TYPE).unwrap_or("");
            let kind = PatchKind::from_content_type(ct).ok_or_else(|| {
                ApiError::new(
                    Reason::UnsupportedMediaType,
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"),
                )
            })?;
            let bytes = read_body(body).await?;
            let (v, dups) = if kind == PatchKind::Apply {
                parse_apply(&bytes)?
            } else {
                parse_json(&bytes)?
            };
            let verb = if kind == PatchKind::Apply {
                WriteVerb::Apply
            } else {
                WriteVerb::Patch
            };
            let mut opts = write_opts(verb, dups);
            if kind == PatchKind::Apply {
                opts.manager = query.get("fieldManager").cloned().unwrap_or_default();
            }
            let (s, created) = store.patch(&info, ns, name, kind, &v, status, &opts)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            ok(code, present::one(&s, &info, format, include))
        }
        (&Method::DELETE, Some(name)) => {
            let opts = delete_options(query, &read_body(body).await?)?;
            let s = store.delete(&info, ns, name, &opts)?;
            let still_there = store.get(&info, ns, name).is_ok_and(|cur| cur.rv == s.rv);
            let code = if still_there && !opts.dry_run {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            ok(code, present::one(&s, &info, format, include))
        }
        (&Method::DELETE, None) => {
            let opts = delete_options(query, &read_body(body).await?)?;
            let list = list_options(query, &info)?;
            let items = store.delete_collection(&info, ns, &list, &opts)?;
            let meta = serde_json::json!({"resourceVersion": store.current_rv().to_string()});
            ok(
                StatusCode::OK,
                present::list(&info, &items, meta, format, include),
            )
        }
        _ => Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!("the server does not allow this method on the requested resource ({method})"),
        )),
    }
}

fn negotiate(headers: &HeaderMap) -> ApiResult<Format> {
    let accept = header_str(headers, header::ACCEPT);
    present::negotiate(accept).ok_or_else(|| {
        ApiError::new(
            Reason::NotAcceptable,
            format!("only the following media types are accepted: application/json (kube-sim does not speak protobuf or YAML); got {:?}", accept.unwrap_or("")),
        )
    })
}

fn list_options(query: &HashMap<String, String>, info: &ResourceInfo) -> ApiResult<ListOptions> {
    let limit = match query.get("limit") {
        Some(l) if !l.is_empty() => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?
                .max(0) as usize,
        ),
        _ => None,
    };
    Ok(ListOptions {
        labels: label_selector(query)?,
        fields: field_selector(query, info)?,
        limit,
        continue_token: query.get("continue").cloned().filter(|c| !c.is_empty()),
        resource_version: query.get("resourceVersion").cloned(),
        resource_version_match: query.get("resourceVersionMatch").cloned(),
    })
}
