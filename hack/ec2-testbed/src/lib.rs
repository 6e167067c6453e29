//! A local EC2 for tests, entirely on 127.0.0.0/8.
//!
//! - [`Moto`]: moto's server (pinned, installed by `hack/test.sh`) on 127.0.0.1, one per
//!   test, killed on drop.
//! - [`FaultProxy`]: an HTTP proxy in front of moto that the client under test is
//!   pointed at: it records every request (action and form parameters), injects faults
//!   per EC2 action ([`Fault`]: EC2 errors with EC2's status codes, bare HTTP statuses,
//!   delays, closed connections; always, the next N, or a seeded rate) and gives
//!   `RunInstances` EC2's client-token idempotency, which moto lacks.
//! - A VPC and subnet in 127.N.0.0/16 ([`Network`]) so moto gives instances loopback
//!   private addresses, an imported SSH [`KeyPair`], and an AMI of moto's catalogue.
//! - [`InstanceHosts`]: a real sshd (`test-hosts`) on each live instance's private
//!   address, with `ec2-user` (passwordless sudo, the key pair's key), after a
//!   configurable boot delay, gone when the instance ends.
//!
//! [`Ec2Testbed`] puts them together:
//!
//! ```no_run
//! # async fn example() -> Result<(), ec2_testbed::Error> {
//! let bed = ec2_testbed::Ec2Testbed::start().await?;
//! bed.proxy().inject(ec2_testbed::Fault::ec2_error("RunInstances", "RequestLimitExceeded").times(1));
//! // Point the client under test at bed.endpoint_url(), launch into
//! // bed.network().subnet_id with key bed.key_pair().name(), then:
//! // let host = bed.hosts().wait_for_host(&instance_id, timeout).await?;
//! # Ok(()) }
//! ```

mod admin;
mod error;
mod faults;
mod hosts;
mod http;
mod keys;
mod moto;
mod proxy;

pub use admin::{ACCESS_KEY_ID, Network, REGION, SECRET_ACCESS_KEY, admin_client};
pub use error::Error;
pub use faults::{Fault, FaultEffect, Schedule, aws_status, ec2_error_body};
pub use hosts::{HostEvent, HostsOptions, HostsView, InstanceHosts};
pub use keys::{KeyKind, KeyPair};
pub use moto::{DEFAULT_MOTO_VENV, MOTO_REQUIREMENTS, MOTO_VERSION, Moto, moto_server_path};
pub use proxy::{FaultId, FaultProxy, Outcome, ProxyOptions, RecordedCall};

/// How to set up an [`Ec2Testbed`].
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// The key pair's algorithm.
    pub key_kind: KeyKind,
    /// The key pair's EC2 name.
    pub key_name: String,
    /// Start [`InstanceHosts`] (sshd hosts for instances; needs root).
    pub hosts: bool,
    /// The hosts' settings (boot delay, poll interval, user).
    pub hosts_options: HostsOptions,
    /// The proxy's settings.
    pub proxy_options: ProxyOptions,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        TestbedOptions {
            key_kind: KeyKind::Ed25519,
            key_name: "mpc-builder".to_owned(),
            hosts: true,
            hosts_options: HostsOptions::default(),
            proxy_options: ProxyOptions::default(),
        }
    }
}

/// moto, the fault proxy in front of it, a loopback network, an imported key pair, and
/// (optionally) sshd hosts for the instances. Everything stops when dropped.
#[derive(Debug)]
pub struct Ec2Testbed {
    // Field order is drop order: hosts first (they poll moto), moto last.
    hosts: Option<InstanceHosts>,
    proxy: FaultProxy,
    admin: aws_sdk_ec2::Client,
    network: Network,
    key_pair: KeyPair,
    image_id: String,
    moto: Moto,
}

impl Ec2Testbed {
    /// A testbed with the default options.
    pub async fn start() -> Result<Ec2Testbed, Error> {
        Self::start_with(TestbedOptions::default()).await
    }

    /// A testbed with `options`.
    pub async fn start_with(options: TestbedOptions) -> Result<Ec2Testbed, Error> {
        let moto = Moto::start().await?;
        let admin = admin_client(&moto.endpoint_url());
        let network = admin::create_network(&admin).await?;
        let key_kind = options.key_kind;
        let key_name = options.key_name.clone();
        let key_pair = tokio::task::spawn_blocking(move || KeyPair::generate(key_name, key_kind))
            .await
            .map_err(|e| Error::Key(e.to_string()))??;
        admin::import_key_pair(&admin, key_pair.name(), key_pair.public_key()).await?;
        let image_id = admin::pick_image(&admin).await?;
        let proxy = FaultProxy::start_with(moto.addr(), options.proxy_options).await?;
        let hosts = options
            .hosts
            .then(|| InstanceHosts::start(admin.clone(), options.hosts_options));
        Ok(Ec2Testbed {
            hosts,
            proxy,
            admin,
            network,
            key_pair,
            image_id,
            moto,
        })
    }

    /// The fault proxy's URL: the endpoint for the client under test.
    pub fn endpoint_url(&self) -> String {
        self.proxy.endpoint_url()
    }

    /// The fault proxy (faults, recorded requests).
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    /// moto itself.
    pub fn moto(&self) -> &Moto {
        &self.moto
    }

    /// An SDK client straight to moto (not through the proxy), to look at or change
    /// its state behind the client under test's back.
    pub fn admin(&self) -> &aws_sdk_ec2::Client {
        &self.admin
    }

    /// The VPC and subnet in 127.0.0.0/8; launch into `subnet_id`.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The key pair imported into moto (its private key is the Secret's `id_rsa`).
    pub fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// An AMI id from moto's catalogue.
    pub fn image_id(&self) -> &str {
        &self.image_id
    }

    /// The instance hosts.
    ///
    /// # Panics
    /// When the testbed was started with `hosts: false`.
    pub fn hosts(&self) -> &InstanceHosts {
        self.hosts
            .as_ref()
            .expect("the testbed was started without instance hosts (TestbedOptions::hosts)")
    }

    /// Creates an IAM instance profile in moto (its `RunInstances` checks that a
    /// profile named in the request exists) and returns its ARN.
    pub async fn create_instance_profile(&self, name: &str) -> Result<String, Error> {
        admin::create_instance_profile(self.moto.addr(), name).await
    }
}
