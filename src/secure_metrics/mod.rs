//! `/metrics` over HTTPS for authorized readers only, as a kubebuilder controller serves
//! it with controller-runtime's secure serving (what the Konflux ServiceMonitor expects):
//! TLS with a mounted or self-signed certificate ([`tls`]), a bearer token authenticated
//! by a TokenReview and authorized by a SubjectAccessReview for `get` on the URL
//! `/metrics` ([`access`] decides, [`reviews`] asks the API server).

pub mod access;
mod listener;
pub mod reviews;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use listener::TlsListener;

use access::Verdict;
use reviews::KubeReviewer;

/// An error and its sources, `: `-separated (one log line that says why).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Puts every route of `app` behind authentication and authorization.
pub fn guard(app: Router, reviewer: Arc<KubeReviewer>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(reviewer, check_access))
}

async fn check_access(
    State(reviewer): State<Arc<KubeReviewer>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let verdict = verdict(
        &reviewer,
        header,
        request.method().as_str(),
        request.uri().path(),
    )
    .await;
    if verdict == Verdict::Serve {
        return next.run(request).await;
    }
    let (code, body) = verdict.response();
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn verdict(
    reviewer: &KubeReviewer,
    header: Option<&str>,
    method: &str,
    path: &str,
) -> Verdict {
    let Some(token) = access::bearer_token(header) else {
        return Verdict::Unauthorized;
    };
    let user = match reviewer.authenticate(token).await {
        Ok(Some(user)) => user,
        Ok(None) => return Verdict::Unauthorized,
        Err(e) => {
            tracing::warn!(error = %chain(&e), "metrics: authentication failed");
            return Verdict::AuthenticationFailed;
        }
    };
    match reviewer.authorize(&user, &access::verb(method), path).await {
        Ok(true) => Verdict::Serve,
        Ok(false) => {
            tracing::debug!(user = %user.name, path, "metrics: access denied");
            Verdict::Forbidden { user: user.name }
        }
        Err(e) => {
            tracing::warn!(user = %user.name, error = %chain(&e), "metrics: authorization failed");
            Verdict::AuthorizationFailed { user: user.name }
        }
    }
}
