//! The whole product on one machine, for integration tests, the demo and benchmarks:
//! kube-sim (or a real cluster when `MPC_TEST_KUBECONFIG` is set), real sshd build
//! hosts on loopback addresses, admin-key Secrets and a host-config for them, and
//! controllers running in-process — with TaskRuns driven the way Tekton drives them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testbed::Error> {
//! let mut bed = testbed::Testbed::start("demo", vec![testbed::HostSpec::new("arm1", "linux/arm64", 2)]).await?;
//! bed.start_controller(bed.settings()).await?;
//! bed.submit("build-1", "linux/arm64").await?;
//! let access = bed.wait_for_secret("build-1").await?;
//! bed.complete("build-1", true).await?;
//! bed.wait_released("build-1").await?;
//! bed.cleanup().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube_sim::crds::taskrun_api_resource;
use kube_sim::testenv::TestEnv;
use kube_sim::{wait_for, wait_until};
use mpc_core::naming::{
    CONFIG_LABEL, FINALIZER, HOST_CONFIG_NAME, LEASE_NAME, SECRET_LABEL, UserName, secret_name,
};
use multi_platform_controller::cluster::TaskRunObject;
use multi_platform_controller::controller::{RunSettings, run};
use multi_platform_controller::metrics::Metrics;
use multi_platform_controller::server::Health;
use serde_json::json;
use test_hosts::TestHost;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod observe;
pub mod process;

pub use kube_sim;
pub use observe::SeenEvent;
pub use process::{ControllerProcess, Memory, cpu_time};
pub use test_hosts;

mod capacity;
mod link;

pub use capacity::{CapacityReport, CapacityWatch, build_users_in};
pub use link::ApiLink;

/// How long the waits of this crate wait by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(90);

/// Something the test bed could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes side (kube-sim or the cluster).
    #[error("test environment: {0}")]
    Env(#[from] kube_sim::testenv::TestEnvError),
    /// A Kubernetes request.
    #[error("Kubernetes request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An sshd build host.
    #[error("build host: {0}")]
    Host(#[from] test_hosts::Error),
    /// A condition was not reached in time.
    #[error("{0}")]
    Timeout(#[from] kube_sim::testenv::WaitTimeout),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
}

/// How the controller logs in to a build host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    /// As root.
    Root,
    /// As a user with passwordless sudo.
    Sudo,
}

/// A build host to start.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Pool name (`host.<name>.*`).
    pub name: String,
    /// Its platform.
    pub platform: String,
    /// Its slots.
    pub concurrency: u32,
    /// The admin login.
    pub admin: Admin,
    /// Pin its host key in host-config (else `accept-new` remembers it).
    pub pin_host_key: bool,
}

impl HostSpec {
    /// A root-admin host with a pinned host key.
    pub fn new(name: &str, platform: &str, concurrency: u32) -> Self {
        HostSpec {
            name: name.to_owned(),
            platform: platform.to_owned(),
            concurrency,
            admin: Admin::Root,
            pin_host_key: true,
        }
    }
}

/// A running build host with its spec.
pub struct BuildHost {
    /// What it was started as.
    pub spec: HostSpec,
    /// The sshd host itself.
    pub host: TestHost,
}

/// A controller running in-process.
pub struct RunningController {
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its health state.
    pub health: Arc<Health>,
    stop: Option<oneshot::Sender<()>>,
    /// `None` once the controller ended (a finished task must not be awaited again).
    task: Option<JoinHandle<()>>,
}

/// What a TaskRun's Secret granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Issued {
    /// SSH access to a build host.
    Access {
        /// The build user.
        user: String,
        /// `user@address`.
        host: String,
        /// The private key.
        private_key: String,
        /// `/home/<user>`.
        user_dir: String,
    },
    /// A local platform: `host: localhost`.
    Local,
    /// The error Secret's text.
    Error(String),
}

/// The test bed. See the crate docs.
pub struct Testbed {
    env: TestEnv,
    /// The build hosts, in the order given.
    pub hosts: Vec<BuildHost>,
    controllers: Vec<RunningController>,
    wait: Duration,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

impl Testbed {
    /// Starts the environment, the hosts, their admin Secrets and the host-config.
    /// No controller runs yet. Host names get no suffix on kube-sim; on a real cluster
    /// they are unique per namespace anyway because everything lives in the test's own.
    pub async fn start(prefix: &str, specs: Vec<HostSpec>) -> Result<Testbed, Error> {
        let mut bed = Testbed::start_empty(prefix).await?;
        bed.add_hosts(specs)?;
        bed.create_admin_secrets().await?;
        bed.apply_host_config(bed.host_config_data()).await?;
        Ok(bed)
    }

    /// Starts the environment alone (kube-sim or the cluster, with the upstream Tekton
    /// CRDs): no hosts, no Secrets, no host-config — for callers that show each step, like
    /// the demo.
    pub async fn start_empty(prefix: &str) -> Result<Testbed, Error> {
        let env = TestEnv::start(prefix).await?;
        env.ensure_tekton_crds().await?;
        Ok(Testbed {
            env,
            hosts: Vec::new(),
            controllers: Vec::new(),
            wait: DEFAULT_WAIT,
        })
    }

    /// Starts sshd build hosts for `specs` (in parallel). Their admin Secrets and
    /// host-config entries are not written yet: see [`Testbed::create_admin_secrets`]
    /// and [`Testbed::apply_host_config`].
    pub fn add_hosts(&mut self, specs: Vec<HostSpec>) -> Result<(), Error> {
        let started = test_hosts::start_hosts(specs.len())?;
        self.hosts.extend(
            specs
                .into_iter()
                .zip(started)
                .map(|(spec, host)| BuildHost { spec, host }),
        );
        Ok(())
    }

    /// Creates the labelled admin-key Secret of every host (named by
    /// [`Testbed::admin_secret_name`]), as a cluster admin does.
    pub async fn create_admin_secrets(&self) -> Result<(), Error> {
        for host in &self.hosts {
            self.put_admin_secret(host).await?;
        }
        Ok(())
    }

    /// Changes how long the `wait_*` methods wait.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// The test's namespace: the controller's namespace and the TaskRuns'.
    pub fn namespace(&self) -> &str {
        self.env.namespace()
    }

    /// A client (default namespace = the test's).
    pub fn client(&self) -> Client {
        self.env.client()
    }

    /// The Kubernetes environment (kubeconfig, fault injection on kube-sim).
    pub fn env(&self) -> &TestEnv {
        &self.env
    }

    /// The build host named `name`.
    pub fn host(&self, name: &str) -> &BuildHost {
        self.hosts
            .iter()
            .find(|h| h.spec.name == name)
            .unwrap_or_else(|| panic!("no build host {name}"))
    }

    /// The name of a host's admin-key Secret (`host.<name>.secret`).
    pub fn admin_secret_name(host: &BuildHost) -> String {
        format!("{}-admin-key", host.spec.name)
    }

    async fn put_admin_secret(&self, host: &BuildHost) -> Result<(), Error> {
        let login = match host.spec.admin {
            Admin::Root => host.host.root(),
            Admin::Sudo => host.host.sudo_admin(),
        };
        self.create_labelled_secret(
            &Self::admin_secret_name(host),
            &[("id_rsa", &login.private_key)],
        )
        .await
    }

    /// Creates the Secret `name` with `data`, labelled for the controller to read, as a
    /// cluster admin does for admin keys and cloud credentials.
    pub async fn create_labelled_secret(
        &self,
        name: &str,
        data: &[(&str, &str)],
    ) -> Result<(), Error> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(SECRET_LABEL.into(), "true".into())])),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client(), self.namespace())
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    /// The host-config data describing every host.
    pub fn host_config_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        for h in &self.hosts {
            let mut set = |key: &str, value: String| {
                data.insert(format!("host.{}.{key}", h.spec.name), value);
            };
            set("address", h.host.address().to_string());
            set("platform", h.spec.platform.clone());
            set(
                "user",
                match h.spec.admin {
                    Admin::Root => "root".to_owned(),
                    Admin::Sudo => test_hosts::SUDO_ADMIN_USER.to_owned(),
                },
            );
            set("secret", Self::admin_secret_name(h));
            set("concurrency", h.spec.concurrency.to_string());
            if h.spec.pin_host_key {
                set("host-key", h.host.host_key().to_owned());
            }
        }
        data
    }

    /// Creates or replaces the (labelled) host-config ConfigMap.
    pub async fn apply_host_config(&self, data: BTreeMap<String, String>) -> Result<(), Error> {
        let api = Api::<ConfigMap>::namespaced(self.client(), self.namespace());
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(HOST_CONFIG_NAME.into()),
                labels: Some(BTreeMap::from([(CONFIG_LABEL.into(), "hosts".into())])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let patch = PatchParams::apply("testbed").force();
        api.patch(HOST_CONFIG_NAME, &patch, &Patch::Apply(&cm))
            .await?;
        Ok(())
    }

    /// Deletes host-config.
    pub async fn delete_host_config(&self) -> Result<(), Error> {
        let api = Api::<ConfigMap>::namespaced(self.client(), self.namespace());
        match api.delete(HOST_CONFIG_NAME, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Controller settings for tests: scoped to this namespace, quick reaper and
    /// retries, short shutdown grace.
    pub fn settings(&self) -> RunSettings {
        let mut s = RunSettings::new(self.namespace());
        s.taskrun_namespace = Some(self.namespace().to_owned());
        s.reap_interval = Duration::from_secs(5);
        s.reap_min_age = Duration::ZERO;
        s.core.retry_base = Duration::from_millis(200);
        s.core.retry_max = Duration::from_secs(5);
        s.shutdown_grace = Duration::from_secs(10);
        s
    }

    /// Starts a controller with its own client (so a replica does not share a
    /// connection pool) and returns its index.
    pub async fn start_controller(&mut self, settings: RunSettings) -> Result<usize, Error> {
        let client = self.env.new_client().await?;
        self.start_controller_with_client(settings, client).await
    }

    /// Starts a controller that talks to the cluster through `client` (for example
    /// one from an [`ApiLink`], to cut it off later) and returns its index.
    pub async fn start_controller_with_client(
        &mut self,
        settings: RunSettings,
        client: Client,
    ) -> Result<usize, Error> {
        let metrics = Arc::new(Metrics::new().map_err(|e| Error::Other(format!("metrics: {e}")))?);
        let health = Arc::new(Health::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let (metrics, health) = (Arc::clone(&metrics), Arc::clone(&health));
            async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = run(client, settings, metrics, health, shutdown).await {
                    tracing::error!(error = %e, "test controller failed");
                }
            }
        });
        self.controllers.push(RunningController {
            metrics,
            health,
            stop: Some(stop),
            task: Some(task),
        });
        Ok(self.controllers.len() - 1)
    }

    /// Starts the real controller binary (`multi-platform-controller run`) as its own
    /// process against this environment, with this namespace as its own. It watches
    /// TaskRuns in every namespace, as deployed.
    pub fn spawn_controller_process(
        &self,
        binary: &std::path::Path,
        args: &[&str],
    ) -> Result<ControllerProcess, Error> {
        ControllerProcess::start(binary, self.env.kubeconfig_path(), self.namespace(), args)
    }

    /// [`Testbed::spawn_controller_process`] with more environment variables (the EC2
    /// endpoint: `AWS_ENDPOINT_URL_EC2`).
    pub fn spawn_controller_process_with_env(
        &self,
        binary: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ControllerProcess, Error> {
        ControllerProcess::start_with_env(
            binary,
            self.env.kubeconfig_path(),
            self.namespace(),
            args,
            env,
        )
    }

    /// A running controller.
    pub fn controller(&self, index: usize) -> &RunningController {
        &self.controllers[index]
    }

    /// Stops a controller gracefully (as on SIGTERM) and waits for it to end.
    pub async fn stop_controller(&mut self, index: usize) {
        let c = &mut self.controllers[index];
        if let Some(stop) = c.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = c.task.take() {
            let _ = task.await;
        }
    }

    /// Kills a controller at once, in the middle of whatever it does (a crash).
    pub async fn kill_controller(&mut self, index: usize) {
        let c = &mut self.controllers[index];
        c.stop.take();
        if let Some(task) = c.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// A relay to kube-sim that can be cut, for a controller to go through (kube-sim
    /// only: on a real cluster this is an error).
    pub async fn api_link(&self) -> Result<ApiLink, Error> {
        let server = self.env.server().ok_or_else(|| {
            Error::Other("an API link needs kube-sim, not a real cluster".to_owned())
        })?;
        ApiLink::start(server.addr())
            .await
            .map_err(|e| Error::Other(format!("starting the API relay: {e}")))
    }

    /// Samples the build users of every host continuously until
    /// [`CapacityWatch::finish`], recording any moment a host holds more users than
    /// its concurrency.
    pub fn watch_capacity(&self) -> CapacityWatch {
        CapacityWatch::start(
            self.hosts
                .iter()
                .map(|h| {
                    (
                        h.spec.name.clone(),
                        h.host.dir().join("etc/passwd"),
                        h.spec.concurrency as usize,
                    )
                })
                .collect(),
        )
    }

    /// The holder of the leader-election Lease in the test namespace (`None` when the
    /// Lease is free or does not exist).
    pub async fn lease_holder(&self) -> Result<Option<String>, Error> {
        let lease = Api::<Lease>::namespaced(self.client(), self.namespace())
            .get_opt(LEASE_NAME)
            .await?;
        Ok(lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty()))
    }

    fn taskruns(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(), self.namespace(), &taskrun_api_resource())
    }

    /// Creates a TaskRun with a `PLATFORM` param, as a user does; Tekton has not
    /// resolved its Task yet.
    pub async fn create_taskrun(&self, name: &str, platform: &str) -> Result<(), Error> {
        let tr: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": name},
            "spec": {
                "params": [{"name": "PLATFORM", "value": platform}],
                "taskRef": {"name": "buildah-remote"},
            },
        }))
        .map_err(|e| Error::Other(e.to_string()))?;
        self.taskruns().create(&PostParams::default(), &tr).await?;
        Ok(())
    }

    /// Tekton resolved the Task: `status.taskSpec` shows the SSH Secret volume. Like
    /// Tekton, it writes a status the v1 schema accepts: `podName` (the pod Tekton creates
    /// is `<taskrun>-pod`), `startTime`, the `Succeeded` condition.
    pub async fn resolve(&self, name: &str) -> Result<(), Error> {
        let status = json!({"status": {
            "podName": format!("{name}-pod"),
            "startTime": "2026-11-23T11:59:00Z",
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}],
            "taskSpec": {
                "steps": [{"name": "build", "image": "registry.example/builder", "script": "true"}],
                "volumes": [{"name": "ssh", "secret": {"secretName": secret_name(name)}}],
            },
        }});
        self.taskruns()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
        Ok(())
    }

    /// Creates and resolves a TaskRun: what a pipeline author's build looks like.
    pub async fn submit(&self, name: &str, platform: &str) -> Result<(), Error> {
        self.create_taskrun(name, platform).await?;
        self.resolve(name).await
    }

    /// Tekton finishes the run (succeeded or failed). Tekton's status always carries
    /// `podName` (the v1 schema requires it), even for a run it never resolved.
    pub async fn complete(&self, name: &str, succeeded: bool) -> Result<(), Error> {
        let status = json!({"status": {
            "podName": format!("{name}-pod"),
            "completionTime": "2026-11-23T12:00:00Z",
            "conditions": [{
                "type": "Succeeded",
                "status": if succeeded { "True" } else { "False" },
                "reason": if succeeded { "Succeeded" } else { "Failed" },
            }],
        }});
        self.taskruns()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
        Ok(())
    }

    /// A user cancels the run (`spec.status: TaskRunCancelled`).
    pub async fn cancel(&self, name: &str) -> Result<(), Error> {
        self.taskruns()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"status": "TaskRunCancelled"}})),
            )
            .await?;
        Ok(())
    }

    /// A user deletes the TaskRun.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.taskruns()
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// Applies a JSON merge patch to the TaskRun, as another controller or a user
    /// would (foreign labels, annotations, finalizers).
    pub async fn patch_taskrun(&self, name: &str, patch: serde_json::Value) -> Result<(), Error> {
        self.taskruns()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// The TaskRun as the controller reads it, if it exists.
    pub async fn taskrun(&self, name: &str) -> Result<Option<TaskRunObject>, Error> {
        let Some(obj) = self.taskruns().get_opt(name).await? else {
            return Ok(None);
        };
        let value = serde_json::to_value(obj).map_err(|e| Error::Other(e.to_string()))?;
        Ok(Some(
            serde_json::from_value(value).map_err(|e| Error::Other(e.to_string()))?,
        ))
    }

    /// The TaskRun's Secret, if it exists.
    pub async fn secret(&self, name: &str) -> Result<Option<Secret>, Error> {
        Ok(Api::<Secret>::namespaced(self.client(), self.namespace())
            .get_opt(&secret_name(name))
            .await?)
    }

    /// Waits for the TaskRun's Secret and says what it grants.
    pub async fn wait_for_secret(&self, name: &str) -> Result<Issued, Error> {
        let what = format!("the Secret of {name}");
        let secret = wait_for(self.wait, &what, || async {
            self.secret(name).await.ok().flatten()
        })
        .await?;
        if let Some(error) = text(&secret, "error") {
            return Ok(Issued::Error(error));
        }
        let host = text(&secret, "host").unwrap_or_default();
        if host == "localhost" {
            return Ok(Issued::Local);
        }
        Ok(Issued::Access {
            user: host.split('@').next().unwrap_or_default().to_owned(),
            host: host.clone(),
            private_key: text(&secret, "id_rsa").unwrap_or_default(),
            user_dir: text(&secret, "user-dir").unwrap_or_default(),
        })
    }

    /// Runs `command` on the granted host over the OpenSSH client, as the Task does.
    pub fn ssh(&self, access: &Issued, command: &str) -> Result<test_hosts::CommandOutput, Error> {
        let Issued::Access {
            user,
            host,
            private_key,
            ..
        } = access
        else {
            return Err(Error::Other(format!("{access:?} grants no SSH access")));
        };
        let address = host.rsplit('@').next().unwrap_or_default();
        let target = self
            .hosts
            .iter()
            .find(|h| h.host.address().to_string() == address)
            .ok_or_else(|| Error::Other(format!("no build host at {address}")))?;
        Ok(target.host.ssh(user, private_key, command)?)
    }

    /// The `u-*` users on a host, as its admin sees them.
    pub fn users_on(&self, host: &str) -> Result<Vec<String>, Error> {
        Ok(self.host(host).host.build_users()?)
    }

    /// Waits until the TaskRun is released: no Secret, no finalizer, and its user on
    /// no host.
    pub async fn wait_released(&self, name: &str) -> Result<(), Error> {
        let user = UserName::for_taskrun(name, self.namespace()).to_string();
        let what = format!("{name} released (Secret, finalizer and user gone)");
        wait_until(self.wait, &what, || async {
            let secret_gone = matches!(self.secret(name).await, Ok(None));
            let finalizer_gone = match self.taskrun(name).await {
                Ok(Some(tr)) => !tr.has_finalizer(),
                Ok(None) => true,
                Err(_) => false,
            };
            let user_gone = self.hosts.iter().all(|h| {
                h.host
                    .build_users()
                    .map(|users| !users.contains(&user))
                    .unwrap_or(false)
            });
            secret_gone && finalizer_gone && user_gone
        })
        .await?;
        Ok(())
    }

    /// Waits until the TaskRun carries the waiting label.
    pub async fn wait_waiting(&self, name: &str) -> Result<(), Error> {
        let what = format!("{name} waiting for a host");
        wait_until(self.wait, &what, || async {
            matches!(self.taskrun(name).await, Ok(Some(tr)) if tr.is_waiting())
        })
        .await?;
        Ok(())
    }

    /// Waits until the TaskRun is gone from the cluster.
    pub async fn wait_gone(&self, name: &str) -> Result<(), Error> {
        let what = format!("{name} deleted");
        wait_until(self.wait, &what, || async {
            matches!(self.taskrun(name).await, Ok(None))
        })
        .await?;
        Ok(())
    }

    /// Whether our finalizer is on the TaskRun.
    pub async fn has_finalizer(&self, name: &str) -> Result<bool, Error> {
        Ok(self.taskrun(name).await?.is_some_and(|tr| {
            tr.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER)
        }))
    }

    /// Stops every controller and deletes the namespace (real cluster); hosts stop
    /// when dropped.
    pub async fn cleanup(mut self) {
        for i in 0..self.controllers.len() {
            self.stop_controller(i).await;
        }
        let _ = self.env.cleanup().await;
    }
}

/// Installs a test log subscriber (`RUST_LOG`, default `info`); later calls are no-ops.
pub fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}
