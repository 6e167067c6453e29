use std::io::Write;
use std::process::{Command, Stdio};

use crate::Error;

/// What a command run on (or against) a test host printed, and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The standard output when the command succeeded, an error naming `what` otherwise.
    pub fn ok(self, what: &str) -> Result<String, Error> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(Error::Command {
                what: what.to_owned(),
                status: self.status_text(),
                stderr: self.stderr,
            })
        }
    }

    fn status_text(&self) -> String {
        match self.code {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

/// Runs `command` to completion, feeding `stdin` and capturing both outputs.
pub(crate) fn capture(mut command: Command, stdin: &[u8]) -> Result<CommandOutput, Error> {
    let program = command.get_program().to_string_lossy().into_owned();
    let spawn_error = |source| Error::Spawn {
        program: program.clone(),
        source,
    };
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(spawn_error)?;
    if let Some(mut pipe) = child.stdin.take() {
        // A command that does not read its stdin closes the pipe early; that is fine.
        let _ = pipe.write_all(stdin);
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    Ok(CommandOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
