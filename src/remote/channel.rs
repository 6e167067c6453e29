//! Running one command on a channel of an established connection.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use russh::ChannelMsg;
use russh::client::{self, Handle};

use mpc_core::host_work::report::RawOutput;
use mpc_core::host_work::script::RemoteCommand;

/// Most stdout kept from one command.
const MAX_STDOUT: usize = 4 << 20;
/// Most stderr kept from one command.
const MAX_STDERR: usize = 64 << 10;
/// How often a refused session channel is retried before giving up.
const CHANNEL_OPEN_TRIES: usize = 8;

/// Why a command did not produce an answer.
pub(crate) enum ChannelError {
    /// The connection is gone (or went away while the command ran).
    Lost(String),
    /// sshd keeps refusing a session channel (its `MaxSessions` is lower than ours).
    Refused(String),
    /// The command did not finish before its deadline.
    TimedOut,
}

/// How long closing a channel after a timeout may take (the connection may be hung).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs one command on a new channel: exec, stdin, EOF, then collects output until the
/// channel closes or `deadline` passes (then the channel is closed, best effort).
pub(crate) async fn run<H: client::Handler>(
    handle: &Handle<H>,
    command: &RemoteCommand,
    deadline: tokio::time::Instant,
) -> Result<RawOutput, ChannelError> {
    let mut channel = tokio::time::timeout_at(deadline, open_channel(handle))
        .await
        .map_err(|_| ChannelError::TimedOut)??;
    let exchange = tokio::time::timeout_at(deadline, exchange(&mut channel, command)).await;
    match exchange {
        Ok(result) => result,
        Err(_) => {
            // russh does not close a dropped channel; without this, sshd would keep the
            // session until the command ends by itself.
            let _ = tokio::time::timeout(CLOSE_GRACE, channel.close()).await;
            Err(ChannelError::TimedOut)
        }
    }
}

/// Sends the command and its stdin on `channel` and reads everything it answers.
async fn exchange(
    channel: &mut russh::Channel<client::Msg>,
    command: &RemoteCommand,
) -> Result<RawOutput, ChannelError> {
    let lost = |e: russh::Error| ChannelError::Lost(e.to_string());
    channel
        .exec(true, command.command_line.as_bytes())
        .await
        .map_err(lost)?;
    if !command.stdin.is_empty() {
        channel.data(&command.stdin[..]).await.map_err(lost)?;
    }
    channel.eof().await.map_err(lost)?;
    let mut output = RawOutput::default();
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => append(&mut output.stdout, &data, MAX_STDOUT),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                append(&mut output.stderr, &data, MAX_STDERR);
            }
            ChannelMsg::ExitStatus { exit_status } => output.exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                output.exit_signal = Some(format!("{signal_name:?}"));
            }
            ChannelMsg::Failure => {
                return Err(ChannelError::Refused(
                    "sshd refused the exec request".into(),
                ));
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if output.exit_status.is_none() && output.exit_signal.is_none() {
        return Err(ChannelError::Lost(
            "the channel closed before the command exited".into(),
        ));
    }
    Ok(output)
}

/// Opens a session channel, retrying (with jittered backoff) while sshd refuses one.
async fn open_channel<H: client::Handler>(
    handle: &Handle<H>,
) -> Result<russh::Channel<client::Msg>, ChannelError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(CHANNEL_OPEN_TRIES - 1)
        .with_jitter();
    (|| handle.channel_open_session())
        .retry(backoff)
        .when(|e| matches!(e, russh::Error::ChannelOpenFailure(_)))
        .await
        .map_err(|e| match e {
            russh::Error::ChannelOpenFailure(reason) => ChannelError::Refused(format!(
                "sshd refused a session channel {CHANNEL_OPEN_TRIES} times ({reason:?}); is its \
                 MaxSessions below the pool's channel limit?"
            )),
            other => ChannelError::Lost(other.to_string()),
        })
}

fn append(buffer: &mut Vec<u8>, data: &[u8], max: usize) {
    let room = max.saturating_sub(buffer.len());
    buffer.extend_from_slice(&data[..data.len().min(room)]);
}
