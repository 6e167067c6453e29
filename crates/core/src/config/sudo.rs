//! `host.<name>.sudo-commands`: the commands a build user may run with sudo.
//!
//! Syntax: commands separated by commas or line breaks (so a YAML block scalar with
//! one command per line works too); blanks around them are ignored, and so are empty
//! entries such as a trailing comma. Each command is an absolute path followed by
//! optional arguments separated by spaces:
//!
//! ```text
//! /usr/bin/podman, /usr/bin/systemctl restart podman
//! ```
//!
//! sudoers semantics apply: a command without arguments may be run with any
//! arguments; a command with arguments only with exactly those. Paths may contain
//! letters, digits and `. _ + - /`; arguments also `@ % = :`. Everything else (quotes,
//! wildcards, `\`, `!`, `#`, shell syntax) is refused, so the list can be written into
//! a sudoers file without any quoting question.

use std::fmt;

/// Why a value is not a valid sudo command list; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSudoCommand(pub String);

/// One command a build user may run with sudo.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SudoCommand {
    /// Absolute path of the program.
    pub path: String,
    /// Exact arguments; empty means any arguments.
    pub args: Vec<String>,
}

/// Longest accepted command line; longer ones are surely a paste mistake.
const MAX_COMMAND_LEN: usize = 1024;

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'/')
}

fn arg_char(b: u8) -> bool {
    path_char(b) || matches!(b, b'@' | b'%' | b'=' | b':')
}

impl SudoCommand {
    /// Parses one command (`/usr/bin/podman` or `/usr/bin/systemctl restart podman`).
    pub fn parse(entry: &str) -> Result<Self, InvalidSudoCommand> {
        Self::parse_entry(entry).map_err(InvalidSudoCommand)
    }

    fn parse_entry(entry: &str) -> Result<Self, String> {
        if entry.len() > MAX_COMMAND_LEN {
            return Err(format!(
                "a command is {} characters long; at most {MAX_COMMAND_LEN} are accepted",
                entry.len()
            ));
        }
        let mut words = entry.split([' ', '\t']).filter(|w| !w.is_empty());
        let path = words.next().unwrap_or_default();
        if !path.starts_with('/') {
            return Err(format!(
                "{path:?} is not an absolute path; write the full path of the program, e.g. \
                 /usr/bin/podman"
            ));
        }
        if let Some(bad) = path.bytes().find(|b| !path_char(*b)) {
            return Err(format!(
                "{path:?} contains {:?}; a path may contain only letters, digits and `. _ + - /`",
                char::from(bad)
            ));
        }
        if path.ends_with('/')
            || path
                .split('/')
                .skip(1)
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!(
                "{path:?} is not a plain path to a program (no `//`, `.` or `..` parts, no \
                 trailing `/`)"
            ));
        }
        let mut args = Vec::new();
        for arg in words {
            if let Some(bad) = arg.bytes().find(|b| !arg_char(*b)) {
                return Err(format!(
                    "argument {arg:?} of {path} contains {:?}; arguments may contain only \
                     letters, digits and `. _ + - / @ % = :`",
                    char::from(bad)
                ));
            }
            args.push(arg.to_owned());
        }
        Ok(SudoCommand {
            path: path.to_owned(),
            args,
        })
    }

    /// Parses a whole `sudo-commands` value (see the module docs for the syntax).
    pub fn parse_list(value: &str) -> Result<Vec<Self>, InvalidSudoCommand> {
        let mut commands = Vec::new();
        for (index, entry) in value.split([',', '\n']).enumerate() {
            let entry = entry.trim_matches([' ', '\t', '\r']);
            if entry.is_empty() {
                continue;
            }
            let command = SudoCommand::parse_entry(entry).map_err(|why| {
                InvalidSudoCommand(format!("command {} ({entry:?}): {why}", index + 1))
            })?;
            if !commands.contains(&command) {
                commands.push(command);
            }
        }
        Ok(commands)
    }

    /// The command in sudoers `Cmnd` syntax, with the characters sudoers treats
    /// specially (`=` and `:`) escaped.
    pub fn sudoers_spec(&self) -> String {
        let mut spec = self.path.clone();
        for arg in &self.args {
            spec.push(' ');
            for c in arg.chars() {
                if matches!(c, '=' | ':') {
                    spec.push('\\');
                }
                spec.push(c);
            }
        }
        spec
    }
}

impl fmt::Display for SudoCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_and_lines() {
        let list = SudoCommand::parse_list(
            " /usr/bin/podman, /usr/bin/systemctl  restart podman,\n/usr/bin/buildah\n,",
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].path, "/usr/bin/podman");
        assert!(list[0].args.is_empty());
        assert_eq!(list[1].args, ["restart", "podman"]);
        assert_eq!(list[1].to_string(), "/usr/bin/systemctl restart podman");
        assert_eq!(list[2].path, "/usr/bin/buildah");
        assert!(SudoCommand::parse_list("").unwrap().is_empty());
        assert!(SudoCommand::parse_list(" , ").unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_dropped() {
        let list = SudoCommand::parse_list("/usr/bin/podman,/usr/bin/podman").unwrap();
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn refuses_anything_that_could_escape_sudoers_or_a_shell() {
        let cases = [
            ("podman", "not an absolute path"),
            ("ALL", "not an absolute path"),
            ("/usr/bin/*", "contains '*'"),
            ("/usr/bin/podman run *", "contains '*'"),
            ("/usr/bin/../bin/sh", "not a plain path"),
            ("/usr/bin/", "not a plain path"),
            ("/usr//bin/sh", "not a plain path"),
            ("/usr/bin/rm -rf \"/\"", "contains '\"'"),
            ("/bin/sh -c id;id", "contains ';'"),
            ("/bin/echo $(id)", "contains '$'"),
            ("/bin/true \\", "contains '\\\\'"),
            ("/bin/true !x", "contains '!'"),
            ("/bin/true #x", "contains '#'"),
        ];
        for (input, why) in cases {
            let err = SudoCommand::parse_list(input).expect_err(input).0;
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.starts_with("command 1"), "{err}");
        }
        let long = format!("/bin/{}", "a".repeat(MAX_COMMAND_LEN));
        assert!(SudoCommand::parse(&long).unwrap_err().0.contains("at most"));
        let err = SudoCommand::parse_list("/usr/bin/podman, ALL")
            .unwrap_err()
            .0;
        assert!(err.starts_with("command 2 (\"ALL\")"), "{err}");
    }

    #[test]
    fn sudoers_spec_escapes_special_characters() {
        let cmd = SudoCommand::parse("/usr/bin/env FOO=bar a:b").unwrap();
        assert_eq!(cmd.sudoers_spec(), "/usr/bin/env FOO\\=bar a\\:b");
        assert_eq!(cmd.to_string(), "/usr/bin/env FOO=bar a:b");
    }
}
