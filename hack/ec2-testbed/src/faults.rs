//! Faults the proxy injects, and the pure decision which of them hits a request.

use std::time::Duration;

/// What a fault does to a request it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// Answer with an EC2-style XML error (`<Response><Errors><Error><Code>…`).
    Ec2Error {
        /// The AWS error code.
        code: String,
        /// The message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// Answer with this HTTP status and a plain-text body (no EC2 error code).
    Status(u16),
    /// Wait this long, then carry on (other faults or moto): a slow endpoint.
    Delay(Duration),
    /// Close the connection without answering.
    CloseConnection,
}

/// When a fault hits.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every matching request.
    Always,
    /// The next `n` matching requests, then the fault is gone.
    Next(u32),
    /// Each matching request with this probability, from a seeded generator (the same
    /// seed gives the same sequence).
    Rate {
        /// Between 0 and 1.
        probability: f64,
        /// The generator's seed.
        seed: u64,
    },
}

/// A fault: which EC2 action it applies to, what it does, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The EC2 action (`RunInstances`); `None` applies to every request.
    pub action: Option<String>,
    /// What it does.
    pub effect: FaultEffect,
    /// When it hits.
    pub schedule: Schedule,
}

impl Fault {
    /// `action` fails with EC2 error `code`, with the HTTP status EC2 uses for it
    /// ([`aws_status`]); always, until [`Fault::times`] or [`Fault::rate`] say otherwise.
    pub fn ec2_error(action: &str, code: &str) -> Fault {
        Fault::new(
            action,
            FaultEffect::Ec2Error {
                code: code.to_owned(),
                message: default_message(code),
                status: aws_status(code),
            },
        )
    }

    /// `action` gets a bare HTTP `status` (no EC2 error body).
    pub fn status(action: &str, status: u16) -> Fault {
        Fault::new(action, FaultEffect::Status(status))
    }

    /// `action` is answered only after `delay`.
    pub fn delay(action: &str, delay: Duration) -> Fault {
        Fault::new(action, FaultEffect::Delay(delay))
    }

    /// `action`'s connection is closed without an answer.
    pub fn close_connection(action: &str) -> Fault {
        Fault::new(action, FaultEffect::CloseConnection)
    }

    fn new(action: &str, effect: FaultEffect) -> Fault {
        Fault {
            action: Some(action.to_owned()),
            effect,
            schedule: Schedule::Always,
        }
    }

    /// Applies to every action instead.
    pub fn on_every_action(mut self) -> Fault {
        self.action = None;
        self
    }

    /// Hits only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.schedule = Schedule::Next(n);
        self
    }

    /// Hits each matching request with `probability`, seeded.
    pub fn rate(mut self, probability: f64, seed: u64) -> Fault {
        self.schedule = Schedule::Rate { probability, seed };
        self
    }

    /// Replaces the EC2 error's message.
    pub fn message(mut self, text: &str) -> Fault {
        if let FaultEffect::Ec2Error { message, .. } = &mut self.effect {
            *message = text.to_owned();
        }
        self
    }
}

/// The HTTP status EC2 answers error `code` with: capacity and internal errors 500,
/// throttling and unavailability 503, permissions 403, authentication 401, the rest 400.
pub fn aws_status(code: &str) -> u16 {
    match code {
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientAddressCapacity"
        | "InternalError"
        | "InternalFailure" => 500,
        "RequestLimitExceeded" | "Unavailable" | "ServiceUnavailable" => 503,
        "UnauthorizedOperation" | "Blocked" | "OptInRequired" => 403,
        "AuthFailure" => 401,
        _ => 400,
    }
}

fn default_message(code: &str) -> String {
    match code {
        "InsufficientInstanceCapacity" => {
            "We currently do not have sufficient capacity in the Availability Zone you requested."
                .to_owned()
        }
        "RequestLimitExceeded" => "Request limit exceeded.".to_owned(),
        "UnauthorizedOperation" => "You are not authorized to perform this operation.".to_owned(),
        other => format!("Injected by the ec2-testbed fault proxy: {other}"),
    }
}

/// The body EC2 sends with an error.
pub fn ec2_error_body(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fault in force, with its own state (hits left, generator).
#[derive(Debug)]
pub(crate) struct ActiveFault {
    pub(crate) id: u64,
    fault: Fault,
    remaining: Option<u32>,
    rng: SplitMix64,
}

impl ActiveFault {
    pub(crate) fn new(id: u64, fault: Fault) -> Self {
        let (remaining, seed) = match fault.schedule {
            Schedule::Always => (None, 0),
            Schedule::Next(n) => (Some(n), 0),
            Schedule::Rate { seed, .. } => (None, seed),
        };
        ActiveFault {
            id,
            fault,
            remaining,
            rng: SplitMix64(seed),
        }
    }

    fn hits(&mut self, action: &str) -> bool {
        if self.fault.action.as_deref().is_some_and(|a| a != action) {
            return false;
        }
        match (&self.fault.schedule, &mut self.remaining) {
            (Schedule::Next(_), Some(0)) => false,
            (Schedule::Next(_), Some(left)) => {
                *left -= 1;
                true
            }
            (Schedule::Rate { probability, .. }, _) => self.rng.next_f64() < *probability,
            _ => true,
        }
    }

    fn spent(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// What the faults do to one request: wait `delay`, then answer with `terminal` (or
/// forward to moto when `None`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) delay: Duration,
    pub(crate) terminal: Option<FaultEffect>,
}

/// Applies the faults in force, in the order they were injected, to a request for
/// `action`: delays add up, the first answering fault wins (later ones are not
/// consulted, so they keep their hits). Spent faults are removed.
pub(crate) fn decide(faults: &mut Vec<ActiveFault>, action: &str) -> Decision {
    let mut decision = Decision::default();
    for fault in faults.iter_mut() {
        if decision.terminal.is_some() {
            break;
        }
        if !fault.hits(action) {
            continue;
        }
        match &fault.fault.effect {
            FaultEffect::Delay(d) => decision.delay += *d,
            other => decision.terminal = Some(other.clone()),
        }
    }
    faults.retain(|f| !f.spent());
    decision
}

/// A tiny seeded generator (SplitMix64): reproducible fault sequences.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        // 53 random bits: uniform in [0, 1).
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(faults: Vec<Fault>) -> Vec<ActiveFault> {
        faults
            .into_iter()
            .enumerate()
            .map(|(i, f)| ActiveFault::new(i as u64, f))
            .collect()
    }

    #[test]
    fn statuses_are_the_ones_ec2_uses() {
        assert_eq!(aws_status("InsufficientInstanceCapacity"), 500);
        assert_eq!(aws_status("RequestLimitExceeded"), 503);
        assert_eq!(aws_status("UnauthorizedOperation"), 403);
        assert_eq!(aws_status("AuthFailure"), 401);
        assert_eq!(aws_status("InvalidAMIID.NotFound"), 400);
    }

    #[test]
    fn a_limited_fault_hits_the_next_n_matching_requests_then_goes() {
        let mut faults = active(vec![
            Fault::ec2_error("RunInstances", "InsufficientInstanceCapacity").times(2),
        ]);
        assert_eq!(
            decide(&mut faults, "DescribeInstances"),
            Decision::default()
        );
        for _ in 0..2 {
            let d = decide(&mut faults, "RunInstances");
            assert!(matches!(
                d.terminal,
                Some(FaultEffect::Ec2Error { status: 500, .. })
            ));
        }
        assert!(faults.is_empty(), "spent faults are removed");
        assert_eq!(decide(&mut faults, "RunInstances"), Decision::default());
    }

    #[test]
    fn delays_add_up_and_the_first_answering_fault_wins() {
        let mut faults = active(vec![
            Fault::delay("RunInstances", Duration::from_millis(100)),
            Fault::delay("x", Duration::from_secs(9)).on_every_action(),
            Fault::status("RunInstances", 502).times(1),
            Fault::close_connection("RunInstances").times(1),
        ]);
        let d = decide(&mut faults, "RunInstances");
        assert_eq!(d.delay, Duration::from_millis(9100));
        assert_eq!(d.terminal, Some(FaultEffect::Status(502)));
        // The close fault was not consulted, so it still has its hit.
        let d = decide(&mut faults, "RunInstances");
        assert_eq!(d.terminal, Some(FaultEffect::CloseConnection));
        let d = decide(&mut faults, "RunInstances");
        assert_eq!(d.terminal, None);
        assert_eq!(faults.len(), 2, "the two unlimited delays remain");
    }

    #[test]
    fn a_rate_is_reproducible_from_its_seed_and_near_its_probability() {
        let run = |seed| {
            let mut faults = active(vec![Fault::status("A", 500).rate(0.3, seed)]);
            (0..10_000)
                .map(|_| decide(&mut faults, "A").terminal.is_some())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let hits = a.iter().filter(|h| **h).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
    }

    #[test]
    fn error_bodies_are_ec2_xml_with_escaped_text() {
        let body = ec2_error_body("InvalidParameterValue", "a < b & c", "req-1");
        assert!(body.contains("<Response><Errors><Error><Code>InvalidParameterValue</Code>"));
        assert!(body.contains("<Message>a &lt; b &amp; c</Message>"));
        assert!(body.ends_with("<RequestID>req-1</RequestID></Response>"));
    }
}
