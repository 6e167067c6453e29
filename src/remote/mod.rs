//! The SSH shell around build hosts: throwaway build users (contract §2.4–§2.5).
//!
//! - [`keys`]: a fresh ed25519 pair per TaskRun ([`generate`]), admin keys from Secrets,
//!   host keys from the config;
//! - [`request`]: the validated data a provisioning run writes (pure);
//! - [`script`]: the fixed remote scripts and exact command lines (pure);
//! - [`report`]: reading the scripts' answers (pure);
//! - [`host_key`]: host-key policy and the remembered-key store;
//! - [`handover`]: Windows and macOS VMs hand their builder account's key over;
//! - [`SshPool::try_login`]: a one-off login as any user with any key (checks such as
//!   "sshd refuses an expired build key");
//! - [`session`]: the connection pool that runs it all ([`SshPool`]), with private
//!   modules for making a connection (handshake, host-key check, authentication) and
//!   running one command on a channel.
//!
//! Typical use by the controller:
//!
//! ```no_run
//! # async fn demo(host: multi_platform_controller::remote::HostTarget) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, SystemTime};
//! use mpc_core::naming::UserName;
//! use multi_platform_controller::remote::{generate, SshSettings, ProvisionRequest, SshPool};
//!
//! let pool = SshPool::new(SshSettings::default());
//! let user = UserName::for_taskrun("buildah-remote-x7k2q", "dev-tenant");
//! let key = generate()?;
//! let expires = SystemTime::now() + Duration::from_secs(24 * 3600);
//! let request = ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?;
//! let done = pool.provision(&host, &request).await?;
//! // … write key.private_key_openssh() into the Secret, later:
//! pool.cleanup(&host, &user).await?;
//! # Ok(()) }
//! ```

mod channel;
mod connect;
pub mod error;
pub mod handover;
pub mod host_key;
pub mod keys;
mod login;
pub mod session;
pub mod settings;
pub mod target;

pub use error::{FailureClass, RemoteError, SshStep};
pub use handover::{BuilderKey, HandoverFailure};
pub use host_key::{HostKeyPolicy, KnownHosts, KnownHostsError, MemoryKnownHosts};
pub use keys::{
    AdminKey, KeyError, UserKeyPair, fingerprint, generate, known_hosts_line, parse_host_key,
};
pub use login::LoginOutcome;
pub use mpc_core::host_work::report::BuildUser;
pub use mpc_core::host_work::request::{InvalidRequest, ProvisionRequest};
pub use mpc_core::host_work::script::Privilege;
pub use session::{CleanedUp, ProbeReport, Provisioned, SshPool};
pub use settings::SshSettings;
pub use target::HostTarget;
