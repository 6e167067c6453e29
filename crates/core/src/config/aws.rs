//! The EC2 settings of a `type: aws` dynamic platform (`dynamic.<platform>.*`).
//!
//! The keys and their meaning are the Go controller's, so existing ConfigMaps launch the
//! same instances. Where the Go controller silently falls back (a `disk`, `iops` or
//! `throughput` that is not a number, a macOS dedicated-host setting given without the
//! other two), this module says so: a warning when the fallback is harmless, an error
//! when the instance could not be launched as the admin meant.

use std::collections::BTreeMap;

use super::fields::aws as field;
use super::problem::Severity;
use super::values;

/// Root volume size when `disk` is not set, in GB (the Go controller's default).
pub const DEFAULT_DISK_GB: u32 = 40;

/// macOS instances run on dedicated hosts: the three settings come together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedicatedHost {
    /// `tenancy` (`host`).
    pub tenancy: String,
    /// `host-resource-group-arn`.
    pub host_resource_group_arn: String,
    /// `license-configuration-arn`.
    pub license_configuration_arn: String,
}

/// How to launch one instance of a platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    /// AWS region.
    pub region: String,
    /// AMI id.
    pub ami: String,
    /// EC2 instance type; also what a platform's instances are counted by.
    pub instance_type: String,
    /// EC2 key pair whose public key the instance's `ec2-user` accepts.
    pub key_name: String,
    /// Secret (controller namespace) with `access-key-id`, `secret-access-key` and an
    /// optional `session-token`.
    pub aws_secret: String,
    /// `security-group`: a security group name.
    pub security_group: Option<String>,
    /// `security-group-id`.
    pub security_group_id: Option<String>,
    /// `subnet-id`.
    pub subnet_id: Option<String>,
    /// `instance-profile-name`.
    pub instance_profile_name: Option<String>,
    /// `instance-profile-arn`.
    pub instance_profile_arn: Option<String>,
    /// Root volume size in GB (`disk`, default 40).
    pub disk_gb: u32,
    /// Provisioned IOPS of the root volume.
    pub iops: Option<u32>,
    /// Provisioned throughput of the root volume, MiB/s.
    pub throughput: Option<u32>,
    /// `user-data`, raw text (sent base64-encoded).
    pub user_data: Option<String>,
    /// `strict-public-address: "true"`: never use the private address.
    pub strict_public_address: bool,
    /// macOS dedicated-host placement.
    pub dedicated_host: Option<DedicatedHost>,
}

/// Keys an aws platform reads beyond the ones every dynamic platform has.
pub(crate) const KEYS: [&str; 19] = [
    field::REGION,
    field::AMI,
    field::INSTANCE_TYPE,
    field::KEY_NAME,
    field::AWS_SECRET,
    field::SECURITY_GROUP,
    field::SECURITY_GROUP_ID,
    field::SUBNET_ID,
    field::INSTANCE_PROFILE_NAME,
    field::INSTANCE_PROFILE_ARN,
    field::DISK,
    field::IOPS,
    field::THROUGHPUT,
    field::USER_DATA,
    field::STRICT_PUBLIC_ADDRESS,
    field::TENANCY,
    field::HOST_RESOURCE_GROUP_ARN,
    field::LICENSE_CONFIGURATION_ARN,
    field::SPOT_PRICE,
];

/// Reads the aws settings; `report(severity, field, message)` records a problem.
/// `None` when a required setting is missing or unusable.
pub(crate) fn parse_aws(
    fields: &BTreeMap<&str, &str>,
    report: &mut dyn FnMut(Severity, &str, String),
) -> Option<AwsSettings> {
    let value = |f: &str| {
        fields
            .get(f)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut required = |f: &str, what: &str| {
        let found = value(f);
        if found.is_none() {
            report(Severity::Error, f, format!("missing; expected {what}"));
        }
        found
    };
    let region = required(field::REGION, "the AWS region, e.g. us-east-1");
    let ami = required(
        field::AMI,
        "the AMI id of the build image, e.g. ami-0123456789abcdef0",
    );
    let instance_type = required(field::INSTANCE_TYPE, "an EC2 instance type, e.g. m6g.large");
    let key_name = required(
        field::KEY_NAME,
        "the EC2 key pair whose private key is in the ssh-secret",
    );
    let aws_secret = required(
        field::AWS_SECRET,
        "the name of the Secret with access-key-id and secret-access-key",
    );
    if let Some(secret) = &aws_secret
        && let Err(why) = values::object_name(secret)
    {
        report(Severity::Error, field::AWS_SECRET, why);
    }

    // The Go controller falls back silently; say what is used instead.
    let mut number = |f: &str, fallback: &str| -> Option<u32> {
        let raw = value(f)?;
        match values::integer_in_range(&raw, 1, Some(u64::from(u32::MAX))) {
            Ok(n) => u32::try_from(n).ok(),
            Err(why) => {
                report(Severity::Warning, f, format!("{why}; {fallback}"));
                None
            }
        }
    };
    let disk_gb = number(
        field::DISK,
        "the default of 40 GB is used, as the Go controller does",
    )
    .unwrap_or(DEFAULT_DISK_GB);
    let iops = number(
        field::IOPS,
        "no IOPS are requested (the volume type's baseline), as the Go controller does",
    );
    let throughput = number(
        field::THROUGHPUT,
        "no throughput is requested (the volume type's baseline), as the Go controller does",
    );

    let strict_public_address = match value(field::STRICT_PUBLIC_ADDRESS).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            report(
                Severity::Warning,
                field::STRICT_PUBLIC_ADDRESS,
                format!(
                    "{other:?} is not \"true\" or \"false\"; it counts as false (the private \
                     address may be used), as the Go controller reads it"
                ),
            );
            false
        }
    };

    let mac = [
        value(field::TENANCY),
        value(field::HOST_RESOURCE_GROUP_ARN),
        value(field::LICENSE_CONFIGURATION_ARN),
    ];
    let dedicated_host = match mac {
        [Some(tenancy), Some(group), Some(license)] => Some(DedicatedHost {
            tenancy,
            host_resource_group_arn: group,
            license_configuration_arn: license,
        }),
        [None, None, None] => None,
        _ => {
            report(
                Severity::Error,
                field::TENANCY,
                "tenancy, host-resource-group-arn and license-configuration-arn go together \
                 (macOS instances on dedicated hosts): set all three or none"
                    .to_owned(),
            );
            return None;
        }
    };
    if value(field::SPOT_PRICE).is_some() {
        report(
            Severity::Warning,
            field::SPOT_PRICE,
            "ignored: spot instances are no longer launched (the Go controller dropped them \
             too); instances are on-demand"
                .to_owned(),
        );
    }

    Some(AwsSettings {
        region: region?,
        ami: ami?,
        instance_type: instance_type?,
        key_name: key_name?,
        aws_secret: aws_secret?,
        security_group: value(field::SECURITY_GROUP),
        security_group_id: value(field::SECURITY_GROUP_ID),
        subnet_id: value(field::SUBNET_ID),
        instance_profile_name: value(field::INSTANCE_PROFILE_NAME),
        instance_profile_arn: value(field::INSTANCE_PROFILE_ARN),
        disk_gb,
        iops,
        throughput,
        // Raw text: kept exactly as written, trailing newlines included.
        user_data: fields
            .get(field::USER_DATA)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*v).to_owned()),
        strict_public_address,
        dedicated_host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Option<AwsSettings>, Vec<(Severity, String)>) {
        let fields: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut problems = Vec::new();
        let settings = parse_aws(&fields, &mut |s, f, m| {
            problems.push((s, format!("{f}: {m}")));
        });
        (settings, problems)
    }

    const BASE: [(&str, &str); 5] = [
        ("region", "us-east-1"),
        ("ami", "ami-03d6a5256a46c9feb"),
        ("instance-type", "m6g.large"),
        ("key-name", "multi-platform-aws-prod"),
        ("aws-secret", "aws-account"),
    ];

    #[test]
    fn a_production_platform_parses_with_the_go_defaults() {
        let mut pairs = BASE.to_vec();
        pairs.push(("security-group", "launch-wizard-1"));
        let (settings, problems) = parse(&pairs);
        assert!(problems.is_empty(), "{problems:?}");
        let s = settings.unwrap();
        assert_eq!(s.disk_gb, 40);
        assert_eq!((s.iops, s.throughput), (None, None));
        assert_eq!(s.security_group.as_deref(), Some("launch-wizard-1"));
        assert!(!s.strict_public_address && s.dedicated_host.is_none());
    }

    #[test]
    fn every_missing_required_key_is_an_error() {
        let (settings, problems) = parse(&[]);
        assert!(settings.is_none());
        for key in ["region", "ami", "instance-type", "key-name", "aws-secret"] {
            assert!(
                problems.iter().any(
                    |(s, m)| *s == Severity::Error && m.starts_with(&format!("{key}: missing"))
                ),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn silent_go_fallbacks_are_reported() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("disk", "big"),
            ("iops", "-3"),
            ("throughput", "fast"),
            ("strict-public-address", "yes"),
            ("spot-price", "0.05"),
        ]);
        let (settings, problems) = parse(&pairs);
        let s = settings.unwrap();
        assert_eq!((s.disk_gb, s.iops, s.throughput), (40, None, None));
        let text: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            problems.iter().all(|(s, _)| *s == Severity::Warning),
            "{text:?}"
        );
        for part in [
            "disk: \"big\" is not a whole number",
            "default of 40 GB",
            "iops: ",
            "throughput: ",
            "strict-public-address: \"yes\"",
            "spot-price: ignored",
        ] {
            assert!(text.iter().any(|m| m.contains(part)), "{part}: {text:?}");
        }
    }

    #[test]
    fn macos_dedicated_host_settings_come_together() {
        let mut pairs = BASE.to_vec();
        pairs.push(("tenancy", "host"));
        let (settings, problems) = parse(&pairs);
        assert!(settings.is_none());
        assert!(
            problems[0].1.contains("set all three or none"),
            "{problems:?}"
        );
        pairs.extend([
            ("host-resource-group-arn", "arn:aws:resource-groups:g"),
            ("license-configuration-arn", "arn:aws:license-manager:l"),
            ("user-data", "#!/bin/bash\necho hi\n"),
            ("iops", "4000"),
            ("throughput", "250"),
            ("disk", "200"),
            ("strict-public-address", "true"),
        ]);
        let (settings, problems) = parse(&pairs);
        assert!(problems.is_empty(), "{problems:?}");
        let s = settings.unwrap();
        assert_eq!(s.dedicated_host.unwrap().tenancy, "host");
        assert_eq!(s.user_data.as_deref(), Some("#!/bin/bash\necho hi\n"));
        assert_eq!(
            (s.disk_gb, s.iops, s.throughput),
            (200, Some(4000), Some(250))
        );
        assert!(s.strict_public_address);
    }
}
