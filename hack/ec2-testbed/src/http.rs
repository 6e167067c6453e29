//! One HTTP/1.1 request on its own connection: enough for a local server (moto closes
//! every connection after its answer anyway).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Sends `request` (origin-form URI, Host header set by the caller) to `addr` and reads
/// the whole answer.
pub(crate) async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Response<Bytes>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    // The connection task ends by itself when the server closes or the sender drops.
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request to {addr}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("HTTP body from {addr}: {e}"))?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// A `POST /` with a form body, the way AWS query APIs are called, signed for
/// `service` just enough for moto to route it (moto does not check signatures).
pub(crate) fn query_request(addr: SocketAddr, service: &str, form: &str) -> Request<Full<Bytes>> {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=testbed/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    let mut request = Request::new(Full::new(Bytes::from(form.to_owned())));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = hyper::Uri::from_static("/");
    let headers = request.headers_mut();
    let host = addr.to_string();
    if let Ok(value) = host.parse() {
        headers.insert(hyper::header::HOST, value);
    }
    if let Ok(value) = authorization.parse() {
        headers.insert(hyper::header::AUTHORIZATION, value);
    }
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request
}

/// A bodiless request for `path`.
pub(crate) fn plain_request(
    addr: SocketAddr,
    method: hyper::Method,
    path: &'static str,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() = method;
    *request.uri_mut() = hyper::Uri::from_static(path);
    if let Ok(value) = addr.to_string().parse() {
        request.headers_mut().insert(hyper::header::HOST, value);
    }
    request
}
