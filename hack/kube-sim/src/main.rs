//! `kube-sim`: run the in-memory API server for people (kubectl) and demos.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// An in-memory Kubernetes API server on a loopback address (plain HTTP, no auth).
#[derive(Debug, Parser)]
#[command(name = "kube-sim", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig (default: a temporary file, removed on exit).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Install the upstream Tekton Pipelines CRDs at start (read from
    /// ../shared/fixtures/tekton-crds beside the repository, or $TEKTON_CRDS).
    #[arg(long)]
    with_tekton_crds: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let options = kube_sim::Options {
        listen: args.listen,
        kubeconfig: args.kubeconfig,
        with_tekton_crds: args.with_tekton_crds,
        ..Default::default()
    };
    let server = match kube_sim::Server::start(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("kube-sim serving at {}", server.url());
    println!("kubeconfig: {}", server.kubeconfig_path().display());
    println!("export KUBECONFIG={}", server.kubeconfig_path().display());
    wait_for_signal().await;
    eprintln!("kube-sim: stopping");
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
