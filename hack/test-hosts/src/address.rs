//! Picking loopback addresses whose port 22 is free.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

/// A random address in 127.0.0.0/8 outside 127.0.x.x, so never 127.0.0.1 and never the
/// addresses other tools habitually use.
pub(crate) fn random_loopback() -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        rand::random_range(1..=254),
        rand::random_range(0..=255),
        rand::random_range(1..=254),
    )
}

/// Whether nothing listens on `address:port` right now. Only a hint: someone may take
/// it before sshd binds, which the caller detects from sshd's own bind error.
pub(crate) fn looks_free(address: Ipv4Addr, port: u16) -> bool {
    match TcpListener::bind((address, port)) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::AddrInUse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_addresses_stay_in_loopback_and_off_127_0() {
        for _ in 0..10_000 {
            let a = random_loopback();
            assert!(a.is_loopback());
            assert_ne!(a.octets()[1], 0, "{a}");
            assert_ne!(a.octets()[3], 0, "{a}");
            assert_ne!(a.octets()[3], 255, "{a}");
        }
    }
}
