//! Real OpenSSH build hosts on loopback for tests and demos.
//!
//! A [`TestHost`] is Debian's own `/usr/sbin/sshd` listening on port 22 of a loopback
//! address of its own (`127.x.y.z`, never `127.0.0.1`), running inside a private mount,
//! PID and UTS namespace. The namespace gives every host its own `/etc` (a copy of the
//! machine's), `/home`, `/root`, `/run`, `/tmp`, `/var/tmp`, `/var/log`, `/var/mail`
//! and `/dev/shm`, so users created on one host exist only there: `useradd` on host A never
//! touches host B or the machine, `pkill -u` sees only that host's processes, and tearing
//! a host down (killing its namespace, removing its directory) cannot leak a user.
//!
//! Each host has its own host keys (ed25519 and ECDSA), accepts `root` by key only, and
//! has a non-root admin user ([`SUDO_ADMIN_USER`]) with passwordless sudo. The fixture
//! installs nothing: `hack/test.sh` installs `openssh-server`, `sudo`, `procps` and
//! `util-linux`. It needs root (namespaces, mounts, port 22).
//!
//! Hosts are safe to start from many test threads and test binaries at once, and next to
//! other users of the machine: addresses are picked at random and re-picked when taken,
//! and every host lives in its own directory. A host is torn down when dropped; if the
//! process dies without dropping it (abort, SIGKILL), the kernel kills its namespace
//! (parent-death signal) and the next start sweeps the leftover directory.
//!
//! ```no_run
//! let host = test_hosts::TestHost::start()?;
//! let out = host.run(&["id", "-un"])?;
//! assert_eq!(out.stdout.trim(), "root");
//! # Ok::<(), test_hosts::Error>(())
//! ```

mod address;
mod command;
mod error;
mod host;
mod namespace;
mod sshd;
mod stale;

pub use command::CommandOutput;
pub use error::Error;
pub use host::{AdminLogin, ExtraAdmin, HostOptions, SUDO_ADMIN_USER, TestHost};

/// Starts `count` hosts in parallel (each start takes a few hundred milliseconds).
pub fn start_hosts(count: usize) -> Result<Vec<TestHost>, Error> {
    let handles: Vec<_> = (0..count)
        .map(|_| std::thread::spawn(TestHost::start))
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Setup("host start thread panicked".into())))
        })
        .collect()
}
