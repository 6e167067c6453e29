//! The EC2 client: one HTTP request per call, errors classified, nothing else.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::Filter;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::error::{Ec2Error, Operation};
use crate::instance::{InstanceId, InstanceInfo, InstanceSummary, count_active};
use crate::request::LaunchRequest;
use crate::tags::{INSTANCE_TAG, MANAGED_TAG};

/// Default time to establish a TCP (and TLS) connection to the endpoint.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time one call may take, connection included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `MaxResults` of one `DescribeInstances` page (EC2's maximum).
pub const DEFAULT_PAGE_SIZE: i32 = 1000;

/// The SDK behaviour defaults this crate was written and tested against; pinned so an
/// SDK update cannot change them silently.
fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_11_17()
}

/// Builds an [`Ec2Client`] with non-default settings.
#[derive(Debug)]
pub struct Ec2ClientBuilder {
    credentials: crate::Credentials,
    region: String,
    endpoint_url: Option<String>,
    connect_timeout: Duration,
    operation_timeout: Duration,
    page_size: i32,
}

impl Ec2ClientBuilder {
    /// Sends every request to `url` (e.g. `http://127.0.0.1:5000`), whatever the
    /// environment says. Without it the endpoint comes from `AWS_ENDPOINT_URL_EC2`, then
    /// `AWS_ENDPOINT_URL` (or `endpoint_url` in the AWS config file, unless
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true), then the region's public endpoint.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Time to connect to the endpoint (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time one call may take in all (default [`DEFAULT_OPERATION_TIMEOUT`]).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// `MaxResults` of each `DescribeInstances` page when listing (5 to 1000; default
    /// [`DEFAULT_PAGE_SIZE`]). Every page is read whatever the size.
    pub fn page_size(mut self, size: i32) -> Self {
        self.page_size = size.clamp(5, 1000);
        self
    }

    /// The client. Reads the endpoint settings from the environment (and the AWS config
    /// file) as the SDK does; credentials and region are only the given ones.
    pub async fn build(self) -> Ec2Client {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.operation_timeout)
            .build();
        let shared = aws_config::defaults(behavior_version())
            .region(Region::new(self.region.clone()))
            .credentials_provider(self.credentials.to_sdk())
            .http_client(http_client)
            // One call is one request: the controller retries per TaskRun with its own
            // bounded backoff, and counts attempts; a second, hidden retry loop here would
            // multiply both and blur the error it finally reports.
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .load()
            .await;
        let mut config = aws_sdk_ec2::config::Builder::from(&shared);
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url);
        }
        tracing::debug!(
            region = %self.region,
            endpoint = self
                .endpoint_url
                .as_deref()
                .unwrap_or("(environment, AWS config file or the region's)"),
            access_key_id = self.credentials.access_key_id(),
            "EC2 client ready"
        );
        Ec2Client {
            inner: aws_sdk_ec2::Client::from_conf(config.build()),
            region: self.region,
            page_size: self.page_size,
        }
    }
}

/// An EC2 client for one region and one set of credentials. Cheap to clone.
///
/// Every method sends exactly one request per EC2 page (the SDK's own retries are
/// off): retrying is the caller's decision, guided by [`Ec2Error::retryable`].
#[derive(Debug, Clone)]
pub struct Ec2Client {
    inner: aws_sdk_ec2::Client,
    region: String,
    page_size: i32,
}

impl Ec2Client {
    /// A client with the default settings; the endpoint as [`Ec2ClientBuilder::build`]
    /// finds it.
    pub async fn new(credentials: crate::Credentials, region: impl Into<String>) -> Self {
        Self::builder(credentials, region).build().await
    }

    /// A builder for non-default settings.
    pub fn builder(credentials: crate::Credentials, region: impl Into<String>) -> Ec2ClientBuilder {
        Ec2ClientBuilder {
            credentials,
            region: region.into(),
            endpoint_url: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Launches one instance (`RunInstances`) and returns its id. The request's client
    /// token makes a repeated launch return the first launch's instance instead of
    /// starting another.
    pub async fn launch(&self, request: &LaunchRequest) -> Result<InstanceId, Ec2Error> {
        let op = Operation::RunInstances;
        request
            .validate()
            .map_err(|e| Ec2Error::invalid_request(op, e.to_string()))?;
        tracing::debug!(
            task_run = %request.task_run.id(),
            instance_tag = %request.instance_tag,
            instance_type = %request.instance_type,
            client_token = %request.client_token,
            "launching EC2 instance"
        );
        let output = request
            .configure(self.inner.run_instances())
            .send()
            .await
            .map_err(|e| sdk_error(op, e))?;
        let id = output
            .instances()
            .iter()
            .find_map(|i| i.instance_id())
            .ok_or_else(|| {
                Ec2Error::new(
                    op,
                    None,
                    None,
                    "EC2 answered without an instance id (no instance was created)",
                    output.request_id().map(str::to_owned),
                )
            })?;
        tracing::info!(
            task_run = %request.task_run.id(),
            instance = id,
            "EC2 instance launched"
        );
        Ok(InstanceId::new(id))
    }

    /// Every instance the controller launched (tag `MultiPlatformManaged=true`), only
    /// those of one platform when `instance_tag` is given, in any state, every page read.
    pub async fn list_managed(
        &self,
        instance_tag: Option<&str>,
    ) -> Result<Vec<InstanceSummary>, Ec2Error> {
        let op = Operation::DescribeInstances;
        let mut filters = vec![tag_filter(MANAGED_TAG, "true")];
        if let Some(tag) = instance_tag {
            filters.push(tag_filter(INSTANCE_TAG, tag));
        }
        let mut pages = self
            .inner
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .page_size(self.page_size)
            .send();
        let mut instances = Vec::new();
        let mut page_count = 0usize;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(op, e))?;
            page_count += 1;
            instances.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(InstanceSummary::from_sdk),
            );
        }
        tracing::debug!(
            instance_tag = instance_tag.unwrap_or("(all platforms)"),
            instances = instances.len(),
            pages = page_count,
            "listed managed EC2 instances"
        );
        Ok(instances)
    }

    /// How many of a platform's instances count toward its limit: not terminated or
    /// shutting down, and of `instance_type` (as the Go controller counts).
    pub async fn count_instances(
        &self,
        instance_tag: &str,
        instance_type: &str,
    ) -> Result<usize, Ec2Error> {
        let instances = self.list_managed(Some(instance_tag)).await?;
        Ok(count_active(&instances, instance_type))
    }

    /// The instance's state and address (see [`crate::Addresses::choose`]); `None` when
    /// EC2 does not know the id. EC2 is eventually consistent: right after a launch the
    /// new id can be unknown for a few seconds, so `None` then means "not yet".
    pub async fn describe(
        &self,
        id: &InstanceId,
        strict_public_address: bool,
    ) -> Result<Option<InstanceInfo>, Ec2Error> {
        let op = Operation::DescribeInstances;
        let output = match self
            .inner
            .describe_instances()
            .instance_ids(id.as_str())
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let error = sdk_error(op, e);
                if error.is_not_found() {
                    return Ok(None);
                }
                return Err(error);
            }
        };
        let found = output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(InstanceSummary::from_sdk)
            .find(|i| &i.id == id);
        Ok(found.map(|i| InstanceInfo::new(i, strict_public_address)))
    }

    /// Terminates the instances (`TerminateInstances`). Terminating an instance that is
    /// already terminated succeeds; an id EC2 does not know fails the whole call with a
    /// [`crate::ErrorKind::NotFound`] error.
    pub async fn terminate(&self, ids: &[InstanceId]) -> Result<(), Ec2Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let op = Operation::TerminateInstances;
        tracing::debug!(instances = ?ids, "terminating EC2 instances");
        self.inner
            .terminate_instances()
            .set_instance_ids(Some(ids.iter().map(|i| i.as_str().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error(op, e))?;
        tracing::info!(instances = ?ids, "EC2 instances terminating");
        Ok(())
    }
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// Our error for an SDK failure: the AWS code, HTTP status and request id when EC2
/// answered; the transport's own words otherwise.
fn sdk_error<E>(operation: Operation, error: SdkError<E, HttpResponse>) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let request_id = error
        .meta()
        .request_id()
        .or_else(|| error.request_id())
        .map(str::to_owned);
    match &error {
        SdkError::ServiceError(_) => Ec2Error::new(
            operation,
            error.code().map(str::to_owned),
            status,
            error.message().unwrap_or_default(),
            request_id,
        ),
        SdkError::ConstructionFailure(_) => Ec2Error::invalid_request(
            operation,
            format!(
                "the request could not be built (is the region set?): {}",
                DisplayErrorContext(&error)
            ),
        ),
        SdkError::TimeoutError(_) => {
            Ec2Error::new(operation, None, None, "no answer in time", None)
        }
        _ => Ec2Error::new(
            operation,
            None,
            status,
            DisplayErrorContext(&error).to_string(),
            request_id,
        ),
    }
}
