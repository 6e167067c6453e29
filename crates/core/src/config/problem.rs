//! Configuration problems: what is wrong with which key, and what happens because of it.

use std::fmt;

/// How bad a [`Problem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The value is wrong: the host, platform or list entry it belongs to is excluded,
    /// or a global setting falls back to its default (the message says which).
    Error,
    /// The key is ignored (unknown or unused); nothing is excluded because of it.
    Warning,
    /// The configuration is valid, but this controller does not serve it yet
    /// (dynamic and dynamic-pool platforms).
    Unsupported,
}

impl Severity {
    /// Lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`Problem`] is about, so reports can group problems.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A static host (`host.<name>.*`), by the name written in the keys.
    Host(String),
    /// A platform (dynamic settings, or a conflict between strategies), as written.
    Platform(String),
    /// A global key (`local-platforms`, `host-key-checking`, …) or a key that fits nowhere.
    Global,
}

/// One problem found in the host-config data.
///
/// The message says what is wrong, what is expected and what the controller does
/// about it, so it can go unchanged into a log line, an Event or `check-config` output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// What it is about.
    pub subject: Subject,
    /// The ConfigMap key at fault (`host.arm-1.concurrency`).
    pub key: String,
    /// What is wrong, what is expected, and the consequence.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        severity: Severity,
        subject: Subject,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity,
            subject,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.key, self.message)
    }
}
