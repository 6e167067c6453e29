//! Key material never reaches the logs, at any level, including russh's own `log`
//! records. A separate test binary: it installs the process-wide subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::*;
use multi_platform_controller::remote::HostKeyPolicy;

/// Collects everything every subscriber layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The base64 body lines of an OpenSSH private key.
fn body_lines(private_key: &str) -> Vec<String> {
    private_key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_material_in_logs_at_trace_level() {
    let captured = Captured::default();
    // Also installs the `log` → tracing bridge, so russh's records are captured too.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .try_init()
        .expect("install subscriber");

    let host = host();
    let pool = pool();
    let (u, k) = (user("logged"), key());
    for target in [root_target(&host), sudo_target(&host)] {
        pool.provision(&target, &request(&u, &k)).await.unwrap();
        assert_eq!(login(&host, &u, &k).as_deref(), Some(u.as_str()));
        pool.list_users(&target).await.unwrap();
        pool.cleanup(&target, &u).await.unwrap();
    }
    // Failures are logged too.
    let wrong = HostKeyPolicy::Strict(key().public_key().clone());
    pool.probe(&target_as(&host, host.root(), wrong))
        .await
        .unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("provisioned build user"), "nothing captured");
    assert!(
        logs.contains("russh"),
        "russh's own log records were not captured"
    );
    assert!(logs.contains(k.fingerprint()) || logs.contains(u.as_str()));
    let secrets = body_lines(k.private_key_openssh())
        .into_iter()
        .chain(body_lines(&host.root().private_key))
        .chain(body_lines(&host.sudo_admin().private_key));
    for line in secrets {
        assert!(!logs.contains(&line), "private key material logged: {line}");
    }
    // The public key is not secret, but it travels on stdin and is not logged either.
    let public_base64 = k.public_key_line().split(' ').nth(1).unwrap();
    assert!(!logs.contains(public_base64), "public key logged");
}
