//! Time in the core: instants are jiff [`Timestamp`]s (the type inside k8s-openapi's
//! `Time`, so creation times arrive without conversion) and spans are
//! [`std::time::Duration`]s, as host-config states them. The core never reads a clock:
//! the shell passes `now` into every decision.
//!
//! The few operations the core needs saturate instead of failing: an instant past
//! jiff's range (year 9999) is as good as never, and a span that would be negative
//! (a clock that stepped back) is no time at all.

use std::time::Duration;

pub use jiff::Timestamp;

/// `at` plus `span`, or the last representable instant.
pub fn after(at: Timestamp, span: Duration) -> Timestamp {
    at.saturating_add(span).unwrap_or(Timestamp::MAX)
}

/// The time from `earlier` to `later`; zero when `later` is not later.
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// `at` without its fraction of a second: the precision of the Unix-seconds
/// annotations the controller writes (`allocation-start-time`).
pub fn whole_second(at: Timestamp) -> Timestamp {
    from_unix_seconds(at.as_second())
}

/// The instant `seconds` after the Unix epoch, clamped to jiff's range.
pub fn from_unix_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(if seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_failing() {
        let t = from_unix_seconds(1_800_000_000);
        assert_eq!(
            after(t, Duration::from_millis(1500)).as_millisecond(),
            1_800_000_001_500
        );
        assert_eq!(
            after(Timestamp::MAX, Duration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(after(t, Duration::MAX), Timestamp::MAX);
        assert_eq!(
            elapsed(t, after(t, Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(elapsed(after(t, Duration::from_secs(3)), t), Duration::ZERO);
        assert_eq!(from_unix_seconds(i64::MAX), Timestamp::MAX);
        assert_eq!(from_unix_seconds(i64::MIN), Timestamp::MIN);
    }

    #[test]
    fn whole_seconds_drop_the_fraction() {
        let t = after(from_unix_seconds(1_800_000_000), Duration::from_millis(999));
        assert_eq!(whole_second(t), from_unix_seconds(1_800_000_000));
    }
}
