//! `/metrics` of the real binary as Prometheus reads it, against kube-sim (or the cluster
//! named by `MPC_TEST_KUBECONFIG`):
//!
//! - secured (the default): HTTPS; a request without a token is refused with 401, one
//!   whose ServiceAccount may not `get` /metrics with 403, one whose may with 200 — the
//!   controller asks the API server with TokenReviews and SubjectAccessReviews; the
//!   certificate is the mounted one, and a rotated certificate (swapped the way the
//!   kubelet swaps a Secret volume) is served from the next connection on;
//! - every series of every configured platform and host exists at 0 as soon as
//!   host-config is loaded, and the series of a platform and a host that leave
//!   host-config are gone.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::{TestEnv, wait_for, wait_until};
use mpc_core::naming::{CONFIG_LABEL, HOST_CONFIG_NAME};
use multi_platform_controller::secure_metrics::tls::self_signed_pem;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_multi-platform-controller");
/// Deadline of the waits in this file: generous for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(40);

/// `multi-platform-controller run` for the test namespace, its stderr collected.
struct Controller {
    _child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    metrics: SocketAddr,
}

impl Controller {
    fn start(env: &TestEnv, extra: &[&str]) -> Controller {
        let metrics = crate::common::free_addr();
        let mut child = tokio::process::Command::new(BIN)
            .args(["run", "--namespace", env.namespace()])
            .args(["--taskrun-namespace", env.namespace()])
            .arg(format!("--metrics-bind-address={metrics}"))
            .arg(format!(
                "--health-probe-bind-address={}",
                crate::common::free_addr()
            ))
            .args(extra)
            .env("KUBECONFIG", env.kubeconfig_path())
            .env("RUST_LOG", "info")
            // Nothing here may reach a real cloud: the cloud platform's endpoint is a
            // closed loopback port.
            .env("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:1")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the controller binary");
        let log = crate::common::capture_stderr(&mut child);
        Controller {
            _child: child,
            log,
            metrics,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Accepts any server certificate (signatures still checked) and keeps the one shown,
/// so the test can see which certificate the server used.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What one HTTPS request saw: the server's certificate (DER), the status and the body.
#[derive(Debug)]
struct Answer {
    cert: Vec<u8>,
    status: u16,
    body: String,
}

/// GET `path` over TLS with an optional bearer token; `None` while nothing answers.
async fn https_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<Answer> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.ok()?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").ok()?, tcp)
        .await
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n").as_bytes())
        .await
        .ok()?;
    // The server closes after an HTTP/1.0 answer, possibly without a TLS close_notify
    // (an error for rustls): keep what arrived until then.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = tls.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let response = String::from_utf8(bytes).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let cert = recorder.seen.lock().unwrap().clone()?;
    Some(Answer {
        cert,
        status,
        body: body.to_owned(),
    })
}

/// A plain HTTP/1.0 GET: (status, body), or `None` while nothing answers.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Writes a certificate and key into `dir` the way the kubelet updates a Secret volume:
/// a fresh timestamped directory, `..data` swapped to it atomically, and `tls.crt` /
/// `tls.key` links through `..data`. Returns the certificate's DER.
fn kubelet_write(dir: &Path, generation: u32, name: &str) -> Vec<u8> {
    let (cert, key) = self_signed_pem(&[name.to_owned()]).unwrap();
    let data = dir.join(format!("..2025_01_01_00_00_0{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), &cert).unwrap();
    std::fs::write(data.join("tls.key"), &key).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
    CertificateDer::from_pem_slice(cert.as_bytes())
        .unwrap()
        .to_vec()
}

async fn env(prefix: &str) -> TestEnv {
    let env = TestEnv::start(prefix)
        .await
        .unwrap_or_else(|e| panic!("test environment: {e}"));
    env.ensure_tekton_crds().await.unwrap();
    env
}

/// A ClusterRole allowed `get` on /metrics, bound to the ServiceAccount `account` of the
/// test's namespace (cluster-scoped, so named after the namespace, and deleted by the
/// test).
async fn grant_metrics(env: &TestEnv, account: &str) -> String {
    let ns = env.namespace();
    let name = format!("{ns}-metrics-reader");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    }))
    .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
    }))
    .unwrap();
    let client = env.client();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // A real API server applies a new binding through its informers: wait until it does,
    // so the controller's first review (cached) already sees it.
    let user = format!("system:serviceaccount:{ns}:{account}");
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user),
            groups: Some(vec!["system:serviceaccounts".into()]),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/metrics".into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client);
    wait_until(WAIT, "the metrics grant is in effect", || async {
        reviews
            .create(&PostParams::default(), &review)
            .await
            .ok()
            .and_then(|r| r.status)
            .is_some_and(|s| s.allowed)
    })
    .await
    .unwrap();
    name
}

async fn revoke(env: &TestEnv, name: &str) {
    let client = env.client();
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(client)
        .delete(name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn metrics_are_served_over_https_to_authorized_readers_only() {
    let env = env("metrics-https").await;
    let scraper = env.service_account_token("scraper").await.unwrap();
    let stranger = env.service_account_token("stranger").await.unwrap();
    let grant = grant_metrics(&env, "scraper").await;
    // A platform in host-config, so that /metrics has series to show.
    let configs: Api<ConfigMap> = env.api();
    configs
        .create(
            &PostParams::default(),
            &host_config(json!({"local-platforms": "linux/x86_64"})),
        )
        .await
        .unwrap();
    let certs = tempfile::tempdir().unwrap();
    let first = kubelet_write(certs.path(), 1, "first.example");
    let controller = Controller::start(
        &env,
        &[&format!("--metrics-cert-path={}", certs.path().display())],
    );
    let addr = controller.metrics;

    let anonymous = wait_for(WAIT, "/metrics answers over HTTPS", || {
        https_get(addr, "/metrics", None)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", controller.log()));
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.cert, first, "the mounted certificate is served");
    let forged = https_get(addr, "/metrics", Some("not-a-token"))
        .await
        .unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);
    let refused = https_get(addr, "/metrics", Some(&stranger)).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains(&format!(
            "system:serviceaccount:{}:stranger",
            env.namespace()
        )),
        "{}",
        refused.body
    );
    let allowed = https_get(addr, "/metrics", Some(&scraper)).await.unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let series = "multi_platform_controller_waiting_tasks{platform=\"linux/x86_64\"} 0";
    wait_for(
        WAIT,
        "the platform's series are served to the reader",
        || async {
            https_get(addr, "/metrics", Some(&scraper))
                .await
                .filter(|a| a.status == 200 && a.body.contains(series))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", controller.log()));
    // Plain HTTP gets no metrics from the TLS port.
    assert_ne!(http_get(addr, "/metrics").await.map(|(s, _)| s), Some(200));

    // The Secret is renewed: the next connection gets the new certificate.
    let second = kubelet_write(certs.path(), 2, "second.example");
    assert_ne!(first, second);
    let rotated = wait_for(WAIT, "the renewed certificate is served", || async {
        https_get(addr, "/metrics", Some(&scraper))
            .await
            .filter(|a| a.cert == second)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", controller.log()));
    assert_eq!(rotated.status, 200);
    assert!(
        controller.log().contains("serving certificate reloaded"),
        "{}",
        controller.log()
    );

    drop(controller);
    revoke(&env, &grant).await;
    env.cleanup().await.unwrap();
}

/// Lines of the exposition that are series (not comments) and mention `needle`.
fn series_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(needle))
        .collect()
}

fn host_config(data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": HOST_CONFIG_NAME, "labels": {CONFIG_LABEL: "hosts"}},
        "data": data,
    }))
    .unwrap()
}

/// Static hosts on closed loopback ports (never reached: their admin Secret does not
/// exist), a local platform, a cloud platform whose credentials do not exist.
fn pool() -> serde_json::Value {
    let mut data = json!({
        "local-platforms": "linux/x86_64",
        "dynamic-platforms": "linux/amd64",
        "instance-tag": "metrics-test",
        "dynamic.linux-amd64.type": "aws",
        "dynamic.linux-amd64.region": "us-east-1",
        "dynamic.linux-amd64.ami": "ami-0123456789abcdef0",
        "dynamic.linux-amd64.instance-type": "m7a.large",
        "dynamic.linux-amd64.key-name": "builders",
        "dynamic.linux-amd64.aws-secret": "no-such-aws-account",
        "dynamic.linux-amd64.ssh-secret": "no-such-ssh-key",
        "dynamic.linux-amd64.max-instances": "4",
    });
    for (host, platform, address) in [
        ("arm-1", "linux/arm64", "127.0.0.1"),
        ("ppc-1", "linux/ppc64le", "127.0.0.2"),
    ] {
        for (key, value) in [
            ("address", address),
            ("port", "1"),
            ("platform", platform),
            ("user", "root"),
            ("secret", "no-such-admin-key"),
            ("concurrency", "2"),
        ] {
            data[format!("host.{host}.{key}")] = value.into();
        }
    }
    data
}

#[tokio::test]
async fn every_series_exists_from_the_start_and_leaves_with_its_platform() {
    let env = env("metrics-series").await;
    let configs: Api<ConfigMap> = env.api();
    configs
        .create(&PostParams::default(), &host_config(pool()))
        .await
        .unwrap();
    let controller = Controller::start(&env, &["--metrics-secure=false"]);
    let addr = controller.metrics;
    let scrape = || async move { http_get(addr, "/metrics").await.filter(|(s, _)| *s == 200) };

    let per_platform = [
        "provisioning_successes",
        "provisioning_failures",
        "cleanup_failures",
        "host_allocation_failures",
        "host_allocation_time_count",
        "wait_time_count",
        "task_run_time_count",
        "running_tasks",
        "waiting_tasks",
    ];
    let platforms = [
        "linux/arm64",
        "linux/ppc64le",
        "linux/x86_64",
        "linux/amd64",
    ];
    let text = wait_for(WAIT, "every platform's series exist", || async {
        scrape().await.map(|(_, t)| t).filter(|t| {
            platforms.iter().all(|p| {
                t.contains(&format!(
                    "multi_platform_controller_host_allocation_failures{{platform=\"{p}\"}}"
                ))
            })
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", controller.log()));
    for platform in platforms {
        for name in per_platform {
            let line = format!("multi_platform_controller_{name}{{platform=\"{platform}\"}} 0");
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
    }
    for name in [
        "cloud_launches",
        "cloud_terminations",
        "cloud_swept_instances",
    ] {
        let line = format!("multi_platform_controller_{name}{{platform=\"linux/amd64\"}} 0");
        assert!(text.contains(&line), "missing {line} in:\n{text}");
    }
    for (host, platform) in [("arm-1", "linux/arm64"), ("ppc-1", "linux/ppc64le")] {
        for name in ["slots_used", "slots_total", "host_up"] {
            let series = format!(
                "multi_platform_controller_{name}{{host=\"{host}\",platform=\"{platform}\"}}"
            );
            assert!(text.contains(&series), "missing {series} in:\n{text}");
        }
        for name in ["reaped_users", "host_cleanup_failures"] {
            let line = format!("multi_platform_controller_{name}{{host=\"{host}\"}} 0");
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
    }

    // ppc-1, and with it linux/ppc64le, leave host-config.
    let mut smaller = pool();
    for key in [
        "address",
        "port",
        "platform",
        "user",
        "secret",
        "concurrency",
    ] {
        smaller
            .as_object_mut()
            .unwrap()
            .remove(&format!("host.ppc-1.{key}"));
    }
    configs
        .patch(
            HOST_CONFIG_NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {
                "host.ppc-1.address": null, "host.ppc-1.port": null, "host.ppc-1.platform": null,
                "host.ppc-1.user": null, "host.ppc-1.secret": null, "host.ppc-1.concurrency": null
            }})),
        )
        .await
        .unwrap();
    let text = wait_for(
        WAIT,
        "the series of ppc-1 and linux/ppc64le are gone",
        || async {
            scrape().await.map(|(_, t)| t).filter(|t| {
                series_with(t, "linux/ppc64le").is_empty() && series_with(t, "ppc-1").is_empty()
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", controller.log()));
    assert!(
        text.contains("multi_platform_controller_cleanup_failures{platform=\"linux/arm64\"} 0"),
        "the platforms that stay keep theirs:\n{text}"
    );
    assert!(text.contains("multi_platform_controller_reaped_users{host=\"arm-1\"} 0"));
    assert_eq!(
        configs
            .get(HOST_CONFIG_NAME)
            .await
            .unwrap()
            .data
            .unwrap()
            .len(),
        smaller.as_object().unwrap().len()
    );

    drop(controller);
    env.cleanup().await.unwrap();
}
