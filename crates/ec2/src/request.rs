//! What one launch asks EC2 for, and how it becomes a `RunInstances` request: exactly
//! the parameters of the Go controller (so the same IAM policies keep working) plus a
//! client token.

use std::collections::BTreeMap;

use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, IamInstanceProfileSpecification,
    InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceType,
    LicenseConfigurationRequest, MarketType, Placement, ResourceType, ShutdownBehavior,
    SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, Tenancy, VolumeType,
};

use crate::tags::{INSTANCE_TAG, MANAGED_TAG, NAME_PREFIX, NAME_TAG, TASK_RUN_TAG};

/// The root device every instance gets (as the Go controller: `/dev/sda1`).
pub const ROOT_DEVICE: &str = "/dev/sda1";

/// The longest client token EC2 accepts.
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;

/// The TaskRun an instance is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRunRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl TaskRunRef {
    /// `<namespace>:<name>`, the `taskRunID` tag's value.
    pub fn id(&self) -> String {
        format!("{}:{}", self.namespace, self.name)
    }
}

/// Placement on a dedicated host with a license configuration (macOS instances): the
/// Go controller sets all three or none, and so does this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedicatedHost {
    /// `Placement.Tenancy` (`host`).
    pub tenancy: String,
    /// `Placement.HostResourceGroupArn`.
    pub host_resource_group_arn: String,
    /// `LicenseSpecifications[0].LicenseConfigurationArn`.
    pub license_configuration_arn: String,
}

/// Everything one `RunInstances` call needs: one instance for one TaskRun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// `ImageId`: the AMI.
    pub image_id: String,
    /// `InstanceType`, e.g. `m6g.large`.
    pub instance_type: String,
    /// `KeyName`: the EC2 key pair whose public key the instance authorizes.
    pub key_name: String,
    /// `SecurityGroups`: security group names.
    pub security_group_names: Vec<String>,
    /// `SecurityGroupIds`.
    pub security_group_ids: Vec<String>,
    /// `SubnetId`.
    pub subnet_id: Option<String>,
    /// `IamInstanceProfile.Name`.
    pub instance_profile_name: Option<String>,
    /// `IamInstanceProfile.Arn`.
    pub instance_profile_arn: Option<String>,
    /// `UserData` as raw text; sent base64-encoded.
    pub user_data: Option<String>,
    /// The root volume's size in GB (gp3).
    pub disk_gb: i32,
    /// The root volume's provisioned IOPS.
    pub iops: Option<i32>,
    /// The root volume's throughput in MiB/s.
    pub throughput: Option<i32>,
    /// A spot instance at most this price (`InstanceMarketOptions`); the Go controller
    /// retries without it when a spot launch fails, which is the caller's decision here
    /// (and needs another client token: the parameters differ).
    pub spot_max_price: Option<String>,
    /// Dedicated host placement and license (macOS).
    pub dedicated_host: Option<DedicatedHost>,
    /// The platform's instance tag (`multi-platform-instance`).
    pub instance_tag: String,
    /// The TaskRun the instance is for (the `Name` and `taskRunID` tags).
    pub task_run: TaskRunRef,
    /// More tags for the instance; keys must not collide with the tags set here.
    pub additional_tags: BTreeMap<String, String>,
    /// `ClientToken`: EC2 starts at most one instance per token, so a launch retried
    /// after a crash or lost answer does not start a second one. The caller derives it
    /// from the TaskRun's UID and the launch attempt; 1 to 64 ASCII characters.
    pub client_token: String,
}

/// Why a [`LaunchRequest`] was refused before sending it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid launch request: {0}")]
pub struct InvalidLaunchRequest(pub String);

impl LaunchRequest {
    /// The instance's tags, in a fixed order: `MultiPlatformManaged=true`,
    /// `multi-platform-instance`, `Name`, `taskRunID`, then the additional tags by key.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            (MANAGED_TAG.to_owned(), "true".to_owned()),
            (INSTANCE_TAG.to_owned(), self.instance_tag.clone()),
            (
                NAME_TAG.to_owned(),
                format!("{NAME_PREFIX}{}", self.task_run.name),
            ),
            (TASK_RUN_TAG.to_owned(), self.task_run.id()),
        ];
        tags.extend(
            self.additional_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        tags
    }

    /// Checks what EC2 would refuse or what would break the controller's bookkeeping.
    pub fn validate(&self) -> Result<(), InvalidLaunchRequest> {
        let fail = |m: String| Err(InvalidLaunchRequest(m));
        for (field, value) in [
            ("image id (ami)", &self.image_id),
            ("instance type", &self.instance_type),
            ("key name", &self.key_name),
            ("instance tag", &self.instance_tag),
            ("TaskRun namespace", &self.task_run.namespace),
            ("TaskRun name", &self.task_run.name),
        ] {
            if value.trim().is_empty() {
                return fail(format!("the {field} is empty"));
            }
        }
        let token = &self.client_token;
        if token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LEN || !token.is_ascii() {
            return fail(format!(
                "the client token must be 1 to {MAX_CLIENT_TOKEN_LEN} ASCII characters, \
                 got {} bytes",
                token.len()
            ));
        }
        if self.disk_gb <= 0 {
            return fail(format!(
                "the disk size must be positive, got {}",
                self.disk_gb
            ));
        }
        for (name, value) in [("iops", self.iops), ("throughput", self.throughput)] {
            if value.is_some_and(|v| v <= 0) {
                return fail(format!("{name} must be positive when set"));
            }
        }
        for key in self.additional_tags.keys() {
            if [MANAGED_TAG, INSTANCE_TAG, NAME_TAG, TASK_RUN_TAG].contains(&key.as_str()) {
                return fail(format!(
                    "the additional tag {key:?} would replace a tag the controller sets"
                ));
            }
        }
        for (key, value) in self.tags() {
            if key.is_empty() || key.chars().count() > 128 {
                return fail(format!("tag key {key:?} must be 1 to 128 characters"));
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return fail(format!("tag key {key:?}: the aws: prefix is reserved"));
            }
            if value.chars().count() > 256 {
                return fail(format!(
                    "the value of tag {key:?} is longer than 256 characters"
                ));
            }
        }
        Ok(())
    }

    /// Puts this request's parameters on a `RunInstances` call. Pure: nothing is sent.
    pub(crate) fn configure(&self, call: RunInstancesFluentBuilder) -> RunInstancesFluentBuilder {
        let ebs = EbsBlockDevice::builder()
            .delete_on_termination(true)
            .volume_size(self.disk_gb)
            .volume_type(VolumeType::Gp3)
            .set_iops(self.iops)
            .set_throughput(self.throughput)
            .build();
        let root = BlockDeviceMapping::builder()
            .device_name(ROOT_DEVICE)
            .virtual_name("ephemeral0")
            .ebs(ebs)
            .build();
        let tags = self
            .tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let tag_spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(tags))
            .build();
        let profile = (self.instance_profile_name.is_some() || self.instance_profile_arn.is_some())
            .then(|| {
                IamInstanceProfileSpecification::builder()
                    .set_name(self.instance_profile_name.clone())
                    .set_arn(self.instance_profile_arn.clone())
                    .build()
            });
        let market = self.spot_max_price.as_ref().map(|price| {
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .max_price(price)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .build(),
                )
                .build()
        });
        let (placement, licenses) = match &self.dedicated_host {
            Some(host) => (
                Some(
                    Placement::builder()
                        .tenancy(Tenancy::from(host.tenancy.as_str()))
                        .host_resource_group_arn(&host.host_resource_group_arn)
                        .build(),
                ),
                Some(vec![
                    LicenseConfigurationRequest::builder()
                        .license_configuration_arn(&host.license_configuration_arn)
                        .build(),
                ]),
            ),
            None => (None, None),
        };
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        call.image_id(&self.image_id)
            .instance_type(InstanceType::from(self.instance_type.as_str()))
            .key_name(&self.key_name)
            .min_count(1)
            .max_count(1)
            .ebs_optimized(true)
            .set_security_groups(non_empty(&self.security_group_names))
            .set_security_group_ids(non_empty(&self.security_group_ids))
            .set_subnet_id(self.subnet_id.clone())
            .set_iam_instance_profile(profile)
            .set_user_data(
                self.user_data
                    .as_ref()
                    .map(|text| aws_smithy_types::base64::encode(text.as_bytes())),
            )
            .block_device_mappings(root)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .set_instance_market_options(market)
            .set_placement(placement)
            .set_license_specifications(licenses)
            .tag_specifications(tag_spec)
            .client_token(&self.client_token)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request with every optional field unset.
    pub(crate) fn minimal() -> LaunchRequest {
        LaunchRequest {
            image_id: "ami-0123".into(),
            instance_type: "m6g.large".into(),
            key_name: "builder-key".into(),
            security_group_names: vec![],
            security_group_ids: vec![],
            subnet_id: None,
            instance_profile_name: None,
            instance_profile_arn: None,
            user_data: None,
            disk_gb: 40,
            iops: None,
            throughput: None,
            spot_max_price: None,
            dedicated_host: None,
            instance_tag: "linux-arm64".into(),
            task_run: TaskRunRef {
                namespace: "builds".into(),
                name: "build-1".into(),
            },
            additional_tags: BTreeMap::new(),
            client_token: "uid-1234-attempt-0".into(),
        }
    }

    fn offline_client() -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    #[test]
    fn a_minimal_request_has_exactly_the_go_controller_parameters() {
        let req = minimal();
        let call = req.configure(offline_client().run_instances());
        let input = call.as_input();
        assert_eq!(input.get_image_id().as_deref(), Some("ami-0123"));
        assert_eq!(
            input.get_instance_type().as_ref().map(|t| t.as_str()),
            Some("m6g.large")
        );
        assert_eq!(input.get_key_name().as_deref(), Some("builder-key"));
        assert_eq!(
            (*input.get_min_count(), *input.get_max_count()),
            (Some(1), Some(1))
        );
        assert_eq!(*input.get_ebs_optimized(), Some(true));
        assert_eq!(
            input.get_instance_initiated_shutdown_behavior(),
            &Some(ShutdownBehavior::Terminate)
        );
        assert_eq!(
            input.get_client_token().as_deref(),
            Some("uid-1234-attempt-0")
        );
        let bdm = input.get_block_device_mappings().as_ref().unwrap();
        assert_eq!(bdm.len(), 1);
        assert_eq!(bdm[0].device_name(), Some("/dev/sda1"));
        assert_eq!(bdm[0].virtual_name(), Some("ephemeral0"));
        let ebs = bdm[0].ebs().unwrap();
        assert_eq!(ebs.volume_size(), Some(40));
        assert_eq!(ebs.volume_type(), Some(&VolumeType::Gp3));
        assert_eq!(ebs.delete_on_termination(), Some(true));
        assert_eq!((ebs.iops(), ebs.throughput()), (None, None));
        // Unset options are absent, not empty: EC2 treats an empty list differently.
        assert!(input.get_security_groups().is_none());
        assert!(input.get_security_group_ids().is_none());
        assert!(input.get_subnet_id().is_none());
        assert!(input.get_iam_instance_profile().is_none());
        assert!(input.get_user_data().is_none());
        assert!(input.get_instance_market_options().is_none());
        assert!(input.get_placement().is_none());
        assert!(input.get_license_specifications().is_none());
        let specs = input.get_tag_specifications().as_ref().unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].resource_type(), Some(&ResourceType::Instance));
        let tags: Vec<(&str, &str)> = specs[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("MultiPlatformManaged", "true"),
                ("multi-platform-instance", "linux-arm64"),
                ("Name", "multi-platform-builder-build-1"),
                ("taskRunID", "builds:build-1"),
            ]
        );
    }

    #[test]
    fn every_optional_parameter_is_passed_through() {
        let mut req = minimal();
        req.security_group_names = vec!["launch-wizard-1".into()];
        req.security_group_ids = vec!["sg-1".into()];
        req.subnet_id = Some("subnet-1".into());
        req.instance_profile_name = Some("builder".into());
        req.instance_profile_arn = Some("arn:aws:iam::1:instance-profile/builder".into());
        req.user_data = Some("#!/bin/sh\necho hi\n".into());
        req.iops = Some(4000);
        req.throughput = Some(250);
        req.spot_max_price = Some("0.05".into());
        req.dedicated_host = Some(DedicatedHost {
            tenancy: "host".into(),
            host_resource_group_arn: "arn:hrg".into(),
            license_configuration_arn: "arn:lic".into(),
        });
        req.additional_tags = BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            ("cost-center".to_owned(), "42".to_owned()),
        ]);
        let call = req.configure(offline_client().run_instances());
        let input = call.as_input();
        assert_eq!(
            input.get_security_groups().as_deref(),
            Some(&["launch-wizard-1".to_owned()][..])
        );
        assert_eq!(
            input.get_security_group_ids().as_deref(),
            Some(&["sg-1".to_owned()][..])
        );
        assert_eq!(input.get_subnet_id().as_deref(), Some("subnet-1"));
        let profile = input.get_iam_instance_profile().as_ref().unwrap();
        assert_eq!(profile.name(), Some("builder"));
        assert_eq!(
            profile.arn(),
            Some("arn:aws:iam::1:instance-profile/builder")
        );
        assert_eq!(
            input.get_user_data().as_deref(),
            Some("IyEvYmluL3NoCmVjaG8gaGkK"),
            "base64 of the raw text"
        );
        let ebs = input.get_block_device_mappings().as_ref().unwrap()[0]
            .ebs()
            .unwrap();
        assert_eq!((ebs.iops(), ebs.throughput()), (Some(4000), Some(250)));
        let market = input.get_instance_market_options().as_ref().unwrap();
        assert_eq!(market.market_type(), Some(&MarketType::Spot));
        let spot = market.spot_options().unwrap();
        assert_eq!(spot.max_price(), Some("0.05"));
        assert_eq!(
            spot.instance_interruption_behavior(),
            Some(&InstanceInterruptionBehavior::Terminate)
        );
        assert_eq!(spot.spot_instance_type(), Some(&SpotInstanceType::OneTime));
        let placement = input.get_placement().as_ref().unwrap();
        assert_eq!(placement.tenancy(), Some(&Tenancy::Host));
        assert_eq!(placement.host_resource_group_arn(), Some("arn:hrg"));
        let licenses = input.get_license_specifications().as_ref().unwrap();
        assert_eq!(licenses.len(), 1);
        assert_eq!(licenses[0].license_configuration_arn(), Some("arn:lic"));
        let keys: Vec<&str> = input.get_tag_specifications().as_ref().unwrap()[0]
            .tags()
            .iter()
            .map(|t| t.key().unwrap())
            .collect();
        assert_eq!(
            keys,
            vec![
                "MultiPlatformManaged",
                "multi-platform-instance",
                "Name",
                "taskRunID",
                "cost-center",
                "team"
            ]
        );
    }

    #[test]
    fn validation_refuses_what_ec2_or_the_bookkeeping_would_break_on() {
        assert_eq!(minimal().validate(), Ok(()));
        type Change = Box<dyn Fn(&mut LaunchRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("image id", Box::new(|r| r.image_id = " ".into())),
            ("key name", Box::new(|r| r.key_name.clear())),
            ("instance tag", Box::new(|r| r.instance_tag.clear())),
            ("client token", Box::new(|r| r.client_token.clear())),
            (
                "client token",
                Box::new(|r| r.client_token = "x".repeat(65)),
            ),
            (
                "client token",
                Box::new(|r| r.client_token = "jeton-é".into()),
            ),
            ("disk size", Box::new(|r| r.disk_gb = 0)),
            ("iops", Box::new(|r| r.iops = Some(0))),
            (
                "replace a tag",
                Box::new(|r| {
                    r.additional_tags.insert("Name".into(), "x".into());
                }),
            ),
            (
                "reserved",
                Box::new(|r| {
                    r.additional_tags.insert("aws:foo".into(), "x".into());
                }),
            ),
            (
                "longer than 256",
                Box::new(|r| r.task_run.name = "n".repeat(240)),
            ),
        ];
        for (needle, change) in cases {
            let mut req = minimal();
            change(&mut req);
            let err = req.validate().expect_err(needle);
            assert!(err.to_string().contains(needle), "{err} !~ {needle}");
        }
        let mut req = minimal();
        req.client_token = "x".repeat(64);
        assert_eq!(req.validate(), Ok(()));
    }
}
