//! What a provisioning run writes on the host, built and validated before any I/O.
//!
//! Everything that reaches the host from a TaskRun or the ConfigMap passes through here:
//! the public key is re-encoded (no options, no comment), the expiry is formatted from a
//! number, sudo commands are checked against a strict character set. The remote script
//! receives the result on stdin and never interprets it as shell code.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ssh_key::PublicKey;

use crate::config::{SudoCommand, UserLimits};
use crate::naming::UserName;

/// A provisioning request that cannot be sent to a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The key expiry is before 1970 or after 9999.
    #[error("key expiry {0:?} is outside 1970..=9999; check user-key-lifetime")]
    ExpiryOutOfRange(SystemTime),
    /// The public key cannot be encoded.
    #[error("cannot encode the build user's public key: {0}")]
    PublicKey(String),
}

/// Everything needed to create (or re-key) one build user on a host.
#[derive(Clone, PartialEq, Eq)]
pub struct ProvisionRequest {
    user: UserName,
    authorized_key: String,
    sudoers: String,
    expires_at: SystemTime,
    limits: UserLimits,
}

impl ProvisionRequest {
    /// Validates and renders a request: `public_key` goes into `authorized_keys` with
    /// `expiry-time` set to `expires_at` (UTC); `sudo_commands` (possibly empty) become
    /// the user's sudoers rule. The user gets the default [`UserLimits`]; see
    /// [`ProvisionRequest::with_limits`].
    pub fn new(
        user: UserName,
        public_key: &PublicKey,
        expires_at: SystemTime,
        sudo_commands: &[SudoCommand],
    ) -> Result<Self, InvalidRequest> {
        let authorized_key = authorized_keys_line(public_key, expires_at)?;
        let sudoers = sudoers_rule(&user, sudo_commands);
        Ok(ProvisionRequest {
            user,
            authorized_key,
            sudoers,
            expires_at,
            limits: UserLimits::default(),
        })
    }

    /// The same request with the host's build-user limits.
    #[must_use]
    pub fn with_limits(mut self, limits: UserLimits) -> Self {
        self.limits = limits;
        self
    }

    /// What the user may take from the host.
    pub fn limits(&self) -> UserLimits {
        self.limits
    }

    /// The build user.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// When the key stops being accepted by the host's sshd.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The `authorized_keys` line written for the user.
    pub fn authorized_key(&self) -> &str {
        &self.authorized_key
    }

    /// The sudoers file written for the user; empty when it gets no sudo.
    pub fn sudoers(&self) -> &str {
        &self.sudoers
    }

    /// The provisioning script's stdin: the `authorized_keys` line, then the sudoers
    /// file (possibly nothing).
    pub fn stdin(&self) -> Vec<u8> {
        format!("{}\n{}", self.authorized_key, self.sudoers).into_bytes()
    }
}

impl fmt::Debug for ProvisionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("sudo", &!self.sudoers.is_empty())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// `expiry-time="YYYYMMDDHHMMSSZ" <key>`: the key without its comment, valid until
/// `expires_at` (UTC, enforced by sshd).
pub fn authorized_keys_line(
    public_key: &PublicKey,
    expires_at: SystemTime,
) -> Result<String, InvalidRequest> {
    let expiry = expiry_time(expires_at)?;
    let bare = PublicKey::new(public_key.key_data().clone(), "");
    let key = bare
        .to_openssh()
        .map_err(|e| InvalidRequest::PublicKey(e.to_string()))?;
    Ok(format!("expiry-time=\"{expiry}\" {key}"))
}

/// `YYYYMMDDHHMMSSZ` for `time` (UTC), the `expiry-time` format sshd understands.
/// Instants before 1970 or after 9999 have no such form.
pub fn expiry_time(time: SystemTime) -> Result<String, InvalidRequest> {
    let out_of_range = || InvalidRequest::ExpiryOutOfRange(time);
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| out_of_range())?
        .as_secs();
    let days = i64::try_from(secs / 86_400).map_err(|_| out_of_range())?;
    let of_day = i64::try_from(secs % 86_400).map_err(|_| out_of_range())?;
    // jiff's civil dates reach 9999-12-31, one day further than its timestamps.
    let moment = jiff::civil::date(1970, 1, 1)
        .at(0, 0, 0, 0)
        .checked_add(jiff::SignedDuration::from_secs(days.saturating_mul(86_400)))
        .and_then(|midnight| midnight.checked_add(jiff::SignedDuration::from_secs(of_day)))
        .map_err(|_| out_of_range())?;
    Ok(moment.strftime("%Y%m%d%H%M%SZ").to_string())
}

/// The sudoers file for `user`, or nothing when it gets no sudo. `requiretty` is lifted
/// because builds run commands over SSH without a terminal.
pub fn sudoers_rule(user: &UserName, commands: &[SudoCommand]) -> String {
    if commands.is_empty() {
        return String::new();
    }
    let list: Vec<String> = commands.iter().map(SudoCommand::sudoers_spec).collect();
    format!(
        "# Build user of multi-platform-controller; removed with the user.\n\
         Defaults:{user} !requiretty\n\
         {user} ALL=(root) NOPASSWD: {}\n",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::generate;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_time_formats_known_instants_in_utc() {
        assert_eq!(expiry_time(at(0)).unwrap(), "19700101000000Z");
        assert_eq!(expiry_time(at(951_782_400)).unwrap(), "20000229000000Z");
        assert_eq!(expiry_time(at(1_700_000_000)).unwrap(), "20231114221320Z");
        assert_eq!(expiry_time(at(4_102_444_799)).unwrap(), "20991231235959Z");
        assert_eq!(expiry_time(at(253_402_300_799)).unwrap(), "99991231235959Z");
        assert!(expiry_time(at(253_402_300_800)).is_err());
        assert!(expiry_time(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }

    proptest! {
        #[test]
        fn expiry_time_is_well_formed_and_ordered(a in 0u64..253_402_300_800, b in 0u64..253_402_300_800) {
            let (ea, eb) = (expiry_time(at(a)).unwrap(), expiry_time(at(b)).unwrap());
            prop_assert_eq!(ea.len(), 15);
            prop_assert!(ea.ends_with('Z'));
            prop_assert!(ea[..14].bytes().all(|c| c.is_ascii_digit()));
            // Fixed-width digits compare like the instants they encode.
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }


        #[test]
        fn stdin_is_one_key_line_then_the_sudoers_file(cmds in proptest::collection::vec("/[a-z]{1,8}( [a-z0-9.]{1,6})?", 0..4)) {
            let cmds: Vec<SudoCommand> = cmds.iter().map(|c| SudoCommand::parse(c).unwrap()).collect();
            let pair = generate().unwrap();
            let user = UserName::for_taskrun("tr", "ns");
            let request = ProvisionRequest::new(user, pair.public_key(), at(1_700_000_000), &cmds).unwrap();
            let stdin = String::from_utf8(request.stdin()).unwrap();
            let (first, rest) = stdin.split_once('\n').unwrap();
            prop_assert_eq!(first, format!("expiry-time=\"20231114221320Z\" {}", pair.public_key_line()));
            prop_assert_eq!(rest.is_empty(), cmds.is_empty());
            prop_assert_eq!(rest.lines().filter(|l| l.contains("NOPASSWD")).count(), usize::from(!cmds.is_empty()));
        }
    }

    #[test]
    fn sudoers_rule_lists_the_commands_for_root_only() {
        let user = UserName::parse("u-0123456789abcdef0123456789ab").unwrap();
        assert_eq!(sudoers_rule(&user, &[]), "");
        let cmds = [
            SudoCommand::parse("/usr/bin/podman").unwrap(),
            SudoCommand::parse("/usr/bin/rm /etc/x.conf").unwrap(),
            SudoCommand::parse("/usr/bin/env X=1").unwrap(),
        ];
        let rule = sudoers_rule(&user, &cmds);
        assert!(
            rule.contains("/usr/bin/env X\\=1"),
            "sudoers specials escaped: {rule}"
        );
        assert!(rule.contains("Defaults:u-0123456789abcdef0123456789ab !requiretty\n"));
        assert!(rule.ends_with(
            "u-0123456789abcdef0123456789ab ALL=(root) NOPASSWD: /usr/bin/podman, /usr/bin/rm /etc/x.conf, /usr/bin/env X\\=1\n"
        ));
    }

    #[test]
    fn authorized_key_drops_the_comment_and_options() {
        let pair = generate().unwrap();
        let mut key = pair.public_key().clone();
        key.set_comment("evil\ncommand=\"sh\"");
        let line = authorized_keys_line(&key, at(86_400)).unwrap();
        assert_eq!(
            line,
            format!("expiry-time=\"19700102000000Z\" {}", pair.public_key_line())
        );
    }
}
