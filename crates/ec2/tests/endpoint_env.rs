//! The endpoint comes from the environment as the SDK resolves it. Environment variables
//! are process-wide, so this is the only test of its binary.

use ec2_testbed::{ACCESS_KEY_ID, Ec2Testbed, REGION, SECRET_ACCESS_KEY, TestbedOptions};
use mpc_ec2::{Credentials, Ec2Client, ErrorKind};

fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None)
}

/// Sets or removes an environment variable.
fn set(name: &str, value: Option<&str>) {
    // SAFETY: this binary has one test and the test sets variables only between calls,
    // while no other thread of it reads the environment (the clients read it in `new`).
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[tokio::test]
async fn the_endpoint_comes_from_the_ec2_variable_then_the_global_one_unless_overridden() {
    let bed = Ec2Testbed::start_with(TestbedOptions {
        hosts: false,
        ..TestbedOptions::default()
    })
    .await
    .expect("start the EC2 testbed (moto is installed by hack/test.sh)");
    // Port 9 (discard) on loopback: nothing answers there.
    let nowhere = "http://127.0.0.1:9";
    set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", None);

    // The service-specific variable wins over the global one.
    set("AWS_ENDPOINT_URL", Some(nowhere));
    set("AWS_ENDPOINT_URL_EC2", Some(&bed.endpoint_url()));
    let ec2 = Ec2Client::new(credentials(), REGION).await;
    ec2.list_managed(None).await.unwrap();
    assert_eq!(bed.proxy().calls("DescribeInstances"), 1);

    // Without it, the global one.
    set("AWS_ENDPOINT_URL_EC2", None);
    set("AWS_ENDPOINT_URL", Some(&bed.endpoint_url()));
    let ec2 = Ec2Client::new(credentials(), REGION).await;
    ec2.list_managed(None).await.unwrap();
    assert_eq!(bed.proxy().calls("DescribeInstances"), 2);

    // The explicit endpoint beats both.
    set("AWS_ENDPOINT_URL_EC2", Some(nowhere));
    set("AWS_ENDPOINT_URL", Some(nowhere));
    let ec2 = Ec2Client::builder(credentials(), REGION)
        .endpoint_url(bed.endpoint_url())
        .build()
        .await;
    ec2.list_managed(None).await.unwrap();
    assert_eq!(bed.proxy().calls("DescribeInstances"), 3);

    // And pointed nowhere, the call fails as a retryable transport error.
    let ec2 = Ec2Client::new(credentials(), REGION).await;
    let err = ec2.list_managed(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.retryable());
    assert_eq!(bed.proxy().calls("DescribeInstances"), 3);
    set("AWS_ENDPOINT_URL_EC2", None);
    set("AWS_ENDPOINT_URL", None);
}
