//! What one build user may take from a shared host: `max-processes`, `memory-max` and
//! `cpu-quota`, global defaults and per-host overrides (`host.<name>.<key>`).
//!
//! Each value has one fixed textual form ([`MaxProcesses::arg`] and friends) that the
//! provisioning script receives as an argument and checks again; nothing else of the
//! admin's spelling reaches the host.

use std::fmt;

/// Processes (threads included) a build user may have when `max-processes` is not set:
/// the per-user default RHEL ships in `limits.d/20-nproc.conf`.
pub const DEFAULT_MAX_PROCESSES: u32 = 4096;
/// Fewest processes accepted: podman alone needs a handful, a build several more.
pub const MIN_MAX_PROCESSES: u32 = 32;
/// Most processes accepted: the kernel's highest `pid_max`.
pub const MAX_MAX_PROCESSES: u32 = 4_194_304;
/// Share of the host's memory and of its CPU time a build user may use by default (the
/// Go controller's 90 % of the host).
pub const DEFAULT_HOST_PERCENT: u8 = 90;
/// Smallest absolute `memory-max` accepted (64 MiB): less cannot run a container build.
pub const MIN_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

const UNLIMITED: &str = "unlimited";

/// `max-processes`: the user's `nproc` limit (`/etc/security/limits.d/<user>.conf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxProcesses {
    /// At most this many processes and threads.
    Limit(u32),
    /// No limits file.
    Unlimited,
}

/// `memory-max`: the `MemoryMax=` of the user's slice on systemd hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryMax {
    /// This percentage (1–100) of the host's physical memory.
    PercentOfHost(u8),
    /// This many bytes.
    Bytes(u64),
    /// No memory limit.
    Unlimited,
}

/// `cpu-quota`: the `CPUQuota=` of the user's slice on systemd hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuQuota {
    /// This percentage (1–100) of the whole host's CPU time (all CPUs together).
    PercentOfHost(u8),
    /// No CPU limit.
    Unlimited,
}

/// The limits applied to each build user of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserLimits {
    /// Processes and threads.
    pub max_processes: MaxProcesses,
    /// Memory of the user's slice.
    pub memory_max: MemoryMax,
    /// CPU time of the user's slice.
    pub cpu_quota: CpuQuota,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            max_processes: MaxProcesses::Limit(DEFAULT_MAX_PROCESSES),
            memory_max: MemoryMax::PercentOfHost(DEFAULT_HOST_PERCENT),
            cpu_quota: CpuQuota::PercentOfHost(DEFAULT_HOST_PERCENT),
        }
    }
}

impl UserLimits {
    /// No limit at all: what nothing in the configuration asks for.
    pub const UNLIMITED: UserLimits = UserLimits {
        max_processes: MaxProcesses::Unlimited,
        memory_max: MemoryMax::Unlimited,
        cpu_quota: CpuQuota::Unlimited,
    };
}

impl fmt::Display for UserLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max-processes {}, memory-max {}, cpu-quota {}",
            self.max_processes, self.memory_max, self.cpu_quota
        )
    }
}

impl MaxProcesses {
    /// Parses the ConfigMap value: an integer from 32 to 4194304, or `unlimited`.
    /// The error completes "`<key>`: …".
    pub fn parse(raw: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected the most processes (threads included) one build \
                                user may have, an integer from 32 to 4194304, or unlimited";
        let value = raw.trim();
        if value == UNLIMITED {
            return Ok(MaxProcesses::Unlimited);
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{value:?} is not a whole number; {EXPECTED}"));
        }
        match value.parse::<u32>() {
            Ok(n) if (MIN_MAX_PROCESSES..=MAX_MAX_PROCESSES).contains(&n) => {
                Ok(MaxProcesses::Limit(n))
            }
            _ => Err(format!("{value} is out of range; {EXPECTED}")),
        }
    }

    /// The script argument: the number, or `unlimited`.
    pub fn arg(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for MaxProcesses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxProcesses::Limit(n) => write!(f, "{n}"),
            MaxProcesses::Unlimited => f.write_str(UNLIMITED),
        }
    }
}

impl MemoryMax {
    /// Parses the ConfigMap value: `90%` of the host's memory, a size with an optional
    /// `K`, `M`, `G` or `T` suffix (powers of 1024, at least 64M), or `unlimited`.
    /// The error completes "`<key>`: …".
    pub fn parse(raw: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected a share of the host's memory such as 90%, a size \
                                such as 8G (suffix K, M, G or T, powers of 1024, at least \
                                64M), or unlimited";
        let value = raw.trim();
        if value == UNLIMITED {
            return Ok(MemoryMax::Unlimited);
        }
        if let Some(percent) = value.strip_suffix('%') {
            return percent_of_host(percent)
                .map(MemoryMax::PercentOfHost)
                .ok_or_else(|| {
                    format!("{value:?} is not a percentage from 1% to 100%; {EXPECTED}")
                });
        }
        let (digits, shift) = match value.as_bytes().last() {
            Some(b'K') => (&value[..value.len() - 1], 10),
            Some(b'M') => (&value[..value.len() - 1], 20),
            Some(b'G') => (&value[..value.len() - 1], 30),
            Some(b'T') => (&value[..value.len() - 1], 40),
            _ => (value, 0),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{value:?} is not a size; {EXPECTED}"));
        }
        let bytes = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1u64 << shift))
            .ok_or_else(|| format!("{value} is far too large; {EXPECTED}"))?;
        if bytes < MIN_MEMORY_BYTES {
            return Err(format!("{value} is too small; {EXPECTED}"));
        }
        Ok(MemoryMax::Bytes(bytes))
    }

    /// The script argument: `90%`, a number of bytes, or `unlimited` — all forms
    /// systemd's `MemoryMax=` takes as they are.
    pub fn arg(self) -> String {
        match self {
            MemoryMax::PercentOfHost(p) => format!("{p}%"),
            MemoryMax::Bytes(b) => b.to_string(),
            MemoryMax::Unlimited => UNLIMITED.to_owned(),
        }
    }
}

impl fmt::Display for MemoryMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryMax::PercentOfHost(p) => write!(f, "{p}% of the host"),
            MemoryMax::Bytes(b) if b % (1 << 30) == 0 => write!(f, "{}G", b >> 30),
            MemoryMax::Bytes(b) if b % (1 << 20) == 0 => write!(f, "{}M", b >> 20),
            MemoryMax::Bytes(b) => write!(f, "{b} bytes"),
            MemoryMax::Unlimited => f.write_str(UNLIMITED),
        }
    }
}

impl CpuQuota {
    /// Parses the ConfigMap value: `90%` of the whole host's CPU time, or `unlimited`.
    /// The error completes "`<key>`: …".
    pub fn parse(raw: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected a share of the whole host's CPU time (all CPUs \
                                together) from 1% to 100%, such as 90%, or unlimited";
        let value = raw.trim();
        if value == UNLIMITED {
            return Ok(CpuQuota::Unlimited);
        }
        value
            .strip_suffix('%')
            .and_then(percent_of_host)
            .map(CpuQuota::PercentOfHost)
            .ok_or_else(|| format!("{value:?} is not valid; {EXPECTED}"))
    }

    /// The script argument: `90%` (of the whole host; the script turns it into
    /// systemd's per-CPU percentage) or `unlimited`.
    pub fn arg(self) -> String {
        match self {
            CpuQuota::PercentOfHost(p) => format!("{p}%"),
            CpuQuota::Unlimited => UNLIMITED.to_owned(),
        }
    }
}

impl fmt::Display for CpuQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuQuota::PercentOfHost(p) => write!(f, "{p}% of the host"),
            CpuQuota::Unlimited => f.write_str(UNLIMITED),
        }
    }
}

/// `1`..=`100` as plain digits.
fn percent_of_host(digits: &str) -> Option<u8> {
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|p| (1..=100).contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_the_go_controllers_share_of_the_host_and_rhels_nproc() {
        let limits = UserLimits::default();
        assert_eq!(limits.max_processes.arg(), "4096");
        assert_eq!(limits.memory_max.arg(), "90%");
        assert_eq!(limits.cpu_quota.arg(), "90%");
        assert_eq!(
            limits.to_string(),
            "max-processes 4096, memory-max 90% of the host, cpu-quota 90% of the host"
        );
    }

    #[test]
    fn max_processes() {
        assert_eq!(MaxProcesses::parse(" 512 "), Ok(MaxProcesses::Limit(512)));
        assert_eq!(
            MaxProcesses::parse("unlimited"),
            Ok(MaxProcesses::Unlimited)
        );
        for (bad, why) in [
            ("31", "out of range"),
            ("4194305", "out of range"),
            ("99999999999", "out of range"),
            ("-1", "not a whole number"),
            ("1e3", "not a whole number"),
            ("", "not a whole number"),
            ("4096; rm -rf /", "not a whole number"),
        ] {
            let err = MaxProcesses::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("from 32 to 4194304, or unlimited"), "{err}");
        }
    }

    #[test]
    fn memory_max() {
        assert_eq!(MemoryMax::parse("90%"), Ok(MemoryMax::PercentOfHost(90)));
        assert_eq!(MemoryMax::parse("100%"), Ok(MemoryMax::PercentOfHost(100)));
        assert_eq!(MemoryMax::parse("8G"), Ok(MemoryMax::Bytes(8 << 30)));
        assert_eq!(MemoryMax::parse("512M"), Ok(MemoryMax::Bytes(512 << 20)));
        assert_eq!(MemoryMax::parse("1T"), Ok(MemoryMax::Bytes(1 << 40)));
        assert_eq!(MemoryMax::parse("67108864"), Ok(MemoryMax::Bytes(64 << 20)));
        assert_eq!(MemoryMax::parse("unlimited"), Ok(MemoryMax::Unlimited));
        assert_eq!(MemoryMax::Bytes(8 << 30).arg(), "8589934592");
        assert_eq!(MemoryMax::Bytes(8 << 30).to_string(), "8G");
        assert_eq!(MemoryMax::Bytes(512 << 20).to_string(), "512M");
        for bad in [
            "0%",
            "101%",
            "%",
            "9.5%",
            "8g",
            "8GB",
            "8 G",
            "63M",
            "-1G",
            "",
            "x",
            "99999999999T",
            "90%%",
            "infinity",
        ] {
            assert!(MemoryMax::parse(bad).is_err(), "{bad}");
        }
        assert!(MemoryMax::parse("63M").unwrap_err().contains("too small"));
    }

    #[test]
    fn cpu_quota() {
        assert_eq!(CpuQuota::parse("90%"), Ok(CpuQuota::PercentOfHost(90)));
        assert_eq!(CpuQuota::parse("1%"), Ok(CpuQuota::PercentOfHost(1)));
        assert_eq!(CpuQuota::parse("unlimited"), Ok(CpuQuota::Unlimited));
        for bad in ["0%", "101%", "200%", "90", "0.5%", "", "1%;id"] {
            let err = CpuQuota::parse(bad).unwrap_err();
            assert!(err.contains("all CPUs together"), "{bad}: {err}");
        }
    }

    proptest! {
        /// Whatever an admin writes, an accepted value's argument is one plain word of
        /// digits with at most a trailing `%`, or `unlimited`: safe as a script argument.
        #[test]
        fn accepted_values_become_plain_arguments(raw in "\\PC{0,12}") {
            let args = [
                MaxProcesses::parse(&raw).map(MaxProcesses::arg),
                MemoryMax::parse(&raw).map(MemoryMax::arg),
                CpuQuota::parse(&raw).map(CpuQuota::arg),
            ];
            for arg in args.into_iter().flatten() {
                let digits = arg.strip_suffix('%').unwrap_or(&arg);
                prop_assert!(
                    arg == "unlimited"
                        || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())),
                    "{arg:?}"
                );
            }
        }

        #[test]
        fn arguments_parse_back_to_the_same_value(n in 32u32..=4_194_304, p in 1u8..=100, g in 1u64..=1024) {
            let m = MaxProcesses::Limit(n);
            prop_assert_eq!(MaxProcesses::parse(&m.arg()), Ok(m));
            let mem = MemoryMax::Bytes(g << 30);
            prop_assert_eq!(MemoryMax::parse(&mem.arg()), Ok(mem));
            let pct = MemoryMax::PercentOfHost(p);
            prop_assert_eq!(MemoryMax::parse(&pct.arg()), Ok(pct));
            let cpu = CpuQuota::PercentOfHost(p);
            prop_assert_eq!(CpuQuota::parse(&cpu.arg()), Ok(cpu));
        }
    }
}
