//! The `multi-platform-controller` command.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mpc_core::config::report;
use mpc_core::naming::DEFAULT_CONTROLLER_NAMESPACE;
use multi_platform_controller::controller::leader::LeaderElection;
use multi_platform_controller::controller::{RunSettings, run};
use multi_platform_controller::doctor;
use multi_platform_controller::logging::{self, LogFormat};
use multi_platform_controller::metrics::Metrics;
use multi_platform_controller::secure_metrics::reviews::KubeReviewer;
use multi_platform_controller::secure_metrics::tls::{CertSource, ServingCerts};
use multi_platform_controller::server::{self, Health, MetricsEndpoint};

/// Gives Tekton TaskRuns SSH access to build hosts of other CPU architectures.
#[derive(Debug, Parser)]
#[command(name = "multi-platform-controller", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: watch TaskRuns in all namespaces and give each a build
    /// host of its PLATFORM (kubeconfig from KUBECONFIG/~/.kube/config, else in-cluster).
    Run(RunArgs),
    /// Validate a host-config ConfigMap manifest: print, per platform, its hosts,
    /// slots and every problem; exit 1 when there is a problem, 3 when the file
    /// cannot be read or is not a ConfigMap.
    CheckConfig(CheckConfigArgs),
    /// Check every build host with the controller's configuration and credentials:
    /// reachable, host key, admin login and tools, sshd honouring expiry-time, slots
    /// used; print a table (or JSON); exit 1 when anything has a problem, 2 when the
    /// check cannot run.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Args)]
struct CheckConfigArgs {
    /// ConfigMap manifest (YAML, e.g. from `kubectl get cm host-config -o yaml`);
    /// `-` reads standard input.
    file: PathBuf,
    /// Do not fail because of dynamic or dynamic-pool platforms, which this
    /// controller does not support yet (they are still listed).
    #[arg(long)]
    allow_unsupported: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Where /metrics is served (`:PORT` listens on all interfaces).
    #[arg(long, default_value = ":8443")]
    metrics_bind_address: String,
    /// Serve /metrics over HTTPS to callers whose bearer token the API server
    /// authenticates (TokenReview) and allows `get` on the URL /metrics
    /// (SubjectAccessReview). `--metrics-secure=false` serves plain HTTP to anyone
    /// (then usually with `--metrics-bind-address=:8080`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    metrics_secure: bool,
    /// Directory holding the serving certificate of /metrics (a mounted
    /// kubernetes.io/tls Secret), read again when it changes. Without it, or until its
    /// files exist, a self-signed certificate is used.
    #[arg(long)]
    metrics_cert_path: Option<PathBuf>,
    /// Certificate file name in --metrics-cert-path.
    #[arg(long, default_value = "tls.crt")]
    metrics_cert_name: String,
    /// Private key file name in --metrics-cert-path.
    #[arg(long, default_value = "tls.key")]
    metrics_cert_key: String,
    /// Where /healthz and /readyz are served.
    #[arg(long, default_value = ":8081")]
    health_probe_bind_address: String,
    /// Take part in leader election (Lease multi-platform-controller-leader), so that
    /// several replicas can run and only one allocates.
    #[arg(long)]
    leader_elect: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The controller's namespace: host-config, admin-key Secrets, Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_CONTROLLER_NAMESPACE)]
    namespace: String,
    /// This instance's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Watch TaskRuns in this namespace only (default: all namespaces). For tests and
    /// trials that share a cluster; a production controller serves every namespace.
    #[arg(long)]
    taskrun_namespace: Option<String>,
    /// Seconds between reaper passes that remove build users no TaskRun owns.
    #[arg(long, default_value_t = 300)]
    reap_interval: u64,
    /// Seconds a build user must exist before a periodic reaper pass may remove it
    /// (spares `doctor`'s throwaway user and work in flight).
    #[arg(long, default_value_t = 600)]
    reap_min_age: u64,
    /// Seconds a new TaskRun waits for a missing host-config before it fails.
    #[arg(long, default_value_t = 60)]
    config_grace: u64,
    /// Seconds a shutdown (SIGTERM) waits for operations in flight.
    /// (Keep it, plus 5 s to release the Lease, under the pod's termination grace.)
    #[arg(long, default_value_t = 20)]
    shutdown_grace: u64,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run_controller(args),
        Command::CheckConfig(args) => check_config(&args),
        Command::Doctor(args) => run_doctor(&args),
    }
}

fn run_doctor(args: &doctor::DoctorArgs) -> ExitCode {
    // The report goes to stdout; logs only when RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let code = runtime.block_on(doctor::run(args));
            // A DNS lookup of a dead host may still hold a blocking thread: do not wait.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("doctor: cannot start the async runtime: {err}");
            ExitCode::from(doctor::run::EXIT_CANNOT_RUN)
        }
    }
}

fn run_controller(args: RunArgs) -> ExitCode {
    logging::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %chain(&err), "controller stopped");
            ExitCode::FAILURE
        }
    }
}

/// Why `run` stopped or could not start.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    BindAddress(#[from] server::InvalidBindAddress),
    #[error("cannot listen on {addr} for {what}")]
    Listen {
        addr: std::net::SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the Kubernetes API (set KUBECONFIG, or run in a cluster)")]
    Kubernetes(#[source] kube::Error),
    #[error("cannot set up the metrics")]
    Metrics(#[from] multi_platform_controller::metrics::MetricsError),
    #[error("cannot serve /metrics over HTTPS (check --metrics-cert-path and its Secret)")]
    Tls(#[from] multi_platform_controller::secure_metrics::tls::TlsError),
    #[error(transparent)]
    Run(#[from] multi_platform_controller::controller::runner::RunError),
}

/// An error and its sources, `: `-separated, for the one log line that says why.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn serve(args: RunArgs) -> Result<(), ServeError> {
    let metrics_addr = server::parse_bind_address(&args.metrics_bind_address)?;
    let health_addr = server::parse_bind_address(&args.health_probe_bind_address)?;
    let listen = |addr, what| move |source| ServeError::Listen { addr, what, source };
    let metrics_listener = server::bind(metrics_addr)
        .await
        .map_err(listen(metrics_addr, "metrics"))?;
    let health_listener = server::bind(health_addr)
        .await
        .map_err(listen(health_addr, "health probes"))?;
    let client = kube::Client::try_default()
        .await
        .map_err(ServeError::Kubernetes)?;
    let metrics = Arc::new(Metrics::new()?);
    let health = Arc::new(Health::default());
    let identity = args.identity.clone().unwrap_or_else(hostname);
    let endpoint = if args.metrics_secure {
        let source = CertSource {
            dir: args.metrics_cert_path.clone(),
            cert_name: args.metrics_cert_name.clone(),
            key_name: args.metrics_cert_key.clone(),
        };
        let names = vec![hostname(), "localhost".to_owned()];
        MetricsEndpoint::Secure {
            listener: metrics_listener,
            certs: Arc::new(ServingCerts::new(source, &names).await?),
            reviewer: Arc::new(KubeReviewer::new(client.clone())),
        }
    } else {
        MetricsEndpoint::Plain(metrics_listener)
    };
    let mut settings = RunSettings::new(&args.namespace);
    settings.instance = identity.clone();
    settings.reap_interval = Duration::from_secs(args.reap_interval.max(1));
    settings.reap_min_age = Duration::from_secs(args.reap_min_age);
    settings.core.config_grace = Duration::from_secs(args.config_grace);
    settings.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    settings.taskrun_namespace = args.taskrun_namespace.clone();
    if args.leader_elect {
        settings.leader_election = Some(LeaderElection::new(identity));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let http = tokio::spawn(server::serve(
        endpoint,
        health_listener,
        Arc::clone(&metrics),
        Arc::clone(&health),
        stopped(stop_rx.clone()),
    ));
    tracing::info!(namespace = %args.namespace, %metrics_addr, metrics_secure = args.metrics_secure,
                   %health_addr, leader_elect = args.leader_elect, "starting");
    let result = run(client, settings, metrics, health, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = http.await;
    tracing::info!("stopped");
    Ok(result?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "multi-platform-controller".to_owned())
}

fn check_config(args: &CheckConfigArgs) -> ExitCode {
    let (source, read) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        let read = std::io::stdin().read_to_string(&mut text).map(|_| text);
        ("<stdin>".to_owned(), read)
    } else {
        let source = args.file.display().to_string();
        (source, std::fs::read_to_string(&args.file))
    };
    let check = match read {
        Ok(text) => report::check(&text, &source, args.allow_unsupported),
        Err(err) => report::Check {
            output: format!("{source}: cannot read: {err}\n"),
            status: report::CheckStatus::Unreadable,
        },
    };
    if check.status == report::CheckStatus::Unreadable {
        eprint!("{}", check.output);
    } else {
        print!("{}", check.output);
    }
    ExitCode::from(check.status.code())
}
