//! What an EC2 call can fail with, classified for the caller's retry decision.
//!
//! The classification is a pure function of the AWS error code and the HTTP status
//! ([`classify`]), so it is unit-tested without any endpoint.

use std::fmt;

/// Broad reasons an EC2 call fails; [`ErrorKind::retryable`] tells whether trying the
/// same request again later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// EC2 has no capacity for the instance type right now (`InsufficientInstanceCapacity`
    /// and relatives). Retryable: capacity comes back.
    Capacity,
    /// The account's request rate is over EC2's limit (`RequestLimitExceeded`, throttling).
    /// Retryable after a backoff.
    Throttled,
    /// EC2 failed on its side (`InternalError`, `Unavailable`, any 5xx). Retryable.
    Server,
    /// The request did not get an answer: connection refused or reset, DNS, timeout.
    /// Retryable.
    Transport,
    /// The credentials are rejected or lack a permission (`AuthFailure`,
    /// `UnauthorizedOperation`, ...). Not retryable until an admin fixes them.
    Auth,
    /// An account quota is reached (`InstanceLimitExceeded`, `VcpuLimitExceeded`). Not
    /// retryable as such: it clears only when instances end or the quota is raised.
    Quota,
    /// The request names something that does not exist or is invalid (AMI, key pair,
    /// subnet, security group, parameter values). Not retryable: the configuration is wrong.
    InvalidConfig,
    /// The instance id is unknown to EC2 (`InvalidInstanceID.NotFound`). Not retryable.
    NotFound,
    /// The client token was used before with different parameters
    /// (`IdempotentParameterMismatch`). Not retryable: a bug in how tokens are derived.
    IdempotencyMismatch,
    /// The request was refused before it was sent (invalid [`crate::LaunchRequest`],
    /// missing region). Not retryable.
    InvalidRequest,
    /// Any other client error (4xx). Not retryable.
    Other,
}

impl ErrorKind {
    /// Whether sending the same request again later can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Capacity | ErrorKind::Throttled | ErrorKind::Server | ErrorKind::Transport
        )
    }
}

/// Capacity error codes (EC2 answers them with HTTP 500).
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientCapacityOnHost",
    "InsufficientAddressCapacity",
    "InsufficientFreeAddressesInSubnet",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
];

/// Throttling error codes (EC2's own is `RequestLimitExceeded`, with HTTP 503).
const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "RequestExpired",
    "OptInRequired",
    "Blocked",
    "PendingVerification",
];

const QUOTA_CODES: &[&str] = &[
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxIOPSLimitExceeded",
    "VolumeLimitExceeded",
    "ResourceLimitExceeded",
];

/// Classifies an EC2 failure from its error code (when the body had one) and its HTTP
/// status (when a response arrived). A known code decides; otherwise the status does
/// (5xx retryable, 4xx not); with neither, nothing answered: a transport failure.
pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(code) = code {
        // Some endpoints prefix the code with its fault side ("Client.UnauthorizedOperation").
        let code = code
            .strip_prefix("Client.")
            .or_else(|| code.strip_prefix("Server."))
            .unwrap_or(code);
        if CAPACITY_CODES.contains(&code) {
            return ErrorKind::Capacity;
        }
        if THROTTLING_CODES.contains(&code) {
            return ErrorKind::Throttled;
        }
        if SERVER_CODES.contains(&code) {
            return ErrorKind::Server;
        }
        if AUTH_CODES.contains(&code) {
            return ErrorKind::Auth;
        }
        if QUOTA_CODES.contains(&code) {
            return ErrorKind::Quota;
        }
        if code == "IdempotentParameterMismatch" {
            return ErrorKind::IdempotencyMismatch;
        }
        if code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed" {
            return ErrorKind::NotFound;
        }
        if code.starts_with("Invalid")
            || code.starts_with("Missing")
            || code == "Unsupported"
            || code == "UnsupportedOperation"
            || code == "UnknownParameter"
            || code == "ValidationError"
        {
            return ErrorKind::InvalidConfig;
        }
    }
    match status {
        Some(429) => ErrorKind::Throttled,
        Some(s) if s >= 500 => ErrorKind::Server,
        Some(_) => ErrorKind::Other,
        None if code.is_some() => ErrorKind::Other,
        None => ErrorKind::Transport,
    }
}

/// The EC2 API actions this crate calls (the names IAM policies use, after `ec2:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `RunInstances`.
    RunInstances,
    /// `DescribeInstances`.
    DescribeInstances,
    /// `TerminateInstances`.
    TerminateInstances,
}

impl Operation {
    /// The API action's name, as in `ec2:RunInstances`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::RunInstances => "RunInstances",
            Operation::DescribeInstances => "DescribeInstances",
            Operation::TerminateInstances => "TerminateInstances",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed EC2 call: which action, the AWS error code and HTTP status when EC2
/// answered, its classification, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct Ec2Error {
    operation: Operation,
    kind: ErrorKind,
    code: Option<String>,
    status: Option<u16>,
    message: String,
    request_id: Option<String>,
}

impl Ec2Error {
    /// An error from what EC2 (or the transport) reported.
    pub fn new(
        operation: Operation,
        code: Option<String>,
        status: Option<u16>,
        message: impl Into<String>,
        request_id: Option<String>,
    ) -> Self {
        let kind = classify(code.as_deref(), status);
        Ec2Error {
            operation,
            kind,
            code,
            status,
            message: message.into(),
            request_id,
        }
    }

    /// A request refused before sending it.
    pub fn invalid_request(operation: Operation, message: impl Into<String>) -> Self {
        Ec2Error {
            operation,
            kind: ErrorKind::InvalidRequest,
            code: None,
            status: None,
            message: message.into(),
            request_id: None,
        }
    }

    /// The EC2 action that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether sending the same request again later can succeed.
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    /// Whether EC2 does not know the instance id.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// The AWS error code (`InsufficientInstanceCapacity`, ...), when EC2 sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// EC2's message (or the transport's), without the advice.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// EC2's request id, for AWS support.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// A short label for metrics and Events: the AWS error code, or for failures without
    /// one `HTTP<status>`, `Transport` or `InvalidRequest`.
    pub fn label(&self) -> String {
        match (&self.code, self.status, self.kind) {
            (Some(code), _, _) => code.clone(),
            (None, _, ErrorKind::InvalidRequest) => "InvalidRequest".to_owned(),
            (None, Some(status), _) => format!("HTTP{status}"),
            (None, None, _) => "Transport".to_owned(),
        }
    }

    /// What an admin (or the controller) should do about this error.
    pub fn advice(&self) -> String {
        let action = self.operation.as_str();
        let code = self.code.as_deref().unwrap_or_default();
        match self.kind {
            ErrorKind::Capacity => "EC2 has no capacity for this instance type right now; \
                 the launch is retried later (another instance type or subnet/availability \
                 zone avoids it)"
                .to_owned(),
            ErrorKind::Throttled => "EC2 throttles this account's API requests; retried with \
                 backoff (fewer concurrent launches or a longer poll interval lowers the rate)"
                .to_owned(),
            ErrorKind::Server => "EC2 failed on its side; retried later".to_owned(),
            ErrorKind::Transport => "no answer from the EC2 endpoint; check the network path \
                 to it (and AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL when set); retried later"
                .to_owned(),
            ErrorKind::Auth if code.ends_with("UnauthorizedOperation") => {
                let extra = match self.operation {
                    Operation::RunInstances => {
                        " (and ec2:CreateTags for tagging at launch, iam:PassRole when an \
                         instance profile is set)"
                    }
                    _ => "",
                };
                format!(
                    "the AWS credentials lack a permission: allow ec2:{action}{extra} in the \
                     IAM policy of the user or role whose keys are in the platform's AWS Secret"
                )
            }
            ErrorKind::Auth => "AWS rejects the credentials: check access-key-id, \
                 secret-access-key (and session-token) in the platform's AWS Secret, and that \
                 the account may use EC2 in this region"
                .to_owned(),
            ErrorKind::Quota => "an EC2 service quota of the account is reached: raise the \
                 quota in AWS or lower the platform's max-instances"
                .to_owned(),
            ErrorKind::InvalidConfig => {
                format!("EC2 refuses a value of the request: {}", config_hint(code))
            }
            ErrorKind::NotFound => "EC2 does not know this instance id (it may be too new to \
                 be visible yet, or long gone)"
                .to_owned(),
            ErrorKind::IdempotencyMismatch => "the client token was used before for a launch \
                 with other parameters; each launch attempt needs its own token"
                .to_owned(),
            ErrorKind::InvalidRequest => {
                "fix the platform's configuration; nothing was sent to EC2".to_owned()
            }
            ErrorKind::Other => format!(
                "EC2 refused {action}; check the platform's configuration against the message"
            ),
        }
    }

    fn render(&self) -> String {
        let mut text = format!("EC2 {} failed", self.operation);
        match (&self.code, self.status) {
            (Some(code), Some(status)) => text.push_str(&format!(": {code} (HTTP {status})")),
            (Some(code), None) => text.push_str(&format!(": {code}")),
            (None, Some(status)) => text.push_str(&format!(": HTTP {status}")),
            (None, None) => {}
        }
        if !self.message.is_empty() {
            text.push_str(&format!(": {}", self.message));
        }
        text.push_str(&format!("; {}", self.advice()));
        if let Some(id) = &self.request_id {
            text.push_str(&format!(" [request id {id}]"));
        }
        text
    }
}

/// Which configuration setting an `Invalid*` code points at.
fn config_hint(code: &str) -> &'static str {
    let prefixes: &[(&str, &str)] = &[
        (
            "InvalidAMIID",
            "the AMI (ami) does not exist in this region or is not shared with the account",
        ),
        (
            "InvalidKeyPair",
            "the key pair (key-name) does not exist in this region",
        ),
        (
            "InvalidSubnetID",
            "the subnet (subnet-id) does not exist in this region",
        ),
        (
            "InvalidGroup",
            "the security group (security-group / security-group-id) does not exist",
        ),
        (
            "InvalidInstanceType",
            "the instance type (instance-type) is unknown",
        ),
        (
            "InvalidBlockDeviceMapping",
            "the disk settings (disk, iops, throughput) are invalid",
        ),
        (
            "InvalidUserData",
            "the user data (user-data) is invalid or too large (16 KiB)",
        ),
        (
            "InvalidParameterCombination",
            "two settings cannot be combined (e.g. security-group names with a subnet: use security-group-id)",
        ),
        ("InvalidParameter", "a setting has an invalid value"),
        (
            "Unsupported",
            "the instance type is not offered in this availability zone or with these settings",
        ),
        ("Missing", "a required setting is missing"),
    ];
    prefixes
        .iter()
        .find(|(prefix, _)| code.starts_with(prefix))
        .map(|(_, hint)| *hint)
        .unwrap_or("check the platform's configuration against the message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_throttling_and_server_errors_are_retryable() {
        for (code, status, kind) in [
            ("InsufficientInstanceCapacity", 500, ErrorKind::Capacity),
            ("InsufficientHostCapacity", 500, ErrorKind::Capacity),
            ("RequestLimitExceeded", 503, ErrorKind::Throttled),
            ("Throttling", 400, ErrorKind::Throttled),
            ("InternalError", 500, ErrorKind::Server),
            ("Unavailable", 503, ErrorKind::Server),
            ("Server.InternalError", 500, ErrorKind::Server),
        ] {
            let got = classify(Some(code), Some(status));
            assert_eq!(got, kind, "{code}");
            assert!(got.retryable(), "{code}");
        }
    }

    #[test]
    fn configuration_auth_and_quota_errors_are_not_retryable() {
        for (code, kind) in [
            ("InvalidAMIID.NotFound", ErrorKind::InvalidConfig),
            ("InvalidAMIID.Malformed", ErrorKind::InvalidConfig),
            ("InvalidParameterValue", ErrorKind::InvalidConfig),
            ("InvalidParameterCombination", ErrorKind::InvalidConfig),
            ("InvalidKeyPair.NotFound", ErrorKind::InvalidConfig),
            ("MissingParameter", ErrorKind::InvalidConfig),
            ("Unsupported", ErrorKind::InvalidConfig),
            ("UnauthorizedOperation", ErrorKind::Auth),
            ("Client.UnauthorizedOperation", ErrorKind::Auth),
            ("AuthFailure", ErrorKind::Auth),
            ("VcpuLimitExceeded", ErrorKind::Quota),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            (
                "IdempotentParameterMismatch",
                ErrorKind::IdempotencyMismatch,
            ),
            ("SomethingNew", ErrorKind::Other),
        ] {
            let got = classify(Some(code), Some(400));
            assert_eq!(got, kind, "{code}");
            assert!(!got.retryable(), "{code}");
        }
    }

    #[test]
    fn without_a_known_code_the_status_decides() {
        assert_eq!(classify(None, Some(500)), ErrorKind::Server);
        assert_eq!(classify(None, Some(502)), ErrorKind::Server);
        assert_eq!(classify(Some("Weird"), Some(503)), ErrorKind::Server);
        assert_eq!(classify(None, Some(429)), ErrorKind::Throttled);
        assert_eq!(classify(None, Some(404)), ErrorKind::Other);
        assert_eq!(classify(None, None), ErrorKind::Transport);
        assert!(classify(None, None).retryable());
        assert!(!classify(None, Some(403)).retryable());
    }

    #[test]
    fn unauthorized_operation_names_the_missing_permission() {
        let e = Ec2Error::new(
            Operation::RunInstances,
            Some("UnauthorizedOperation".into()),
            Some(403),
            "You are not authorized to perform this operation.",
            Some("req-1".into()),
        );
        let text = e.to_string();
        assert!(text.contains("ec2:RunInstances"), "{text}");
        assert!(text.contains("ec2:CreateTags"), "{text}");
        assert!(text.contains("UnauthorizedOperation (HTTP 403)"), "{text}");
        assert!(text.contains("req-1"), "{text}");
        assert_eq!(e.label(), "UnauthorizedOperation");
        let e = Ec2Error::new(
            Operation::TerminateInstances,
            Some("UnauthorizedOperation".into()),
            Some(403),
            "",
            None,
        );
        assert!(e.to_string().contains("allow ec2:TerminateInstances in"));
    }

    #[test]
    fn labels_name_the_code_or_what_failed() {
        let transport = Ec2Error::new(Operation::DescribeInstances, None, None, "refused", None);
        assert_eq!(transport.label(), "Transport");
        assert!(transport.retryable());
        let bare = Ec2Error::new(Operation::DescribeInstances, None, Some(502), "", None);
        assert_eq!(bare.label(), "HTTP502");
        let invalid = Ec2Error::invalid_request(Operation::RunInstances, "bad tag");
        assert_eq!(invalid.label(), "InvalidRequest");
        assert!(!invalid.retryable());
    }

    #[test]
    fn config_errors_point_at_the_setting() {
        let e = Ec2Error::new(
            Operation::RunInstances,
            Some("InvalidAMIID.NotFound".into()),
            Some(400),
            "The image id '[ami-1]' does not exist",
            None,
        );
        assert!(e.to_string().contains("AMI (ami)"), "{e}");
    }
}
