//! `taskgen`: command-line front end of the remote Task generator.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use taskgen::{Error, Generation, Options, StepSelection};

/// Generate the remote (SSH build host) variant of a buildah-style Tekton Task.
#[derive(Parser, Debug)]
#[command(name = "taskgen", version)]
struct Cli {
    /// Input Task YAML (`-` reads standard input).
    #[arg(long, value_name = "IN")]
    buildah_task: Option<PathBuf>,

    /// Output file (`-` writes to standard output). Parent directories are created.
    #[arg(long, value_name = "OUT")]
    remote_task: Option<PathBuf>,

    /// Reproduce an older generator: a catalog version as build-definitions used it
    /// (0.1, 0.2, 0.3, 0.10, …) or `mpc` for the controller's own tool. Default: newest.
    #[arg(long, value_name = "X.Y")]
    task_version: Option<String>,

    /// Step to run on the remote host (repeatable). Default: the step named `build`.
    #[arg(long = "step", value_name = "NAME")]
    steps: Vec<String>,

    /// Name of the remote Task (default: `buildah` in the input name becomes `buildah-remote`).
    #[arg(long, value_name = "NAME")]
    task_name: Option<String>,

    /// Do not write; exit 1 and print a unified diff when OUT differs from what would be
    /// generated.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Some(input), Some(output)) = (&cli.buildah_task, &cli.remote_task) else {
        eprintln!("Must specify both buildah-task and remote-task params");
        eprintln!(
            "usage: taskgen --buildah-task IN --remote-task OUT [--task-version X.Y] [--step NAME]... [--check]"
        );
        return ExitCode::from(1);
    };
    match run(&cli, input, output) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("taskgen: {err}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli, input: &Path, output: &Path) -> Result<ExitCode, Error> {
    let options = Options {
        generation: Generation::from_task_version(cli.task_version.as_deref())?,
        steps: if cli.steps.is_empty() {
            StepSelection::Build
        } else {
            StepSelection::Named(cli.steps.clone())
        },
        task_name: cli.task_name.clone(),
    };
    let (text, origin) = read_input(input)?;
    let generated = taskgen::generate(&text, &origin, &options)?;
    let to_stdout = output == Path::new("-");

    if cli.check {
        if to_stdout {
            eprintln!("taskgen: --check needs a file for --remote-task, not -");
            return Ok(ExitCode::from(2));
        }
        let current = match std::fs::read_to_string(output) {
            Ok(text) => text,
            // A missing file is simply out of date: show everything as added.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Read {
                    path: output.to_owned(),
                    source,
                });
            }
        };
        if current == generated {
            return Ok(ExitCode::SUCCESS);
        }
        let shown = output.display().to_string();
        let diff = similar::TextDiff::from_lines(&current, &generated);
        print!(
            "{}",
            diff.unified_diff().header(
                &format!("{shown} (current)"),
                &format!("{shown} (generated)")
            )
        );
        eprintln!("taskgen: {shown} is not what taskgen generates from {origin}; regenerate it");
        return Ok(ExitCode::from(1));
    }

    if to_stdout {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(generated.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|source| Error::Write {
                path: output.to_owned(),
                source,
            })?;
    } else {
        write_file(output, &generated)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(input: &Path) -> Result<(String, String), Error> {
    if input == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| Error::Read {
                path: input.to_owned(),
                source,
            })?;
        return Ok((text, "<stdin>".to_owned()));
    }
    let text = std::fs::read_to_string(input).map_err(|source| Error::Read {
        path: input.to_owned(),
        source,
    })?;
    Ok((text, input.display().to_string()))
}

fn write_file(path: &Path, contents: &str) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, contents).map_err(err)
}
