//! The private mount + PID + UTS namespace a test host lives in.
//!
//! Its init (PID 1) is a tiny bash loop: bash reaps every orphan reparented to it, so a
//! killed build-user process never lingers as a zombie that would keep `userdel` busy.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::Error;
use crate::command::{CommandOutput, capture};

/// Runs as the namespace's init: mounts the private directories, names the host, says
/// `ready`, then becomes the reaping loop. `$1` is the host directory, `$2` the hostname.
const INIT_SCRIPT: &str = r#"set -eu
mount --make-rprivate /
mount --bind "$1/etc" /etc
mount --bind "$1/home" /home
# Rootless podman for the build users, as on a Debian host: udev makes /dev/fuse and
# /dev/net/tun usable by everyone (this machine may have no udev), and crun refuses a
# cgroup v2 hierarchy with controllers next to v1 ones ("hybrid"), which a real host
# does not mix that way. All of it stays inside this namespace, and happens before
# /tmp (where the host directory is) is covered.
mount -t tmpfs -o mode=0755 tmpfs "$1/devices"
for node in fuse:10:229 tun:10:200; do
  name=${node%%:*}; numbers=${node#*:}
  if [ -e "/dev/$name" ] || [ -e "/dev/net/$name" ]; then
    mknod -m 0666 "$1/devices/$name" c "${numbers%:*}" "${numbers#*:}"
  fi
done
[ ! -e /dev/fuse ] || mount --bind "$1/devices/fuse" /dev/fuse
[ ! -e /dev/net/tun ] || mount --bind "$1/devices/tun" /dev/net/tun
# (cgroupfs files have size 0, so `test -s` cannot tell whether it lists any.)
if grep -q . /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  umount /sys/fs/cgroup/unified || true
fi
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
mount -t tmpfs -o mode=0700 tmpfs /root
for d in /tmp /var/tmp /dev/shm; do
  mount -t tmpfs -o mode=1777 tmpfs "$d"
done
for d in /var/log /var/mail; do
  if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 tmpfs "$d"; fi
done
# Podman wants its mounts to propagate within the host; nothing reaches the machine,
# whose propagation was cut above.
mount --make-rshared /
hostname "$2"
echo ready
exec bash -c 'while :; do sleep 3600 & wait; done' </dev/null >/dev/null 2>&1
"#;

/// A running namespace: the `unshare` process outside and its init inside.
pub(crate) struct Namespace {
    unshare: Mutex<Child>,
    init_pid: u32,
}

impl Namespace {
    /// Starts the namespace for the host directory `dir` and waits until its mounts are
    /// in place.
    pub(crate) fn start(dir: &Path, hostname: &str) -> Result<Self, Error> {
        let log = dir.join("init.log");
        let stderr = File::create(&log).map_err(Error::io("create", &log))?;
        let mut command = Command::new("setpriv");
        // The parent-death signal reaches `unshare` when this process dies without
        // dropping the host, and `--kill-child` passes it on to the namespace's init,
        // which takes every process of the namespace with it.
        command
            .args(["--pdeathsig", "KILL", "--"])
            .args(["unshare", "--mount", "--uts", "--pid", "--fork"])
            .args(["--kill-child=SIGKILL", "--mount-proc", "--"])
            .args(["/bin/sh", "-c", INIT_SCRIPT, "test-host-init"])
            .arg(dir)
            .arg(hostname)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut unshare = spawn_from_long_lived_thread(command)?;
        let stdout = unshare.stdout.take();
        let mut line = String::new();
        if let Some(stdout) = stdout {
            // EOF (init died) ends the read as surely as "ready" does.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        if line.trim() != "ready" {
            let _ = unshare.kill();
            let _ = unshare.wait();
            let detail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Error::Setup(format!(
                "namespace init failed: {}",
                detail.trim()
            )));
        }
        let init_pid = match child_pid(unshare.id()) {
            Some(pid) => pid,
            None => {
                let _ = unshare.kill();
                let _ = unshare.wait();
                return Err(Error::Setup("namespace init has no pid".into()));
            }
        };
        Ok(Namespace {
            unshare: Mutex::new(unshare),
            init_pid,
        })
    }

    /// A command that runs `program` inside the namespace (as root).
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.init_pid))
            .args(["--mount", "--pid", "--uts", "--"])
            .arg(program)
            .current_dir("/");
        command
    }

    /// Runs `argv` inside the namespace with `stdin` and captures its output.
    pub(crate) fn run(&self, argv: &[&str], stdin: &[u8]) -> Result<CommandOutput, Error> {
        let Some((program, args)) = argv.split_first() else {
            return Err(Error::Setup("empty command".into()));
        };
        let mut command = self.command(program);
        command.args(args);
        capture(command, stdin)
    }

    /// Kills every process of the namespace and waits for its `unshare` to exit.
    pub(crate) fn kill(&self) {
        let mut unshare = self.unshare.lock().unwrap_or_else(|e| e.into_inner());
        let _ = unshare.kill();
        let _ = unshare.wait();
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The (only) child of process `pid`, from procfs.
fn child_pid(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process.
///
/// Linux delivers a parent-death signal when the *thread* that forked the child exits,
/// not the process. Test threads come and go (and tokio retires idle blocking threads),
/// so namespaces are forked from one thread that never exits.
fn spawn_from_long_lived_thread(command: Command) -> Result<Child, Error> {
    static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<SpawnJob>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-hosts-spawner".into())
            .spawn(move || {
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(jobs))
    });
    let gone = || Error::Setup("the test-hosts spawner thread is not running".into());
    let program = command.get_program().to_string_lossy().into_owned();
    let (reply, answer) = mpsc::channel();
    spawner
        .as_ref()
        .ok_or_else(gone)?
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .map_err(|_| gone())?;
    answer
        .recv()
        .map_err(|_| gone())?
        .map_err(|source| Error::Spawn { program, source })
}
