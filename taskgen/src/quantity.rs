//! Kubernetes resource quantities in the form Go writes them back.
//!
//! Go decodes `cpu: 1000m` into a `resource.Quantity` and writes `cpu: "1"`; a quantity
//! that is already canonical (`4600m`, `8Gi`) keeps its original spelling. This is
//! apimachinery's `ParseQuantity` + `Quantity.String()`, on 128-bit integers.

/// Why a quantity was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid resource quantity {0:?}: use a number with an optional suffix such as 500m, 2, 1.5Gi or 1e3"
)]
pub struct QuantityError(pub String);

enum Suffix {
    /// 10^exp, written with SI letters.
    DecimalSi(i32),
    /// 2^exp (exp a multiple of 10), written Ki…Ei.
    BinarySi(u32),
    /// 10^exp, written `eN`.
    Exponent(i32),
}

fn interpret(suffix: &str) -> Option<Suffix> {
    let decimal = |e| Some(Suffix::DecimalSi(e));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Some(Suffix::BinarySi(10)),
        "Mi" => Some(Suffix::BinarySi(20)),
        "Gi" => Some(Suffix::BinarySi(30)),
        "Ti" => Some(Suffix::BinarySi(40)),
        "Pi" => Some(Suffix::BinarySi(50)),
        "Ei" => Some(Suffix::BinarySi(60)),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            exp.parse().ok().map(Suffix::Exponent)
        }
    }
}

/// Returns the text Go writes for the quantity `text`.
pub fn canonical(text: &str) -> Result<String, QuantityError> {
    let err = || QuantityError(text.to_owned());
    let b = text.as_bytes();
    let mut pos = 0;
    let negative = match b.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        None => return Err(err()),
        _ => false,
    };
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &text[num_start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &text[start..pos];
    }
    if pos == 0 || (pos == 1 && (negative || b[0] == b'+')) {
        return Err(err());
    }
    let suffix = interpret(&text[pos..]).ok_or_else(err)?;
    let digits = format!("{num}{denom}");
    let denom_len = denom.len() as i32;

    // Go keeps the input text when its fast path finds it already canonical.
    match suffix {
        Suffix::DecimalSi(e) | Suffix::Exponent(e) => {
            let scale = e - denom_len;
            if digits.len() <= 18
                && scale >= -9
                && scale % 3 == 0
                && !digits.ends_with("000")
                && !digits.starts_with('0')
            {
                return Ok(text.to_owned());
            }
        }
        Suffix::BinarySi(e) => {
            let precision = 15 - num.len() as i64 - i64::from(e) * 3 / 10 - 1;
            if denom.is_empty() && precision >= 0 {
                let value: i64 = digits.parse().map_err(|_| err())?;
                if e % 10 == 0 && value & 0x07 != 0 && value.checked_mul(1 << e).is_some() {
                    return Ok(text.to_owned());
                }
            }
        }
    }

    // Exact value as unscaled × 10^scale, rounded up to nano precision.
    let unscaled: i128 = digits.parse().map_err(|_| err())?;
    let (mut unscaled, mut scale, binary) = match suffix {
        Suffix::DecimalSi(e) => (unscaled, e - denom_len, false),
        Suffix::Exponent(e) => (unscaled, e - denom_len, false),
        Suffix::BinarySi(e) => (
            unscaled.checked_mul(1i128 << e).ok_or_else(err)?,
            -denom_len,
            true,
        ),
    };
    if scale < -9 {
        let divisor = 10i128.checked_pow((-9 - scale) as u32).ok_or_else(err)?;
        unscaled = unscaled / divisor + i128::from(unscaled % divisor != 0);
        scale = -9;
    }
    if unscaled == 0 {
        return Ok("0".to_owned());
    }
    let sign = if negative { "-" } else { "" };

    // BinarySI stays binary only for whole values of at least 1024.
    if binary {
        let whole = if scale >= 0 {
            unscaled.checked_mul(10i128.checked_pow(scale as u32).ok_or_else(err)?)
        } else {
            let d = 10i128.pow((-scale) as u32);
            (unscaled % d == 0).then_some(unscaled / d)
        };
        if let Some(mut whole) = whole.filter(|w| *w >= 1024) {
            let mut power = 0;
            while power < 6 && whole % 1024 == 0 {
                whole /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return Ok(format!("{sign}{whole}{suffix}"));
        }
    }

    while unscaled % 10 == 0 {
        unscaled /= 10;
        scale += 1;
    }
    while scale.rem_euclid(3) != 0 {
        unscaled = unscaled.checked_mul(10).ok_or_else(err)?;
        scale -= 1;
    }
    let suffix = match suffix {
        Suffix::Exponent(_) if scale == 0 => String::new(),
        Suffix::Exponent(_) => format!("e{scale}"),
        _ => match scale {
            -9 => "n".into(),
            -6 => "u".into(),
            -3 => "m".into(),
            0 => String::new(),
            3 => "k".into(),
            6 => "M".into(),
            9 => "G".into(),
            12 => "T".into(),
            15 => "P".into(),
            18 => "E".into(),
            // Beyond exa Go's formatter has no suffix; keep what the author wrote.
            _ => return Ok(text.to_owned()),
        },
    };
    Ok(format!("{sign}{unscaled}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_spellings_are_kept() {
        for q in [
            "4600m", "100m", "8Gi", "4Gi", "256Mi", "1", "1e3", "12e6", "1500", "2k", "0", "+1",
            "01",
        ] {
            assert_eq!(canonical(q).unwrap(), q, "{q}");
        }
    }

    #[test]
    fn other_spellings_are_canonicalised() {
        for (from, to) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1e4", "10e3"),
            ("0.1n", "1n"),
            ("0m", "0"),
            ("-1000m", "-1"),
            ("2048", "2048"),
            ("1.0", "1"),
        ] {
            assert_eq!(canonical(from).unwrap(), to, "{from}");
        }
    }

    proptest::proptest! {
        /// Never panics, and writing a canonical quantity again changes nothing.
        #[test]
        fn canonical_is_idempotent(text in "[-+]?[0-9]{0,25}(\\.[0-9]{0,12})?(|n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[-+]?[0-9]{1,2})") {
            if let Ok(once) = canonical(&text) {
                proptest::prop_assert_eq!(canonical(&once), Ok(once.clone()));
            }
        }
    }

    #[test]
    fn invalid_quantities_are_rejected() {
        for q in [
            "",
            "abc",
            "1x",
            "1KiB",
            "--1",
            "+",
            "1e",
            "1 Gi",
            "$(params.CPU)",
        ] {
            assert!(canonical(q).is_err(), "{q:?}");
        }
    }
}
