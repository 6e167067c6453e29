//! Would a plain (unquoted) scalar be read back as a string?
//!
//! This is go-yaml v2's `resolve("", s)` plus its base-60 float check, which decide
//! whether the Go tool writes a string plain or double-quoted: `0.12.0` stays plain,
//! `"0.1"`, `"true"`, `""` and `"2024-11-13T00:00:00Z"` are quoted.

use std::sync::LazyLock;

use regex::Regex;

static YAML_STYLE_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("static regex")
});
static BASE60_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").expect("static regex")
});

/// Words go-yaml v2 resolves to booleans, null, infinities, NaN or the merge key.
const RESERVED: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no", "No",
    "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null", "NULL", ".nan",
    ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
    "<<",
];

/// True when go-yaml v2 may write `s` as a plain scalar because reading it back yields
/// the same string (not a bool, null, number, timestamp or base-60 float).
pub fn plain_reads_as_string(s: &str) -> bool {
    resolves_to_string(s) && !is_base60_float(s)
}

fn is_base60_float(s: &str) -> bool {
    match s.as_bytes().first() {
        Some(c) if (*c == b'+' || *c == b'-' || c.is_ascii_digit()) && s.contains(':') => {
            BASE60_FLOAT.is_match(s)
        }
        _ => false,
    }
}

fn resolves_to_string(s: &str) -> bool {
    if RESERVED.contains(&s) {
        return false;
    }
    match s.as_bytes()[0] {
        b'.' => !is_dot_float(s),
        b'+' | b'-' | b'0'..=b'9' => {
            if looks_like_timestamp(s) {
                return false;
            }
            let plain = s.replace('_', "");
            match parse_int(&plain) {
                IntSyntax::Valid => false,
                IntSyntax::OutOfRange => false,
                IntSyntax::Invalid => !is_float(&plain),
            }
        }
        _ => true,
    }
}

/// `strconv.ParseFloat` on a string starting with `.`: decimal forms only.
fn is_dot_float(s: &str) -> bool {
    let rest = &s[1..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let exp = &rest[digits..];
    exp.is_empty() || is_exponent(exp)
}

fn is_exponent(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

fn is_float(plain: &str) -> bool {
    YAML_STYLE_FLOAT.is_match(plain) && plain.parse::<f64>().is_ok_and(f64::is_finite)
}

enum IntSyntax {
    Valid,
    OutOfRange,
    Invalid,
}

/// Go's `ParseInt(s, 0, 64)`, falling back to `ParseUint` and `big.Int` for numbers
/// that are well-formed but too large (all of which resolve to `!!int`).
fn parse_int(s: &str) -> IntSyntax {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.is_empty() {
        return IntSyntax::Invalid;
    }
    let (radix, digits) = match unsigned.as_bytes() {
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &unsigned[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &unsigned[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &unsigned[2..]),
        [b'0', ..] => (8, &unsigned[1..]),
        _ => (10, unsigned),
    };
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return IntSyntax::Invalid;
    }
    if digits.is_empty() && radix != 8 {
        return IntSyntax::Invalid;
    }
    match u128::from_str_radix(if digits.is_empty() { "0" } else { digits }, radix) {
        Ok(v) if v <= u128::from(u64::MAX) => IntSyntax::Valid,
        _ => IntSyntax::OutOfRange,
    }
}

/// go-yaml v2 `parseTimestamp`: `YYYY-M-D`, `YYYY-M-DTh:m:s[.frac](Z|±hh:mm)` (also
/// lower-case `t`) and `YYYY-M-D h:m:s[.frac]`, with Go's range checks.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut p = Cursor { b, i: 5 };
    let year: u32 = s[..4].parse().unwrap_or(0);
    let Some(month) = p.num(1, 2) else {
        return false;
    };
    if !p.eat(b'-') {
        return false;
    }
    let Some(day) = p.num(1, 2) else {
        return false;
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if p.done() {
        return true;
    }
    let zoned = if p.eat(b'T') || p.eat(b't') {
        true
    } else if p.eat(b' ') {
        false
    } else {
        return false;
    };
    let Some(hour) = p.num(1, 2) else {
        return false;
    };
    if !p.eat(b':') {
        return false;
    }
    let Some(minute) = p.num(1, 2) else {
        return false;
    };
    if !p.eat(b':') {
        return false;
    }
    let Some(second) = p.num(1, 2) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    if (p.eat(b'.') || p.eat(b',')) && p.num(1, usize::MAX).is_none() {
        return false;
    }
    if !zoned {
        return p.done();
    }
    if p.eat(b'Z') {
        return p.done();
    }
    if p.eat(b'+') || p.eat(b'-') {
        let (Some(h), true, Some(m)) = (p.num(2, 2), p.eat(b':'), p.num(2, 2)) else {
            return false;
        };
        return h <= 23 && m <= 59 && p.done();
    }
    false
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Reads `min..=max` digits; returns their value (saturating) or None.
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let len = self.i - start;
        if len < min {
            self.i = start;
            return None;
        }
        Some(self.b[start..self.i].iter().fold(0u32, |acc, d| {
            acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        }))
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::plain_reads_as_string as plain;

    #[test]
    fn strings_that_stay_plain() {
        for s in [
            "0.12.0",
            "0.12.1",
            "image-build, konflux",
            "docker",
            "4600m",
            "8Gi",
            "$(params.IMAGE)",
            "./Dockerfile",
            ".",
            "-",
            "1.2.3-rc1",
            "2024-13-01",
            "2024-02-30",
            "12:70",
            "0x",
            "08a",
            "1e400",
            "ca-bundle.crt",
        ] {
            assert!(plain(s), "{s:?} should stay plain");
        }
    }

    #[test]
    fn strings_that_must_be_quoted() {
        for s in [
            "",
            "~",
            "null",
            "true",
            "False",
            "yes",
            "on",
            "N",
            "1",
            "0",
            "-7",
            "+3",
            "0.1",
            "1e3",
            ".5",
            "1_000",
            "0x1F",
            "0o17",
            "0b101",
            "017",
            "08",
            "0.10",
            "99999999999999999999999",
            "2024-11-13T00:00:00Z",
            "2024-11-13",
            "2024-1-2",
            "2024-11-13 10:00:00",
            "2024-11-13t10:00:00.5+01:00",
            "1:20",
            "-1:20:30.5",
            ".inf",
            "<<",
        ] {
            assert!(!plain(s), "{s:?} should be quoted");
        }
    }
}
