//! Tests of `parse` and `route` over whole ConfigMap data maps.

use std::collections::BTreeMap;

use super::host_key::tests::ED25519;
use super::*;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn host(name: &str, platform: &str, concurrency: &str) -> Vec<(String, String)> {
    vec![
        (format!("host.{name}.address"), "10.0.0.1".into()),
        (format!("host.{name}.platform"), platform.into()),
        (format!("host.{name}.user"), "root".into()),
        (format!("host.{name}.secret"), "ssh-key".into()),
        (format!("host.{name}.concurrency"), concurrency.into()),
    ]
}

fn with(base: Vec<(String, String)>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut d: BTreeMap<String, String> = base.into_iter().collect();
    for (k, v) in extra {
        d.insert(k.to_string(), v.to_string());
    }
    d
}

fn platform(p: &str) -> Platform {
    Platform::parse(p).unwrap()
}

fn name(n: &str) -> HostName {
    HostName::parse(n).unwrap()
}

/// The only problem, asserting there is exactly one.
fn only_problem(config: &PoolConfig) -> &Problem {
    assert_eq!(config.problems.len(), 1, "{:#?}", config.problems);
    &config.problems[0]
}

#[test]
fn a_complete_host_with_defaults() {
    let config = parse(&with(host("arm-1", "linux/arm64", "4"), &[]));
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    let h = &config.hosts[&name("arm-1")];
    assert_eq!(h.platform, platform("linux/arm64"));
    assert_eq!(h.address, "10.0.0.1");
    assert_eq!(h.port, 22);
    assert_eq!(h.user, "root");
    assert_eq!(h.secret, "ssh-key");
    assert_eq!(h.concurrency, 4);
    assert_eq!(h.state, HostState::Active);
    assert_eq!(h.host_key, None);
    assert!(h.sudo_commands.is_empty());
    assert_eq!(h.limits, UserLimits::default());
}

#[test]
fn build_user_limits_come_from_the_host_then_the_global_defaults() {
    let mut data = with(
        host("arm-1", "linux/arm64", "2"),
        &[
            ("max-processes", "8192"),
            ("memory-max", "75%"),
            ("host.arm-1.memory-max", "32G"),
            ("host.arm-1.cpu-quota", "unlimited"),
        ],
    );
    data.extend(host("arm-2", "linux/arm64", "2"));
    let config = parse(&data);
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    assert_eq!(
        config.hosts[&name("arm-1")].limits,
        UserLimits {
            max_processes: MaxProcesses::Limit(8192),
            memory_max: MemoryMax::Bytes(32 << 30),
            cpu_quota: CpuQuota::Unlimited,
        }
    );
    assert_eq!(
        config.hosts[&name("arm-2")].limits,
        UserLimits {
            max_processes: MaxProcesses::Limit(8192),
            memory_max: MemoryMax::PercentOfHost(75),
            cpu_quota: CpuQuota::PercentOfHost(90),
        }
    );
}

#[test]
fn our_additions_are_read() {
    let config = parse(&with(
        host("arm-1", "linux/arm64", "2"),
        &[
            ("host.arm-1.port", "2222"),
            ("host.arm-1.state", "drain"),
            ("host.arm-1.host-key", ED25519),
            (
                "host.arm-1.sudo-commands",
                "/usr/bin/podman, /usr/bin/buildah",
            ),
        ],
    ));
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    let h = &config.hosts[&name("arm-1")];
    assert_eq!(h.port, 2222);
    assert_eq!(h.state, HostState::Drain);
    assert!(h.host_key.is_some());
    assert_eq!(h.sudo_commands.len(), 2);
}

#[test]
fn host_names_may_contain_dots() {
    let config = parse(&with(host("arm.rack-1", "linux/arm64", "2"), &[]));
    assert!(config.hosts.contains_key(&name("arm.rack-1")));
}

#[test]
fn missing_concurrency_is_an_error_for_that_host_only() {
    let mut d = with(host("arm-1", "linux/arm64", "4"), &[]);
    d.extend(host("arm-2", "linux/arm64", "4"));
    d.remove("host.arm-2.concurrency");
    let config = parse(&d);
    let p = only_problem(&config);
    assert_eq!(p.severity, Severity::Error);
    assert_eq!(p.subject, Subject::Host("arm-2".into()));
    assert_eq!(p.key, "host.arm-2.concurrency");
    assert!(
        p.message
            .starts_with("missing; expected an integer from 1 to 8"),
        "{}",
        p.message
    );
    assert!(
        p.message
            .ends_with("host arm-2 is not used until this is fixed")
    );
    assert_eq!(config.hosts.len(), 1);
    assert_eq!(
        config.excluded_hosts,
        [ExcludedHost {
            name: "arm-2".into(),
            platform: Some(platform("linux/arm64"))
        }]
    );
}

#[test]
fn every_required_field_is_reported_when_missing() {
    let config = parse(&data(&[("host.bare.port", "22")]));
    let keys: Vec<&str> = config.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "host.bare.address",
            "host.bare.concurrency",
            "host.bare.platform",
            "host.bare.secret",
            "host.bare.user",
        ]
    );
    assert!(
        config
            .problems
            .iter()
            .all(|p| p.message.starts_with("missing; expected"))
    );
    assert_eq!(config.excluded_hosts[0].platform, None);
}

#[test]
fn each_invalid_host_field_is_reported_with_what_is_expected() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "address",
            "10.0.0.300",
            "neither an IP address nor a DNS name",
        ),
        (
            "platform",
            "linux/ARM64",
            "does not start with a lowercase letter",
        ),
        ("user", "root;id", "not a valid user name"),
        ("secret", "SSH_KEY", "expected a Kubernetes object name"),
        (
            "concurrency",
            "0",
            "0 is out of range; expected an integer from 1 to 8",
        ),
        ("concurrency", "9", "9 is out of range"),
        ("concurrency", "four", "not a whole number"),
        ("port", "0", "expected an integer from 1 to 65535"),
        ("port", "65536", "out of range"),
        ("state", "paused", "expected active, drain or disabled"),
        ("host-key", "ssh-ed25519", "no base64 key data"),
        ("sudo-commands", "podman", "not an absolute path"),
        ("max-processes", "16", "from 32 to 4194304, or unlimited"),
        ("memory-max", "lots", "such as 8G"),
        ("cpu-quota", "4 cpus", "all CPUs together"),
    ];
    for (field, value, why) in cases {
        let key = format!("host.arm-1.{field}");
        let config = parse(&with(
            host("arm-1", "linux/arm64", "2"),
            &[(key.as_str(), value)],
        ));
        let p = only_problem(&config);
        assert_eq!(p.key, key);
        assert_eq!(p.severity, Severity::Error);
        assert!(p.message.contains(why), "{field}={value}: {}", p.message);
        assert!(config.hosts.is_empty(), "{field}={value} kept the host");
    }
}

#[test]
fn invalid_host_names_are_excluded() {
    let config = parse(&with(host("arm_1!", "linux/arm64", "2"), &[]));
    let p = only_problem(&config);
    assert_eq!(p.key, "host.arm_1!.*");
    assert!(p.message.contains("assigned-host"), "{}", p.message);
    let config = parse(&with(host("localhost", "linux/arm64", "2"), &[]));
    assert!(only_problem(&config).message.contains("reserved"));
    assert!(config.hosts.is_empty());
}

#[test]
fn unknown_host_fields_are_warnings_that_keep_the_host() {
    let config = parse(&with(
        host("arm-1", "linux/arm64", "2"),
        &[("host.arm-1.concurency", "3")],
    ));
    let p = only_problem(&config);
    assert_eq!(p.severity, Severity::Warning);
    assert_eq!(p.key, "host.arm-1.concurency");
    assert!(p.message.contains("unknown host field"));
    assert_eq!(config.hosts.len(), 1);
}

#[test]
fn strict_host_key_checking_requires_a_pinned_key() {
    let mut d = with(
        host("arm-1", "linux/arm64", "2"),
        &[("host-key-checking", "strict")],
    );
    d.extend(host("arm-2", "linux/arm64", "2"));
    d.insert("host.arm-2.host-key".into(), ED25519.into());
    let config = parse(&d);
    let p = only_problem(&config);
    assert_eq!(p.key, "host.arm-1.host-key");
    assert!(p.message.contains("host-key-checking is strict"));
    assert_eq!(config.hosts.keys().collect::<Vec<_>>(), [&name("arm-2")]);
}

#[test]
fn platform_lists_keep_good_entries() {
    let config = parse(&data(&[(
        "local-platforms",
        "linux/x86_64, local,,Linux/Bad,localhost,",
    )]));
    let listed: Vec<&str> = config
        .local_platforms
        .iter()
        .map(Platform::as_str)
        .collect();
    assert_eq!(listed, ["linux/x86_64", "local", "localhost"]);
    let messages: Vec<&str> = config.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("entry 3 is empty")));
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("entry 4: invalid platform \"Linux/Bad\""))
    );
    assert!(config.problems.iter().all(|p| p.key == "local-platforms"));
}

#[test]
fn dynamic_platforms_of_both_strategies_are_validated() {
    let config = parse(&data(&[
        ("dynamic-platforms", "linux/amd64,"),
        ("dynamic.linux-amd64.type", "aws"),
        ("dynamic.linux-amd64.max-instances", "10"),
        ("dynamic.linux-amd64.ssh-secret", "aws-ssh"),
        ("dynamic.linux-amd64.region", "us-east-1"),
        ("dynamic.linux-amd64.ami", "ami-1"),
        ("dynamic.linux-amd64.instance-type", "m7a.large"),
        ("dynamic.linux-amd64.key-name", "kp"),
        ("dynamic.linux-amd64.aws-secret", "aws-account"),
        ("dynamic-pool-platforms", "linux/arm64"),
        ("dynamic.linux-arm64.type", "aws"),
    ]));
    assert!(
        config.dynamic_platforms[&platform("linux/amd64")]
            .settings
            .is_some()
    );
    assert!(
        config.dynamic_platforms[&platform("linux/arm64")]
            .settings
            .is_none()
    );
    let unsupported: Vec<&Problem> = config
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Unsupported)
        .collect();
    // Both AWS strategies are served (the pool's settings are invalid here).
    assert!(unsupported.is_empty(), "{unsupported:?}");
    let errors: Vec<&str> = config
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "dynamic.linux-arm64.ami",
            "dynamic.linux-arm64.aws-secret",
            "dynamic.linux-arm64.concurrency",
            "dynamic.linux-arm64.instance-type",
            "dynamic.linux-arm64.key-name",
            "dynamic.linux-arm64.max-age",
            "dynamic.linux-arm64.max-instances",
            "dynamic.linux-arm64.region",
            "dynamic.linux-arm64.ssh-secret",
        ]
    );
}

#[test]
fn unlisted_dynamic_settings_and_unknown_keys_are_warnings() {
    let config = parse(&data(&[
        ("dynamic.linux-s390x.type", "ibmz"),
        ("dynamic.linux-s390x.max-instances", "3"),
        ("colour", "blue"),
        ("host.nofield", "x"),
        ("dynamic.nofield", "x"),
    ]));
    let keys: Vec<(&str, Severity)> = config
        .problems
        .iter()
        .map(|p| (p.key.as_str(), p.severity))
        .collect();
    assert_eq!(
        keys,
        [
            ("colour", Severity::Warning),
            ("dynamic.linux-s390x.*", Severity::Warning),
            ("dynamic.nofield", Severity::Warning),
            ("host.nofield", Severity::Warning),
        ]
    );
}

#[test]
fn precedence_local_then_dynamic_then_pool_then_static() {
    let mut d = with(
        host("x86-1", "linux/x86_64", "2"),
        &[
            ("local-platforms", "linux/x86_64"),
            ("dynamic-platforms", "linux/x86_64,linux/amd64"),
            ("dynamic-pool-platforms", "linux/amd64"),
            ("dynamic.linux-amd64.type", "aws"),
            ("dynamic.linux-amd64.max-instances", "1"),
            ("dynamic.linux-amd64.ssh-secret", "k"),
        ],
    );
    d.extend(host("arm-1", "linux/arm64", "2"));
    let config = parse(&d);
    assert_eq!(
        config.strategy(&platform("linux/x86_64")),
        Some(Strategy::Local)
    );
    assert_eq!(
        config.strategy(&platform("linux/amd64")),
        Some(Strategy::Dynamic(DynamicStrategy::Dynamic))
    );
    assert_eq!(
        config.strategy(&platform("linux/arm64")),
        Some(Strategy::Static)
    );
    assert_eq!(config.strategy(&platform("linux/s390x")), None);
    let warnings: Vec<&str> = config
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "dynamic-platforms",
            "dynamic-pool-platforms",
            "host.x86-1.platform"
        ]
    );
    let pooled: Vec<&str> = config.pool_hosts().map(|h| h.name.as_str()).collect();
    assert_eq!(pooled, ["arm-1"]);
}

#[test]
fn route_local_and_pool() {
    let mut d = with(
        host("arm-1", "linux/arm64", "2"),
        &[("local-platforms", "linux/x86_64,")],
    );
    d.extend(host("arm-2", "linux/arm64", "2"));
    d.insert("host.arm-2.state".into(), "disabled".into());
    let config = parse(&d);
    assert_eq!(config.route(&platform("linux/x86_64")), Route::Local);
    match config.route(&platform("linux/arm64")) {
        Route::Pool(hosts) => {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            assert_eq!(names, ["arm-1"]);
        }
        other => panic!("{other:?}"),
    }
}

fn route_error(config: &PoolConfig, p: &str) -> String {
    match config.route(&platform(p)) {
        Route::Fail(err) => err.to_string(),
        other => panic!("{p}: {other:?}"),
    }
}

#[test]
fn route_errors_say_what_the_admin_must_fix() {
    let mut d = with(
        host("arm-1", "linux/arm64", "2"),
        &[
            ("dynamic-platforms", "linux/amd64"),
            ("host.arm-1.state", "disabled"),
        ],
    );
    d.extend(host("s390x-1", "linux/s390x", "2"));
    d.remove("host.s390x-1.concurrency");
    let config = parse(&d);

    let msg = route_error(&config, "linux/amd64");
    assert!(
        msg.contains("is a dynamic platform whose settings in host-config are invalid"),
        "{msg}"
    );
    assert!(
        msg.contains("dynamic.linux-amd64.type: missing; expected aws, ibmz or ibmp"),
        "{msg}"
    );

    let msg = route_error(&config, "linux/ppc64le");
    assert!(
        msg.starts_with("no host in host-config serves platform linux/ppc64le"),
        "{msg}"
    );
    assert!(
        msg.contains("platforms served: linux/amd64, linux/arm64, linux/s390x"),
        "{msg}"
    );

    let msg = route_error(&config, "linux/s390x");
    assert!(
        msg.contains("every host configured for platform linux/s390x is excluded"),
        "{msg}"
    );
    assert!(msg.contains("host.s390x-1.concurrency: missing"), "{msg}");

    let msg = route_error(&config, "linux/arm64");
    assert!(
        msg.contains("every host of platform linux/arm64 is disabled in host-config (arm-1)"),
        "{msg}"
    );

    let msg = route_error(&PoolConfig::default(), "linux/arm64");
    assert!(
        msg.contains("host-config serves no platform at all"),
        "{msg}"
    );
}

#[test]
fn parse_never_panics_and_problems_name_real_keys() {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("host.a.address".to_string()),
        Just("host.a.platform".to_string()),
        Just("host.a.concurrency".to_string()),
        Just("host.a.port".to_string()),
        Just("host.a.host-key".to_string()),
        Just("host.a.sudo-commands".to_string()),
        Just("local-platforms".to_string()),
        Just("dynamic-platforms".to_string()),
        Just("dynamic.linux-arm64.max-instances".to_string()),
        Just("allocation-timeout".to_string()),
        "[a-z.-]{0,20}",
    ];
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(
            &proptest::collection::btree_map(key, ".{0,30}", 0..12),
            |d| {
                let config = parse(&d);
                for p in &config.problems {
                    let base = p.key.trim_end_matches(".*");
                    prop_assert!(
                        d.keys().any(|k| k.starts_with(base)) || p.message.contains("missing"),
                        "{p:?} names no key of {d:?}"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}
