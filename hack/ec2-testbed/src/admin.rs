//! The testbed's own calls to moto (never through the fault proxy): the network, key
//! pairs, an AMI, instance profiles, and listing instances for the hosts.

use std::net::{Ipv4Addr, SocketAddr};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::types::Filter;

use crate::{Error, http};

/// The region the testbed uses (moto serves any).
pub const REGION: &str = "us-east-1";
/// The access key id the testbed's clients use (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing";
/// The secret access key the testbed's clients use.
pub const SECRET_ACCESS_KEY: &str = "testing";

/// An SDK client for moto at `endpoint_url` with the testbed's credentials.
pub fn admin_client(endpoint_url: &str) -> Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "ec2-testbed",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint_url)
        .build();
    Client::from_conf(config)
}

/// A VPC and one subnet in 127.0.0.0/8, so moto hands out loopback private addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The VPC's id.
    pub vpc_id: String,
    /// The subnet's id.
    pub subnet_id: String,
    /// The VPC's block, `127.N.0.0/16`.
    pub vpc_cidr: String,
    /// The subnet's block, `127.N.M.0/24`.
    pub subnet_cidr: String,
    /// The subnet's first address (`127.N.M.0`).
    pub subnet_base: Ipv4Addr,
}

impl Network {
    /// Whether `address` is in the subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        address.octets()[..3] == self.subnet_base.octets()[..3]
    }
}

/// The blocks for second and third octets `n` and `m`: `127.n.0.0/16` and `127.n.m.0/24`.
pub(crate) fn blocks(n: u8, m: u8) -> (String, String, Ipv4Addr) {
    let base = Ipv4Addr::new(127, n, m, 0);
    (format!("127.{n}.0.0/16"), format!("{base}/24"), base)
}

/// Random blocks, never in 127.0.0.0/16 (127.0.0.1 and what other tools use), so that
/// tests running in parallel, each with its own moto, rarely share addresses.
pub(crate) fn random_blocks() -> (String, String, Ipv4Addr) {
    blocks(rand::random_range(1..=254), rand::random_range(0..=255))
}

/// Creates the VPC and subnet in moto.
pub async fn create_network(client: &Client) -> Result<Network, Error> {
    let (vpc_cidr, subnet_cidr, subnet_base) = random_blocks();
    let vpc = client
        .create_vpc()
        .cidr_block(&vpc_cidr)
        .send()
        .await
        .map_err(|e| Error::api(format!("create VPC {vpc_cidr}"), DisplayErrorContext(e)))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| Error::api("create VPC", "no VPC id in the answer"))?
        .to_owned();
    let subnet = client
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(&subnet_cidr)
        .send()
        .await
        .map_err(|e| {
            Error::api(
                format!("create subnet {subnet_cidr}"),
                DisplayErrorContext(e),
            )
        })?;
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| Error::api("create subnet", "no subnet id in the answer"))?
        .to_owned();
    Ok(Network {
        vpc_id,
        subnet_id,
        vpc_cidr,
        subnet_cidr,
        subnet_base,
    })
}

/// Imports `public_key` (an OpenSSH public key line) as key pair `name`.
pub async fn import_key_pair(client: &Client, name: &str, public_key: &str) -> Result<(), Error> {
    client
        .import_key_pair()
        .key_name(name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(public_key.as_bytes()))
        .send()
        .await
        .map_err(|e| Error::api(format!("import key pair {name}"), DisplayErrorContext(e)))?;
    Ok(())
}

/// The public key of key pair `name` as EC2 stores it; `None` when there is no such pair.
pub async fn public_key_of(client: &Client, name: &str) -> Result<Option<String>, Error> {
    let answer = client
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values(name).build())
        .include_public_key(true)
        .send()
        .await
        .map_err(|e| Error::api(format!("describe key pair {name}"), DisplayErrorContext(e)))?;
    Ok(answer
        .key_pairs()
        .iter()
        .find(|k| k.key_name() == Some(name))
        .and_then(|k| k.public_key())
        .map(str::to_owned))
}

/// An arm64 Amazon Linux 2 AMI of moto's catalogue (moto launches any id; a listed one
/// is closer to real use).
pub async fn pick_image(client: &Client) -> Result<String, Error> {
    let answer = client
        .describe_images()
        .owners("amazon")
        .filters(
            Filter::builder()
                .name("name")
                .values("amzn2-ami-kernel-5.10-hvm-*-arm64-gp2")
                .build(),
        )
        .send()
        .await
        .map_err(|e| Error::api("describe images", DisplayErrorContext(e)))?;
    let mut ids: Vec<&str> = answer
        .images()
        .iter()
        .filter_map(|i| i.image_id())
        .collect();
    ids.sort_unstable();
    ids.first().map(|id| (*id).to_owned()).ok_or_else(|| {
        Error::api(
            "describe images",
            "moto lists no arm64 Amazon Linux 2 image",
        )
    })
}

/// Creates IAM instance profile `name` in moto (its `RunInstances` checks that a
/// profile exists) and returns its ARN.
pub async fn create_instance_profile(moto: SocketAddr, name: &str) -> Result<String, Error> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "CreateInstanceProfile")
        .append_pair("Version", "2010-05-08")
        .append_pair("InstanceProfileName", name)
        .finish();
    let response = http::send(moto, http::query_request(moto, "iam", &form))
        .await
        .map_err(|e| Error::api(format!("create instance profile {name}"), e))?;
    let body = String::from_utf8_lossy(response.body()).into_owned();
    if !response.status().is_success() {
        return Err(Error::api(
            format!("create instance profile {name}"),
            format!("HTTP {}: {body}", response.status()),
        ));
    }
    xml_text(&body, "Arn").map(str::to_owned).ok_or_else(|| {
        Error::api(
            format!("create instance profile {name}"),
            "no Arn in the answer",
        )
    })
}

/// The text of the first `<tag>` element (enough for moto's flat answers).
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_in_loopback_and_off_127_0() {
        assert_eq!(
            blocks(77, 1),
            (
                "127.77.0.0/16".to_owned(),
                "127.77.1.0/24".to_owned(),
                Ipv4Addr::new(127, 77, 1, 0)
            )
        );
        for _ in 0..10_000 {
            let (_, _, base) = random_blocks();
            assert!(base.is_loopback());
            assert_ne!(base.octets()[1], 0, "{base}");
        }
    }

    #[test]
    fn network_contains_only_its_subnet() {
        let (vpc_cidr, subnet_cidr, subnet_base) = blocks(9, 8);
        let net = Network {
            vpc_id: "vpc".into(),
            subnet_id: "subnet".into(),
            vpc_cidr,
            subnet_cidr,
            subnet_base,
        };
        assert!(net.contains(Ipv4Addr::new(127, 9, 8, 4)));
        assert!(!net.contains(Ipv4Addr::new(127, 9, 9, 4)));
        assert!(!net.contains(Ipv4Addr::new(10, 9, 8, 4)));
    }

    #[test]
    fn xml_text_finds_the_first_element() {
        let xml = "<A><Arn>arn:1</Arn><Arn>arn:2</Arn></A>";
        assert_eq!(xml_text(xml, "Arn"), Some("arn:1"));
        assert_eq!(xml_text(xml, "Missing"), None);
    }
}
