//! The demo (`hack/demo.sh`): the whole product on this machine, one TaskRun from
//! submission to cleanup, every step printed with its timing.
//!
//! kube-sim, one real sshd build host (in its own namespaces, so it needs root) and the
//! controller in-process; a sample TaskRun submitted as Tekton does; its Secret shown
//! (never the private key itself); the key used by the OpenSSH client exactly as the
//! Task would; the TaskRun completed and the host, Secret and finalizer shown clean.
//! With `--cloud` the same story on a dynamic AWS platform served by a local EC2
//! ([`cloud`]). Exit status 0 when every step worked, 1 (with the failed step and why)
//! otherwise; everything started is stopped and removed either way.

mod cloud;

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ec2_testbed::Ec2Testbed;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::wait::await_condition;
use mpc_core::naming::{FINALIZER, HOST_CONFIG_NAME, SECRET_LABEL, secret_name};
use multi_platform_controller::cluster::TaskRunObject;
use multi_platform_controller::remote::{AdminKey, keys::fingerprint, parse_host_key};
use testbed::{HostSpec, Testbed};

/// Runs kube-sim, an sshd build host (with --cloud: a local EC2) and the controller on
/// this machine and takes one TaskRun from submission to cleanup, printing every step.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Keep everything running after the TaskRun is released (for kubectl) until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// A dynamic AWS platform instead of a static host: the TaskRun gets an EC2 instance
    /// of its own from a local EC2 (moto behind a fault proxy, a real sshd per
    /// instance), terminated when it completes. Needs moto (`hack/demo.sh --cloud`
    /// installs it).
    #[arg(long)]
    cloud: bool,
    /// The PLATFORM the sample TaskRun asks for. Default: this machine's, which is the
    /// build host's (or, with --cloud, the dynamic platform's); any other gets an error
    /// Secret and the demo fails at that step.
    #[arg(long)]
    platform: Option<String>,
    /// Seconds each step may take before the demo gives up.
    #[arg(long, default_value_t = 60)]
    step_timeout: u64,
}

const TASKRUN: &str = "sample-build";
const HOST: &str = "build-host-1";

/// A step that did not work, and why.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Step<T = ()> = Result<T, Failure>;

/// What the demo started; stopped at the end, whatever happened.
#[derive(Default)]
struct Started {
    bed: Option<Testbed>,
    /// The local EC2 (`--cloud`).
    ec2: Option<Ec2Testbed>,
}

/// Prints numbered steps with their timings.
struct Steps {
    number: usize,
    total: usize,
    title: String,
    started: Instant,
    demo_started: Instant,
}

impl Steps {
    fn new(total: usize) -> Self {
        Steps {
            number: 0,
            total,
            title: String::new(),
            started: Instant::now(),
            demo_started: Instant::now(),
        }
    }

    fn begin(&mut self, title: &str) {
        self.number += 1;
        self.title = title.to_owned();
        self.started = Instant::now();
        println!("\n[{}/{}] {title}", self.number, self.total);
    }

    fn say(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            println!("       {line}");
        }
    }

    fn done(&self) {
        println!("       ok ({})", human(self.started.elapsed()));
    }
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The platform of this machine, which is the demo build host's.
fn machine_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// The build host is sshd in its own mount/PID/UTS namespaces: that takes root.
fn become_root() -> Result<(), String> {
    if is_root() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    eprintln!(
        "demo: not root; running again under sudo (the sshd build host needs its own namespaces)"
    );
    let err = std::process::Command::new("sudo")
        .arg("-E")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(format!(
        "cannot run sudo ({err}); run the demo as root (hack/demo.sh)"
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = become_root() {
        eprintln!("demo FAILED: {message}");
        return ExitCode::FAILURE;
    }
    // The controller logs warnings and errors only; RUST_LOG=info shows everything.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo FAILED: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(demo(args))
}

async fn demo(args: Args) -> ExitCode {
    let (total, parts) = if args.cloud {
        (
            cloud::TOTAL_STEPS,
            "the controller, the local EC2 and kube-sim",
        )
    } else {
        (TOTAL_STEPS, "the controller, the build host and kube-sim")
    };
    let mut steps = Steps::new(total);
    let mut started = Started::default();
    if args.cloud {
        println!(
            "multi-platform-controller demo: one TaskRun on a dynamic AWS platform (a local \
             EC2), from submission to cleanup, on this machine"
        );
    } else {
        println!(
            "multi-platform-controller demo: one TaskRun from submission to cleanup, on this machine"
        );
    }
    let walk = async {
        if args.cloud {
            cloud::walk_through(&args, &mut steps, &mut started).await
        } else {
            walk_through(&args, &mut steps, &mut started.bed).await
        }
    };
    let outcome = tokio::select! {
        outcome = walk => outcome,
        _ = tokio::signal::ctrl_c() => Err(Failure("interrupted (Ctrl-C)".to_owned())),
    };
    let failed = match outcome {
        Ok(()) => {
            if let (true, Some(bed)) = (args.keep, &started.bed) {
                keep_running(bed, started.ec2.as_ref()).await;
            }
            None
        }
        Err(Failure(why)) => {
            eprintln!(
                "\ndemo FAILED at step {}/{total} ({}): {why}",
                steps.number, steps.title
            );
            Some(why)
        }
    };
    let failed_step = steps.number;
    if failed.is_none() {
        steps.begin(&format!("Stop {parts}"));
    } else {
        println!("\ncleaning up: stopping {parts}");
    }
    // The controller first, so it does not call an EC2 that is gone.
    let stopped = tear_down(started.bed.take(), &steps).await;
    let stopped = stopped.and(cloud::tear_down(started.ec2.take(), &steps).await);
    match (&failed, &stopped) {
        (None, Ok(())) => {
            steps.done();
            let what = if args.cloud {
                "the TaskRun got a VM of its own with a working SSH login, and left nothing behind"
            } else {
                "the TaskRun got a working SSH login and left nothing behind"
            };
            println!(
                "\ndemo finished in {}: {what}",
                human(steps.demo_started.elapsed())
            );
            ExitCode::SUCCESS
        }
        (None, Err(why)) => {
            eprintln!("\ndemo FAILED at step {total}/{total} (clean-up): {why}");
            ExitCode::FAILURE
        }
        (Some(_), result) => {
            if let Err(why) = result {
                eprintln!("clean-up failed too: {why}");
            }
            eprintln!("demo FAILED at step {failed_step}/{total}: see the message above");
            ExitCode::FAILURE
        }
    }
}

/// Stops the controller and kube-sim, stops the host and checks its directory is gone.
async fn tear_down(bed: Option<Testbed>, steps: &Steps) -> Result<(), String> {
    let Some(bed) = bed else {
        return Ok(());
    };
    let host_dirs: Vec<_> = bed.hosts.iter().map(|h| h.host.dir().to_owned()).collect();
    let kubeconfig = bed.env().kubeconfig_path().to_owned();
    let kube_sim = bed.env().is_kube_sim();
    bed.cleanup().await;
    if !kube_sim {
        steps.say("controller stopped (graceful shutdown); the demo's namespace deleted");
    } else if kubeconfig.exists() {
        return Err(format!(
            "kube-sim's kubeconfig {} is still there",
            kubeconfig.display()
        ));
    } else {
        steps.say(format!(
            "controller stopped (graceful shutdown); kube-sim stopped, {} removed",
            kubeconfig.display()
        ));
    }
    for dir in host_dirs {
        if dir.exists() {
            return Err(format!(
                "the build host's directory {} is still there",
                dir.display()
            ));
        }
        steps.say(format!(
            "build host stopped: sshd and its namespaces killed, {} removed",
            dir.display()
        ));
    }
    Ok(())
}

/// The number of steps of the default demo (a static build host).
const TOTAL_STEPS: usize = 10;

async fn walk_through(args: &Args, steps: &mut Steps, slot: &mut Option<Testbed>) -> Step {
    let wait = Duration::from_secs(args.step_timeout);
    let host_platform = machine_platform();
    let platform = args
        .platform
        .clone()
        .unwrap_or_else(|| host_platform.clone());

    steps.begin("Start kube-sim, an in-memory Kubernetes API server");
    let bed = slot.insert(Testbed::start_empty("demo").await?);
    bed.set_wait(wait);
    let url = bed.env().server().map_or_else(
        || "(MPC_TEST_KUBECONFIG)".to_owned(),
        |s| s.url().to_owned(),
    );
    steps.say(format!("API server {url}, namespace {}", bed.namespace()));
    steps.say(format!(
        "Tekton Pipelines CRDs installed, unmodified from {} (no Tekton runs: this demo plays its part)",
        testbed::kube_sim::crds::tekton_crds_dir().display()
    ));
    steps.done();

    steps.begin("Start a build host: OpenSSH sshd in its own mount, PID and UTS namespaces");
    bed.add_hosts(vec![HostSpec::new(HOST, &host_platform, 2)])?;
    let host = &bed.hosts[0].host;
    let host_key = parse_host_key(host.host_key())?;
    steps.say(format!(
        "{HOST}: sshd on {}:22 (platform {host_platform}: the host is this machine; in production \
         it is an arm64, ppc64le or s390x machine and nothing else changes)",
        host.address()
    ));
    steps.say(format!(
        "host key {} {}; admin: root, by key only",
        host_key.algorithm(),
        fingerprint(&host_key)
    ));
    steps.done();

    steps.begin(
        "Create the admin-key Secret and the host-config ConfigMap (the cluster admin's part)",
    );
    bed.create_admin_secrets().await?;
    let data = bed.host_config_data();
    bed.apply_host_config(data.clone()).await?;
    let admin_secret = Testbed::admin_secret_name(&bed.hosts[0]);
    steps.say(format!(
        "Secret {admin_secret}: key id_rsa (root's private key, not shown), label {SECRET_LABEL}=true"
    ));
    steps.say(format!("ConfigMap {HOST_CONFIG_NAME}:"));
    for (key, value) in &data {
        steps.say(format!("  {key}: {}", shorten_key(value)));
    }
    steps.done();

    steps.begin(
        "Start the controller (`run`, in-process) and wait until it is ready and the host is up",
    );
    let index = bed.start_controller(bed.settings()).await?;
    let controller = bed.controller(index);
    kube_sim::wait_until(wait, "the controller is ready", || async {
        controller.health.is_ready()
    })
    .await?;
    steps.say("ready: TaskRun, host-config and admin-key caches synced");
    kube_sim::wait_until(wait, &format!("{HOST} is up"), || async {
        host_up(&controller.metrics.encode(), HOST)
    })
    .await?;
    steps.say(format!(
        "{HOST} is up: probed (admin login, root, tools) and checked for leftover users"
    ));
    steps.done();

    let eligible = submit_taskrun(bed, steps, &platform).await?;

    steps.begin("The controller allocates a host: wait for the TaskRun's Secret");
    let (data, login) = wait_for_access(bed, steps, eligible, wait).await?;
    show_taskrun(bed, steps).await?;
    steps.done();

    steps.begin("Run the build step: `ssh -i id_rsa <host> uname -m`, as the Task does");
    let user = build_step(steps, &data, &login, wait).await?;
    steps.done();

    steps.begin("Tekton completes the TaskRun (Succeeded)");
    bed.complete(TASKRUN, true).await?;
    let completed = Instant::now();
    steps.say("status: Succeeded, completionTime set");
    steps.done();

    steps.begin("The controller releases the host: wait until the finalizer is gone, then check");
    wait_for_release(bed, steps, completed, wait).await?;
    let host = &bed.hosts[0].host;
    let users = host.build_users()?;
    if users.contains(&user) {
        return Err(Failure(format!("user {user} is still on {HOST}")));
    }
    let home = host.run(&["test", "-e", &format!("/home/{user}")])?;
    if home.success() {
        return Err(Failure(format!("/home/{user} is still on {HOST}")));
    }
    steps.say(format!(
        "user {user}: gone from {HOST} (not in /etc/passwd, no /home/{user}; build users left: {})",
        users.len()
    ));
    if bed.secret(TASKRUN).await?.is_some() {
        return Err(Failure(format!(
            "Secret {} is still there",
            secret_name(TASKRUN)
        )));
    }
    steps.say(format!("Secret {}: gone", secret_name(TASKRUN)));
    let taskrun = bed.taskrun(TASKRUN).await?;
    if taskrun
        .as_ref()
        .is_some_and(|tr| tr.assigned_host().is_some())
    {
        return Err(Failure(format!("TaskRun {TASKRUN} still names its host")));
    }
    let labels = taskrun.as_ref().map(our_labels).unwrap_or_default();
    steps.say(format!(
        "TaskRun {TASKRUN}: finalizer and assigned-host label gone (labels left: {labels})"
    ));
    let events = taskrun_events(bed, wait).await?;
    steps.say(format!("Events on the TaskRun: {}", events.join("; ")));
    steps.done();

    Ok(())
}

/// Submits the TaskRun as Tekton does (created, then its Task resolved) and returns
/// when it became eligible.
async fn submit_taskrun(bed: &Testbed, steps: &mut Steps, platform: &str) -> Step<Instant> {
    steps.begin("Submit the TaskRun as Tekton does: create it, then fill status.taskSpec");
    bed.create_taskrun(TASKRUN, platform).await?;
    steps.say(format!(
        "created TaskRun {TASKRUN}: param PLATFORM={platform}, taskRef buildah-remote \
         (not eligible yet: the Task is not resolved)"
    ));
    bed.resolve(TASKRUN).await?;
    let eligible = Instant::now();
    steps.say(format!(
        "status.taskSpec filled: volume ssh mounts Secret {} (now the controller's business)",
        secret_name(TASKRUN)
    ));
    steps.done();
    Ok(eligible)
}

/// Waits until the controller has released the TaskRun (its finalizer gone) and says
/// how long that took after `completed`.
async fn wait_for_release(
    bed: &Testbed,
    steps: &Steps,
    completed: Instant,
    wait: Duration,
) -> Step {
    let taskruns = Api::<TaskRunObject>::namespaced(bed.client(), bed.namespace());
    tokio::time::timeout(
        wait,
        await_condition(taskruns, TASKRUN, |tr: Option<&TaskRunObject>| {
            tr.is_none_or(|tr| !tr.has_finalizer())
        }),
    )
    .await
    .map_err(|_| {
        Failure(format!(
            "the finalizer of {TASKRUN} was not removed within {wait:?}"
        ))
    })??;
    steps.say(format!(
        "finalizer removed {} after completion",
        human(completed.elapsed())
    ));
    Ok(())
}

/// Waits for the TaskRun's Secret and shows it (the key only as its fingerprint); an
/// error Secret fails the step. Returns the Secret's data and its `host` (`user@address`).
async fn wait_for_access(
    bed: &Testbed,
    steps: &Steps,
    eligible: Instant,
    wait: Duration,
) -> Step<(BTreeMap<String, String>, String)> {
    let secrets = Api::<Secret>::namespaced(bed.client(), bed.namespace());
    let secret = tokio::time::timeout(
        wait,
        await_condition(secrets, &secret_name(TASKRUN), |s: Option<&Secret>| {
            s.is_some()
        }),
    )
    .await
    .map_err(|_| {
        Failure(format!(
            "no Secret {} within {wait:?}",
            secret_name(TASKRUN)
        ))
    })??
    .ok_or_else(|| Failure("the Secret vanished".to_owned()))?;
    steps.say(format!(
        "Secret {} written {} after status.taskSpec was filled",
        secret_name(TASKRUN),
        human(eligible.elapsed())
    ));
    let data = secret_text(&secret);
    if let Some(error) = data.get("error") {
        return Err(Failure(format!(
            "the controller wrote an error Secret instead of a login:\n{}",
            error.trim_end()
        )));
    }
    steps.say(format!(
        "keys: {}",
        data.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    let login = data
        .get("host")
        .ok_or_else(|| Failure("the Secret has no `host`".to_owned()))?
        .clone();
    let private_key = data
        .get("id_rsa")
        .ok_or_else(|| Failure("the Secret has no `id_rsa`".to_owned()))?;
    let key = AdminKey::parse(private_key.as_bytes())
        .map_err(|e| Failure(format!("id_rsa is not a usable private key: {e}")))?;
    steps.say(format!("  host:        {login}"));
    steps.say(format!(
        "  user-dir:    {}",
        data.get("user-dir").map_or("(missing)", String::as_str)
    ));
    steps.say(format!(
        "  id_rsa:      {} … ({} {}; the key itself is not printed)",
        private_key.lines().next().unwrap_or_default(),
        key.algorithm(),
        key.fingerprint()
    ));
    if let Some(line) = data.get("known_hosts") {
        steps.say(format!("  known_hosts: {}", shorten_key(line.trim_end())));
    }
    Ok((data, login))
}

/// The build step: `ssh … uname -m` with the Secret's key and `known_hosts`, shown with
/// its output. Returns the build user.
async fn build_step(
    steps: &Steps,
    data: &BTreeMap<String, String>,
    login: &str,
    wait: Duration,
) -> Step<String> {
    let user = login.split('@').next().unwrap_or_default().to_owned();
    let (command, output) = ssh_as_the_task(data, login, wait).await?;
    steps.say(format!("$ {command}"));
    if !output.status.success() {
        return Err(Failure(format!(
            "ssh failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let machine = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    steps.say(&machine);
    steps.say(format!(
        "(logged in as {user}, the TaskRun's own user; the mounted key files are deleted again)"
    ));
    Ok(user)
}

/// `--keep`: says how to look around with kubectl (and at the local EC2) and waits for
/// Ctrl-C.
async fn keep_running(bed: &Testbed, ec2: Option<&Ec2Testbed>) {
    let kubeconfig = bed.env().kubeconfig_path().display().to_string();
    println!("\nEverything keeps running (--keep). In another shell (as root):");
    println!("  export KUBECONFIG={kubeconfig}");
    println!(
        "  kubectl -n {ns} get taskruns,secrets,configmaps; kubectl -n {ns} get events",
        ns = bed.namespace()
    );
    if let Some(ec2) = ec2 {
        cloud::keep_hint(ec2);
    }
    println!("Press Ctrl-C to stop everything and clean up.");
    let _ = tokio::signal::ctrl_c().await;
}

/// The Secret's data as text (every value the controller writes is text).
fn secret_text(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// `ssh-ed25519 AAAAC3…XYZ comment` shortened so a line stays readable.
fn shorten_key(value: &str) -> String {
    value
        .split(' ')
        .map(|word| {
            if word.len() > 40 && word.is_ascii() && word.starts_with("AAAA") {
                format!("{}…{}", &word[..12], &word[word.len() - 8..])
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the demo's TaskRun and says whether it carries our finalizer, and our labels.
async fn show_taskrun(bed: &Testbed, steps: &Steps) -> Step<TaskRunObject> {
    let taskrun = bed
        .taskrun(TASKRUN)
        .await?
        .ok_or_else(|| Failure(format!("TaskRun {TASKRUN} vanished")))?;
    steps.say(format!(
        "TaskRun {TASKRUN}: finalizer {}, labels {}",
        if taskrun.has_finalizer() {
            FINALIZER
        } else {
            "(none!)"
        },
        our_labels(&taskrun)
    ));
    Ok(taskrun)
}

/// Our labels on the TaskRun (`key=value, …`).
fn our_labels(taskrun: &TaskRunObject) -> String {
    ours(taskrun.metadata.labels.as_ref())
}

/// Our annotations on the TaskRun (`key=value, …`).
fn our_annotations(taskrun: &TaskRunObject) -> String {
    ours(taskrun.metadata.annotations.as_ref())
}

/// The entries of `map` under the controller's prefix, `key=value, …`.
fn ours(map: Option<&BTreeMap<String, String>>) -> String {
    let ours: Vec<String> = map
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("build.appstudio.redhat.com/"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if ours.is_empty() {
        "(none of ours)".to_owned()
    } else {
        ours.join(", ")
    }
}

/// Whether the metrics say `host` is up.
fn host_up(metrics: &str, host: &str) -> bool {
    let needle = format!("host=\"{host}\"");
    metrics.lines().any(|line| {
        line.starts_with("multi_platform_controller_host_up{")
            && line.contains(&needle)
            && line.trim_end().ends_with(" 1")
    })
}

/// Mounts the Secret's files as the Task's pod would (key mode 0600) and runs the
/// OpenSSH client against `login`, checking the host key with the Secret's `known_hosts`.
async fn ssh_as_the_task(
    data: &BTreeMap<String, String>,
    login: &str,
    wait: Duration,
) -> Step<(String, std::process::Output)> {
    let mount = tempfile::tempdir()?;
    let key_path = mount.path().join("id_rsa");
    write_private(&key_path, data.get("id_rsa").map_or("", String::as_str))?;
    let known_hosts = mount.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        data.get("known_hosts").map_or("", String::as_str),
    )?;
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.arg("-i")
        .arg(&key_path)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg(login)
        .args(["uname", "-m"])
        .kill_on_drop(true);
    let command = format!(
        "ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes \
         -o BatchMode=yes {login} uname -m",
        key_path.display(),
        known_hosts.display()
    );
    let output = tokio::time::timeout(wait, ssh.output())
        .await
        .map_err(|_| Failure(format!("ssh did not finish within {wait:?}")))??;
    Ok((command, output))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The Events recorded on the TaskRun (`reason: note`), once `Released` is among them.
async fn taskrun_events(bed: &Testbed, wait: Duration) -> Step<Vec<String>> {
    let api = Api::<Event>::namespaced(bed.client(), bed.namespace());
    let list = || async {
        let events = api.list(&ListParams::default()).await.ok()?;
        let mut ours: Vec<&Event> = events
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(TASKRUN))
            .collect();
        ours.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        let lines: Vec<String> = ours
            .iter()
            .map(|e| {
                format!(
                    "{} ({})",
                    e.reason.as_deref().unwrap_or("?"),
                    e.note.as_deref().unwrap_or("")
                )
            })
            .collect();
        lines
            .iter()
            .any(|l| l.starts_with("Released"))
            .then_some(lines)
    };
    Ok(kube_sim::wait_for(wait, "the Released Event", list).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_base64_words_are_shortened_and_the_rest_is_kept() {
        let key = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5{} host-1", "x".repeat(40));
        assert_eq!(
            shorten_key(&key),
            "ssh-ed25519 AAAAC3NzaC1l…xxxxxxxx host-1"
        );
        assert_eq!(shorten_key("127.0.0.9 short"), "127.0.0.9 short");
    }

    #[test]
    fn a_host_is_up_only_when_its_own_gauge_is_one() {
        let metrics = "multi_platform_controller_host_up{host=\"a\",platform=\"linux/amd64\"} 1\n\
                       multi_platform_controller_host_up{host=\"b\",platform=\"linux/amd64\"} 0\n";
        assert!(host_up(metrics, "a"));
        assert!(!host_up(metrics, "b"));
        assert!(!host_up(metrics, "c"));
    }

    #[test]
    fn the_machine_platform_is_a_linux_platform() {
        assert!(machine_platform().starts_with("linux/"));
        assert!(mpc_core::platform::Platform::parse(&machine_platform()).is_ok());
    }
}
