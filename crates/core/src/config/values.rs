//! Small validators for ConfigMap values. Each error completes the sentence
//! "`<key>`: …" and says what is expected.

use std::net::IpAddr;

/// Parses a decimal integer in `min..=max` (`max` `None`: no upper bound).
pub(crate) fn integer_in_range(raw: &str, min: u64, max: Option<u64>) -> Result<u64, String> {
    let expected = match max {
        Some(max) => format!("expected an integer from {min} to {max}"),
        None => format!("expected an integer of at least {min}"),
    };
    let value = raw.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{value:?} is not a whole number; {expected}"));
    }
    let Ok(number) = value.parse::<u64>() else {
        return Err(format!("{value} is far too large; {expected}"));
    };
    if number < min || max.is_some_and(|max| number > max) {
        return Err(format!("{number} is out of range; {expected}"));
    }
    Ok(number)
}

/// One entry of a comma list, with its 1-based position for messages.
pub(crate) struct ListEntry<'a> {
    pub position: usize,
    pub value: &'a str,
}

/// Splits a comma list, trimming entries. A trailing comma is allowed (the Go
/// controller's ConfigMaps end lists with one); an empty entry elsewhere is reported.
pub(crate) fn comma_list(raw: &str) -> (Vec<ListEntry<'_>>, Vec<usize>) {
    let parts: Vec<&str> = raw.split(',').collect();
    let last = parts.len() - 1;
    let mut entries = Vec::new();
    let mut empty_positions = Vec::new();
    for (index, part) in parts.into_iter().enumerate() {
        let value = part.trim();
        if value.is_empty() {
            if index != last && !raw.trim().is_empty() {
                empty_positions.push(index + 1);
            }
            continue;
        }
        entries.push(ListEntry {
            position: index + 1,
            value,
        });
    }
    (entries, empty_positions)
}

/// A Kubernetes object name (RFC 1123 subdomain), e.g. a Secret name.
pub(crate) fn object_name(value: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a Kubernetes object name: lowercase letters, digits, `-` \
                            and `.`, starting and ending with a letter or digit, at most 253 \
                            characters";
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not valid; {EXPECTED}"))
    }
}

/// An SSH address: an IPv4 or IPv6 literal, or a DNS name.
pub(crate) fn address(value: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected an IPv4 or IPv6 address (without brackets or port) or a \
                            DNS name";
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if value.contains(':') {
        return Err(format!(
            "{value:?} is neither an IP address nor a DNS name (set the port with \
             host.<name>.port); {EXPECTED}"
        ));
    }
    let labels_ok = value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    // A name made of digits and dots only is a mistyped IPv4 address, not a DNS name.
    let looks_numeric = value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if labels_ok && !looks_numeric {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is neither an IP address nor a DNS name; {EXPECTED}"
        ))
    }
}

/// The admin login user: a portable Unix user name.
pub(crate) fn login_user(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid user name; expected letters, digits, `_`, `-` and `.`, \
             not starting with `-` or `.`, at most 32 characters (for example `root`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_must_be_plain_and_in_range() {
        assert_eq!(integer_in_range(" 4 ", 1, Some(8)), Ok(4));
        for (raw, why) in [
            ("0", "out of range"),
            ("9", "out of range"),
            ("-1", "not a whole number"),
            ("+4", "not a whole number"),
            ("4.0", "not a whole number"),
            ("four", "not a whole number"),
            ("", "not a whole number"),
            ("99999999999999999999999", "far too large"),
        ] {
            let err = integer_in_range(raw, 1, Some(8)).expect_err(raw);
            assert!(err.contains(why), "{raw}: {err}");
            assert!(err.contains("expected an integer from 1 to 8"), "{err}");
        }
        assert_eq!(integer_in_range("100000", 1, None), Ok(100000));
        assert!(
            integer_in_range("0", 1, None)
                .unwrap_err()
                .contains("at least 1")
        );
    }

    #[test]
    fn comma_lists_allow_a_trailing_comma_only() {
        let (entries, empty) = comma_list("linux/arm64, local ,localhost,");
        let values: Vec<_> = entries.iter().map(|e| e.value).collect();
        assert_eq!(values, ["linux/arm64", "local", "localhost"]);
        assert!(empty.is_empty());
        let (entries, empty) = comma_list("a,,b");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].position, 3);
        assert_eq!(empty, [2]);
        let (entries, empty) = comma_list("");
        assert!(entries.is_empty() && empty.is_empty());
    }

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "::1",
            "fd00::12",
            "arm-1.build.example.com",
            "host1",
        ] {
            assert!(address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.256",
            "10.0.0",
            "[::1]",
            "10.0.0.1:22",
            "host_1",
            "-host",
            "a..b",
            "",
            "host name",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
        assert!(address("10.0.0.1:22").unwrap_err().contains("port"));
    }

    #[test]
    fn object_names_and_users() {
        assert!(object_name("aws-ssh-key").is_ok());
        assert!(object_name("a.b").is_ok());
        for bad in ["Key", "-a", "a-", "", "a_b"] {
            assert!(object_name(bad).is_err(), "{bad}");
        }
        assert!(login_user("root").is_ok());
        assert!(login_user("ec2-user").is_ok());
        for bad in ["", "-root", "ro ot", "root;id", &"a".repeat(33)] {
            assert!(login_user(bad).is_err(), "{bad}");
        }
    }
}
