//! `test-hosts start N`: starts N sshd build hosts and prints how to reach them, then
//! keeps them running until Ctrl-C (or SIGTERM), when they are torn down.

use clap::{Parser, Subcommand};
use test_hosts::{TestHost, start_hosts};

#[derive(Parser)]
#[command(about = "Real OpenSSH sshd build hosts on loopback, for tests and demos")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start COUNT hosts and keep them running until interrupted.
    Start {
        /// How many hosts to start.
        #[arg(default_value_t = 1)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    let Cli {
        command: Cmd::Start { count },
    } = Cli::parse();
    let hosts = match start_hosts(count) {
        Ok(hosts) => hosts,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for host in &hosts {
        describe(host);
    }
    println!("running; press Ctrl-C to stop and remove the hosts");
    if let Err(e) = wait_for_shutdown() {
        eprintln!("error: cannot wait for signals: {e}");
    }
    drop(hosts);
    println!("stopped");
    std::process::ExitCode::SUCCESS
}

fn describe(host: &TestHost) {
    println!("{}:", host.name());
    println!("  address:          {}", host.address());
    println!("  host key:         {}", host.host_key());
    println!("  known_hosts:      {}", host.known_hosts_path().display());
    for admin in [host.root(), host.sudo_admin()] {
        println!(
            "  admin {:<10}  key {}",
            admin.user,
            admin.private_key_path.display()
        );
    }
    println!(
        "  try:              ssh -i {} -o UserKnownHostsFile={} root@{} id",
        host.root().private_key_path.display(),
        host.known_hosts_path().display(),
        host.address()
    );
}

fn wait_for_shutdown() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
}
