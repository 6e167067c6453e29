//! API errors as the real API server reports them: a `metav1.Status` with a reason and code.

use serde_json::{Value, json};

/// The `reason` values of `metav1.Status` that kube-sim produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 406
    NotAcceptable,
    /// 409, the object already exists
    AlreadyExists,
    /// 409, stale resourceVersion, failed precondition or apply conflict
    Conflict,
    /// 410, the requested resourceVersion was compacted (watch and list)
    Expired,
    /// 415
    UnsupportedMediaType,
    /// 422
    Invalid,
    /// 500
    InternalError,
    /// 504 (e.g. a list at a resourceVersion the server has not reached)
    Timeout,
    /// 413
    RequestEntityTooLarge,
    /// 500 without a reason: an error the API server did not turn into a `Status` (the
    /// reason field is empty).
    Unknown,
}

impl Reason {
    /// The HTTP status code the real API server pairs with this reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::InternalError => 500,
            Reason::Timeout => 504,
            Reason::RequestEntityTooLarge => 413,
            Reason::Unknown => 500,
        }
    }

    /// The reason string of `metav1.Status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::InternalError => "InternalError",
            Reason::Timeout => "Timeout",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::Unknown => "",
        }
    }
}

/// An error answer of the API: becomes a `metav1.Status` body with the matching HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct ApiError {
    /// Why the request failed.
    pub reason: Reason,
    /// Human-readable message, worded like the real API server's.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), when known.
    pub details: Option<Box<Details>>,
}

/// `metav1.StatusDetails`: which object the error is about.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details {
    /// Object name.
    pub name: String,
    /// API group ("" for core).
    pub group: String,
    /// Resource (plural) — the real server puts the resource in `kind` for most errors.
    pub kind: String,
    /// `causes`: one per invalid field.
    pub causes: Vec<Cause>,
}

/// `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: String,
    /// The error without the field (`Required value`).
    pub message: String,
    /// The field path (`status.podName`).
    pub field: String,
}

impl Cause {
    /// Splits a `field.Error` text (`status.podName: Required value`) into a cause.
    pub fn from_field_error(text: &str) -> Cause {
        let (field, message) = text.split_once(": ").unwrap_or(("", text));
        let reason = [
            ("Required value", "FieldValueRequired"),
            ("Invalid value", "FieldValueInvalid"),
            ("Unsupported value", "FieldValueNotSupported"),
            ("Duplicate value", "FieldValueDuplicate"),
            ("Forbidden", "FieldValueForbidden"),
            ("Too long", "FieldValueTooLong"),
            ("Too many", "FieldValueTooMany"),
            ("Not found", "FieldValueNotFound"),
        ]
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, r)| r);
        Cause {
            reason: reason.to_string(),
            message: message.to_string(),
            field: field.to_string(),
        }
    }
}

/// Result alias for store and HTTP operations.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error without details.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// Attaches `details`.
    pub fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            causes: Vec::new(),
        }));
        self
    }

    /// `<resource>[.<group>] "<name>" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// `<resource>[.<group>] "<name>" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// The optimistic-concurrency conflict of an update with a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// The standard stale-resourceVersion conflict.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `<Kind>[.<group>] "<name>" is invalid: <field>: <problem>`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[String]) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let text = if causes.len() == 1 {
            causes[0].clone()
        } else {
            format!("[{}]", causes.join(", "))
        };
        let mut e = ApiError::new(
            Reason::Invalid,
            format!("{what} \"{name}\" is invalid: {text}"),
        )
        .with_details(group, kind, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes.iter().map(|c| Cause::from_field_error(c)).collect();
        }
        e
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(Reason::BadRequest, message)
    }

    /// 500 with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Reason::InternalError, message)
    }

    /// HTTP code of this error.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if self.reason == Reason::Unknown {
            status.as_object_mut().map(|m| m.remove("reason"));
        }
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), d.name.clone().into());
            }
            if !d.group.is_empty() {
                details.insert("group".into(), d.group.clone().into());
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), d.kind.clone().into());
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `resource.group`, or just `resource` for the core group.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_the_api_server() {
        let e = ApiError::not_found("tekton.dev", "taskruns", "x");
        assert_eq!(e.message, "taskruns.tekton.dev \"x\" not found");
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["kind"], "taskruns");
        let core = ApiError::not_found("", "configmaps", "y");
        assert_eq!(core.message, "configmaps \"y\" not found");
    }

    #[test]
    fn conflict_and_invalid_codes() {
        assert_eq!(ApiError::stale("", "configmaps", "a").code(), 409);
        let inv = ApiError::invalid(
            "",
            "ConfigMap",
            "A",
            &["metadata.name: Invalid value".into()],
        );
        assert_eq!(inv.code(), 422);
        assert!(inv.message.starts_with("ConfigMap \"A\" is invalid: "));
        let s = inv.to_status();
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        let req = Cause::from_field_error("status.podName: Required value");
        assert_eq!(
            (
                req.reason.as_str(),
                req.field.as_str(),
                req.message.as_str()
            ),
            ("FieldValueRequired", "status.podName", "Required value")
        );
    }
}
