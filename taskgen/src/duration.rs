//! Go `time.Duration` text form, as Kubernetes' `metav1.Duration` reads and writes it.
//!
//! A step `timeout: 1h` decodes in Go to a duration and is written back as `1h0m0s`;
//! keeping the parsed value and Go's formatting reproduces that.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in nanoseconds that reads and writes Go's duration syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub i64);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use Go syntax such as 90s, 1h30m or 250ms")]
pub struct DurationError(pub String);

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl GoDuration {
    /// Parses Go's `time.ParseDuration` syntax (`1h2m3.5s`, `-250ms`, `0`).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let err = || DurationError(text.to_owned());
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(GoDuration(0));
        }
        if rest.is_empty() {
            return Err(err());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_part = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(err());
            }
            let unit_len = rest
                .char_indices()
                .find(|(_, c)| *c == '.' || c.is_ascii_digit())
                .map_or(rest.len(), |(i, _)| i);
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(err)?;
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| err())?
            };
            total = total
                .checked_add(whole.checked_mul(scale).ok_or_else(err)?)
                .ok_or_else(err)?;
            // Go adds the fraction scaled by the unit and truncates the remainder.
            let mut divisor: u128 = 1;
            let mut fraction: u128 = 0;
            for digit in frac_part.bytes().take(20) {
                fraction = fraction * 10 + u128::from(digit - b'0');
                divisor *= 10;
            }
            total = total
                .checked_add(fraction * scale / divisor)
                .ok_or_else(err)?;
        }
        let limit = if negative {
            i64::MIN.unsigned_abs() as u128
        } else {
            i64::MAX as u128
        };
        if total > limit {
            return Err(err());
        }
        let value = if negative {
            (total as i128).wrapping_neg() as i64
        } else {
            total as i64
        };
        Ok(GoDuration(value))
    }

    /// Formats like Go's `Duration.String()` (`1h0m0s`, `1.5s`, `250ms`, `0s`).
    pub fn format(self) -> String {
        let negative = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        let mut out = String::new();
        if u < 1_000_000_000 {
            let (prec, unit) = match u {
                0 => return "0s".to_owned(),
                1..=999 => (0, "ns"),
                1_000..=999_999 => (3, "µs"),
                _ => (6, "ms"),
            };
            let (frac, whole) = format_fraction(u, prec);
            out.push_str(&whole.to_string());
            out.push_str(&frac);
            out.push_str(unit);
        } else {
            let (frac, whole) = format_fraction(u, 9);
            u = whole;
            let seconds = format!("{}{}s", u % 60, frac);
            u /= 60;
            if u > 0 {
                let minutes = u % 60;
                u /= 60;
                if u > 0 {
                    out.push_str(&format!("{u}h"));
                }
                out.push_str(&format!("{minutes}m"));
            }
            out.push_str(&seconds);
        }
        if negative {
            out.insert(0, '-');
        }
        out
    }
}

/// Splits `v / 10^prec` into the fraction text (".5", no trailing zeros, empty when
/// zero) and the integer part, as Go's `fmtFrac` does.
fn format_fraction(v: u64, prec: u32) -> (String, u64) {
    let divisor = 10u64.pow(prec);
    let (whole, frac) = (v / divisor, v % divisor);
    if frac == 0 {
        return (String::new(), whole);
    }
    let digits = format!("{:0width$}", frac, width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), whole)
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.format())
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        GoDuration::parse(text).expect("valid").format()
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(round_trip("1h"), "1h0m0s");
        assert_eq!(round_trip("90m"), "1h30m0s");
        assert_eq!(round_trip("1.5s"), "1.5s");
        assert_eq!(round_trip("250ms"), "250ms");
        assert_eq!(round_trip("1500us"), "1.5ms");
        assert_eq!(round_trip("2µs"), "2µs");
        assert_eq!(round_trip("10ns"), "10ns");
        assert_eq!(round_trip("0"), "0s");
        assert_eq!(round_trip("-2m3s"), "-2m3s");
        assert_eq!(round_trip("61s"), "1m1s");
        assert_eq!(round_trip(".5h"), "30m0s");
    }

    proptest::proptest! {
        #[test]
        fn formatted_durations_parse_back(nanos in proptest::num::i64::ANY) {
            let text = GoDuration(nanos).format();
            proptest::prop_assert_eq!(GoDuration::parse(&text), Ok(GoDuration(nanos)));
        }

        #[test]
        fn parsing_never_panics(text in "[-+0-9.a-zµ]{0,40}") {
            let _ = GoDuration::parse(&text);
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "60", "1d", "h", "1.h2", "-", "1e3s", "9999999999999h"] {
            assert!(
                GoDuration::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
