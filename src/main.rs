//! The `multi-platform-controller` command.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use multi_platform_controller::config::report;
use multi_platform_controller::doctor;

/// Gives Tekton TaskRuns SSH access to build hosts of other CPU architectures.
#[derive(Debug, Parser)]
#[command(name = "multi-platform-controller", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn main() -> ExitCode {
    match Cli::parse().command {
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
