//! Checks for names and paths the wrapper pastes into shell commands unquoted.
//!
//! The upstream format writes workspace names, volume names, mount paths, env names and
//! the workingDir straight into `rsync`, `podman -v`/`-e` and `cd` lines. Tekton already
//! restricts most of these; checking them here guarantees the generated script means
//! what it says even for a hand-written Task.

use crate::error::Error;

const DNS_LABEL: &str = "use lower-case letters, digits and '-', starting and ending with a \
                         letter or digit (a Kubernetes DNS label)";
const C_IDENTIFIER: &str =
    "use letters, digits and '_', not starting with a digit (a shell variable name)";
const SAFE_PATH: &str = "use letters, digits and . _ / ~ @ % + = : , - plus Tekton references \
                         like $(workspaces.source.path); no spaces, quotes or other shell \
                         characters";

fn unsafe_word(what: &str, value: &str, rule: &'static str) -> Error {
    Error::UnsafeShellWord {
        what: what.to_owned(),
        value: value.to_owned(),
        rule,
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A remote step's name becomes part of a file name in the wrapper.
pub fn step_name(name: &str) -> Result<(), Error> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(unsafe_word("step name", name, DNS_LABEL))
    }
}

/// Workspace names appear in paths and `$(workspaces.<name>.path)`.
pub fn workspace_name(name: &str) -> Result<(), Error> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(unsafe_word("workspace name", name, DNS_LABEL))
    }
}

/// Volume names appear in paths on the build host.
pub fn volume_name(name: &str) -> Result<(), Error> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(unsafe_word("volume name", name, DNS_LABEL))
    }
}

/// Env names appear as `-e NAME="${NAME@Q}"`.
pub fn env_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(unsafe_word("env name", name, C_IDENTIFIER))
    }
}

/// Mount paths and the workingDir appear unquoted in `rsync`, `-v` and `cd`.
pub fn path(what: &str, value: &str) -> Result<(), Error> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/~@%+=:,-".contains(c);
    let mut rest = value;
    let mut ok = !value.is_empty();
    while ok && !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("$(") {
            // A Tekton reference: $(name.with.dots-and_underscores)
            match after.find(')') {
                Some(end)
                    if end > 0
                        && after[..end]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
                {
                    rest = &after[end + 1..];
                }
                _ => ok = false,
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            ok = plain(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if ok {
        Ok(())
    } else {
        Err(unsafe_word(what, value, SAFE_PATH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_real_tasks_use() {
        for p in [
            "/shared",
            "/var/workdir",
            "/mnt/trusted-ca",
            "$(workspaces.source.path)",
            "$(workspaces.source.path)/sub_dir",
            "/etc/pki/entitlement",
        ] {
            assert!(path("p", p).is_ok(), "{p}");
        }
        assert!(env_name("BUILDAH_HTTP_PROXY").is_ok());
        assert!(env_name("_x1").is_ok());
        assert!(step_name("build").is_ok());
        assert!(workspace_name("source-2").is_ok());
    }

    #[test]
    fn rejects_shell_syntax() {
        for p in [
            "",
            "/a b",
            "/a;rm -rf /",
            "/x/$(id",
            "$(a b)",
            "/`id`",
            "/a\"b",
            "/a'b",
            "$HOME",
            "/a|b",
        ] {
            assert!(path("p", p).is_err(), "{p:?}");
        }
        for n in ["", "1X", "A-B", "A B", "A$"] {
            assert!(env_name(n).is_err(), "{n:?}");
        }
        for n in ["", "Build", "-a", "a-", "a_b", "a.b"] {
            assert!(step_name(n).is_err(), "{n:?}");
        }
    }
}
