//! The EC2 shell of the `dynamic` AWS platforms: one EC2 instance per TaskRun.
//!
//! A thin async layer over the AWS SDK for Rust that sends exactly the requests of the
//! Konflux Go controller (`pkg/aws`), so the same IAM policies keep working:
//!
//! - [`Ec2Client::launch`]: `RunInstances` with the [`LaunchRequest`]'s parameters, the
//!   controller's tags and a client token (idempotent launches);
//! - [`Ec2Client::list_managed`] / [`Ec2Client::count_instances`]: `DescribeInstances`
//!   filtered on the controller's tags, every page read;
//! - [`Ec2Client::describe`]: `DescribeInstances` by id, for state and address;
//! - [`Ec2Client::terminate`]: sends `TerminateInstances`.
//!
//! The decisions are pure functions over plain data ([`Addresses::choose`],
//! [`count_active`], [`classify`], [`LaunchRequest::validate`]); the client only does
//! the I/O. Credentials come from the caller (the platform's Secret), the region from its
//! configuration, and the endpoint from `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL` as
//! the SDK resolves them (or [`Ec2ClientBuilder::endpoint_url`]).
//!
//! Retries: the SDK's are off, so every call is one request (one per page when listing).
//! The caller retries per TaskRun with its own bounded backoff, deciding with
//! [`Ec2Error::retryable`]. TLS is rustls on ring, trusting the system's root
//! certificates.
//!
//! ```no_run
//! # async fn example() -> Result<(), mpc_ec2::Ec2Error> {
//! use mpc_ec2::{Credentials, Ec2Client};
//! let client = Ec2Client::new(Credentials::new("AKID", "secret", None), "us-east-1").await;
//! let running = client.count_instances("linux-arm64", "m6g.large").await?;
//! # Ok(()) }
//! ```

mod client;
mod credentials;
mod error;
mod instance;
mod request;
mod tags;

pub use client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DEFAULT_PAGE_SIZE, Ec2Client,
    Ec2ClientBuilder,
};
pub use credentials::Credentials;
pub use error::{Ec2Error, ErrorKind, Operation, classify};
pub use instance::{
    Addresses, InstanceId, InstanceInfo, InstanceState, InstanceSummary, count_active,
};
pub use request::{
    DedicatedHost, InvalidLaunchRequest, LaunchRequest, MAX_CLIENT_TOKEN_LEN, ROOT_DEVICE,
    TaskRunRef,
};
pub use tags::{INSTANCE_TAG, MANAGED_TAG, NAME_PREFIX, NAME_TAG, TASK_RUN_TAG};
