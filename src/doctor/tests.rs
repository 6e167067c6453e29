//! Tests of the pure parts: facts → report → table/JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::facts::*;
use super::report::*;
use super::run::{render, select};
use super::verdict::report;
use super::{OutputFormat, table};
use crate::remote::error::SshStep;
use crate::remote::{LoginOutcome, Privilege, RemoteError, UserKeyPair, generate};
use mpc_core::config::{self, PoolConfig};
use mpc_core::host_work::report::ProbeFacts;
use mpc_core::host_work::script::Operation;
use mpc_core::naming::UserName;

const NS: &str = "mpc";

struct Keys {
    pin: UserKeyPair,
    other: UserKeyPair,
}

fn keys() -> Keys {
    Keys {
        pin: generate().unwrap(),
        other: generate().unwrap(),
    }
}

fn host_entries(name: &str, address: &str, concurrency: &str) -> Vec<(String, String)> {
    vec![
        (format!("host.{name}.address"), address.into()),
        (format!("host.{name}.platform"), "linux/arm64".into()),
        (format!("host.{name}.user"), "root".into()),
        (format!("host.{name}.secret"), "admin-key".into()),
        (format!("host.{name}.concurrency"), concurrency.into()),
    ]
}

/// `pinned` (host key pinned to `keys.pin`) and `plain` (accept-new), both valid.
fn two_hosts(keys: &Keys) -> PoolConfig {
    let mut data: BTreeMap<String, String> = host_entries("pinned", "10.0.0.1", "2")
        .into_iter()
        .chain(host_entries("plain", "10.0.0.2", "4"))
        .collect();
    data.insert(
        "host.pinned.host-key".into(),
        keys.pin.public_key_line().into(),
    );
    let config = config::parse(&data);
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    config
}

fn user() -> UserName {
    UserName::for_taskrun("mpc-doctor-00000001", NS)
}

fn good_user_test() -> UserTest {
    UserTest {
        user: user(),
        provision_expired: Ok(()),
        expired_login: Some(Ok(LoginOutcome::Refused)),
        provision_valid: Some(Ok(())),
        valid_login: Some(Ok(LoginOutcome::Accepted)),
        cleanup: Ok(()),
        still_present: Some(Ok(false)),
    }
}

fn loaded() -> AdminKeyFact {
    AdminKeyFact::Loaded {
        fingerprint: "SHA256:admin".into(),
        labelled: true,
    }
}

fn podman_ready() -> ProbeFacts {
    ProbeFacts {
        missing_for_podman: Vec::new(),
        user_namespaces: true,
        systemd: false,
    }
}

#[test]
fn a_host_without_rootless_podman_fails_and_says_what_to_install() {
    use crate::doctor::verdict::podman_message;
    assert_eq!(podman_message(&podman_ready()), None);
    let bare = ProbeFacts {
        missing_for_podman: vec!["newuidmap".into(), "podman".into()],
        user_namespaces: false,
        systemd: true,
    };
    let message = podman_message(&bare).unwrap();
    for expected in [
        "apt-get install uidmap",
        "apt-get install podman",
        "user.max_user_namespaces",
    ] {
        assert!(message.contains(expected), "{message}");
    }
    assert!(!message.contains("slirp4netns"), "{message}");
}

fn healthy(fingerprint: &str, privilege: Privilege) -> HostFacts {
    HostFacts {
        admin_key: loaded(),
        remembered_key: RememberedKey::None,
        contact: Contact::Probed {
            round_trip: Duration::from_millis(12),
            host_key: fingerprint.into(),
            privilege,
            host: podman_ready(),
        },
        user_test: Some(good_user_test()),
    }
}

fn observation(config: PoolConfig, hosts: BTreeMap<String, HostFacts>) -> Observation {
    Observation {
        namespace: NS.into(),
        config_labelled: true,
        config,
        selected: None,
        known_hosts_error: None,
        slots_used: Ok(BTreeMap::from([("pinned".to_owned(), 1)])),
        hosts,
    }
}

fn healthy_pair(keys: &Keys) -> Observation {
    observation(
        two_hosts(keys),
        BTreeMap::from([
            (
                "pinned".to_owned(),
                healthy(keys.pin.fingerprint(), Privilege::Root),
            ),
            (
                "plain".to_owned(),
                healthy(keys.other.fingerprint(), Privilege::Sudo),
            ),
        ]),
    )
}

fn row<'a>(report: &'a Report, name: &str) -> &'a HostRow {
    report
        .hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

fn texts(row: &HostRow) -> [&str; 4] {
    [
        &row.reachable.text,
        &row.host_key.text,
        &row.admin.text,
        &row.expiry_time.text,
    ]
}

#[test]
fn healthy_hosts_pass_every_check_and_exit_0() {
    let keys = keys();
    let report = report(&healthy_pair(&keys));
    assert!(report.healthy, "{report:#?}");
    assert_eq!(report.exit_code(), 0);
    let pinned = row(&report, "pinned");
    assert_eq!(texts(pinned), ["12 ms", "pinned", "root", "honoured"]);
    assert_eq!(pinned.verdict, Verdict::Ok);
    assert_eq!((pinned.slots_used, pinned.slots_total), (Some(1), Some(2)));
    assert_eq!(pinned.address.as_deref(), Some("10.0.0.1:22"));
    assert_eq!(
        pinned.host_key_fingerprint.as_deref(),
        Some(keys.pin.fingerprint())
    );
    assert_eq!(
        pinned.expected_host_key.as_deref(),
        Some(keys.pin.fingerprint())
    );
    let plain = row(&report, "plain");
    assert_eq!(texts(plain), ["12 ms", "new", "sudo", "honoured"]);
    assert_eq!(plain.host_key.status, Status::Info);
    assert!(
        plain
            .host_key_note
            .as_deref()
            .unwrap()
            .contains("not remembered yet")
    );
    assert_eq!((plain.slots_used, plain.slots_total), (Some(0), Some(4)));
    assert_eq!(plain.verdict, Verdict::Ok);
}

#[test]
fn connection_failures_fail_the_right_cell_with_advice() {
    let keys = keys();
    let host = "pinned".to_owned();
    let cases: Vec<(RemoteError, [&str; 3], Check, &str)> = vec![
        (
            RemoteError::Unreachable {
                host: host.clone(),
                address: "10.0.0.1:22".into(),
                reason: "Connection refused (os error 111)".into(),
            },
            ["no", "-", "-"],
            Check::Reachable,
            "check that the host is up, that sshd listens",
        ),
        (
            RemoteError::Timeout {
                host: host.clone(),
                phase: SshStep::Connect,
                after: Duration::from_secs(5),
            },
            ["timeout", "-", "-"],
            Check::Reachable,
            "within 5s",
        ),
        (
            RemoteError::HostKeyMismatch {
                host: host.clone(),
                expected: keys.pin.fingerprint().into(),
                actual: keys.other.fingerprint().into(),
            },
            ["yes", "MISMATCH", "-"],
            Check::HostKey,
            "update host.pinned.host-key",
        ),
        (
            RemoteError::AuthenticationFailed {
                host: host.clone(),
                user: "root".into(),
                fingerprint: "SHA256:admin".into(),
            },
            ["yes", "pinned", "refused"],
            Check::Admin,
            "add its public half to root's authorized_keys",
        ),
        (
            RemoteError::NotPrivileged {
                host: host.clone(),
                user: "root".into(),
                detail: "sudo: a password is required".into(),
            },
            ["yes", "pinned", "no root"],
            Check::Admin,
            "passwordless sudo",
        ),
        (
            RemoteError::MissingTool {
                host: host.clone(),
                detail: "setpriv is not installed on this host".into(),
            },
            ["yes", "pinned", "no tools"],
            Check::Admin,
            "setpriv (util-linux)",
        ),
        (
            RemoteError::Timeout {
                host: host.clone(),
                phase: SshStep::Command(Operation::Probe),
                after: Duration::from_secs(5),
            },
            ["yes", "pinned", "timeout"],
            Check::Admin,
            "did not finish within 5s",
        ),
    ];
    for (error, expected, check, advice) in cases {
        let mut obs = healthy_pair(&keys);
        let verified = super::verdict::host_key_verified_before(&error);
        obs.hosts.get_mut("pinned").unwrap().contact = Contact::Failed {
            host_key: verified.then(|| keys.pin.fingerprint().to_owned()),
            error: error.clone(),
        };
        obs.hosts.get_mut("pinned").unwrap().user_test = None;
        let report = report(&obs);
        let pinned = row(&report, "pinned");
        assert_eq!(
            [
                pinned.reachable.text.as_str(),
                &pinned.host_key.text,
                &pinned.admin.text
            ],
            expected,
            "{error}"
        );
        assert_eq!(pinned.expiry_time.text, "-");
        assert_eq!(pinned.verdict, Verdict::Fail);
        assert_eq!(pinned.problems.len(), 1, "{:?}", pinned.problems);
        assert_eq!(pinned.problems[0].check, check);
        assert!(
            pinned.problems[0].message.contains(advice),
            "{error}: {}",
            pinned.problems[0].message
        );
        assert!(!report.healthy);
        assert_eq!(report.exit_code(), 1);
        assert_eq!(row(&report, "plain").verdict, Verdict::Ok);
    }
}

#[test]
fn a_remembered_key_mismatch_says_how_to_forget_it() {
    let keys = keys();
    let mut obs = healthy_pair(&keys);
    let plain = obs.hosts.get_mut("plain").unwrap();
    plain.remembered_key = RememberedKey::Key(keys.pin.fingerprint().into());
    plain.contact = Contact::Failed {
        error: RemoteError::HostKeyMismatch {
            host: "plain".into(),
            expected: keys.pin.fingerprint().into(),
            actual: keys.other.fingerprint().into(),
        },
        host_key: None,
    };
    plain.user_test = None;
    let report = report(&obs);
    let plain = row(&report, "plain");
    assert_eq!(plain.host_key.text, "MISMATCH");
    assert_eq!(
        plain.host_key_fingerprint.as_deref(),
        Some(keys.other.fingerprint())
    );
    assert_eq!(
        plain.expected_host_key.as_deref(),
        Some(keys.pin.fingerprint())
    );
    let message = &plain.problems[0].message;
    assert!(
        message.contains("multi-platform-controller-known-hosts") && message.contains("-n mpc"),
        "{message}"
    );
    assert!(message.contains(keys.other.fingerprint()), "{message}");
}

#[test]
fn remembered_unchecked_and_invalid_host_keys() {
    let keys = keys();
    let mut obs = healthy_pair(&keys);
    obs.hosts.get_mut("plain").unwrap().remembered_key =
        RememberedKey::Key(keys.other.fingerprint().into());
    let report_remembered = report(&obs);
    assert_eq!(row(&report_remembered, "plain").host_key.text, "remembered");
    assert!(report_remembered.healthy);

    obs.hosts.get_mut("plain").unwrap().remembered_key = RememberedKey::Invalid("bad".into());
    let report_invalid = report(&obs);
    let plain = row(&report_invalid, "plain");
    assert_eq!(plain.host_key.text, "invalid");
    assert_eq!(plain.verdict, Verdict::Fail);
    assert_eq!(plain.problems[0].check, Check::HostKey);

    obs.config.settings.host_key_checking = config::HostKeyChecking::Off;
    let report_off = report(&obs);
    let plain = row(&report_off, "plain");
    assert_eq!(plain.host_key.text, "unchecked");
    assert_eq!(plain.host_key.status, Status::Info);
    assert_eq!(plain.verdict, Verdict::Ok, "{:?}", plain.problems);
    // A pin is checked whatever the mode.
    assert_eq!(row(&report_off, "pinned").host_key.text, "pinned");
}

#[test]
fn admin_key_secret_problems_say_how_to_fix_them() {
    let keys = keys();
    let cases = [
        (
            AdminKeyFact::SecretMissing,
            "kubectl create secret generic admin-key -n mpc",
        ),
        (AdminKeyFact::KeyMissing, "no key id_rsa"),
        (
            AdminKeyFact::Invalid("the admin key is passphrase-protected".into()),
            "passphrase-protected",
        ),
        (
            AdminKeyFact::Unreadable("forbidden".into()),
            "doctor needs get on Secrets in mpc",
        ),
    ];
    for (fact, advice) in cases {
        let mut obs = healthy_pair(&keys);
        let facts = obs.hosts.get_mut("pinned").unwrap();
        facts.admin_key = fact.clone();
        facts.contact = Contact::Handshake {
            round_trip: Duration::from_millis(3),
            host_key: keys.pin.fingerprint().into(),
        };
        facts.user_test = None;
        let report = report(&obs);
        let pinned = row(&report, "pinned");
        assert_eq!(texts(pinned), ["3 ms", "pinned", "no key", "-"], "{fact:?}");
        assert_eq!(pinned.verdict, Verdict::Fail);
        assert_eq!(pinned.problems.len(), 1);
        assert_eq!(pinned.problems[0].check, Check::AdminKey);
        assert!(pinned.problems[0].message.contains(advice), "{fact:?}");
    }
    // A key that works but is not labelled: the controller would not see the Secret.
    let mut obs = healthy_pair(&keys);
    obs.hosts.get_mut("pinned").unwrap().admin_key = AdminKeyFact::Loaded {
        fingerprint: "SHA256:admin".into(),
        labelled: false,
    };
    let report = report(&obs);
    let pinned = row(&report, "pinned");
    assert_eq!(pinned.admin.text, "root");
    assert_eq!(pinned.verdict, Verdict::Fail);
    assert!(
        pinned.problems[0]
            .message
            .contains("kubectl label secret admin-key -n mpc")
    );
}

#[test]
fn the_user_test_outcomes() {
    let keys = keys();
    let timeout = || {
        StepError::Remote(RemoteError::Timeout {
            host: "pinned".into(),
            phase: SshStep::Command(Operation::Provision),
            after: Duration::from_secs(5),
        })
    };
    let cases: Vec<(UserTest, &str, Vec<Check>)> = vec![
        (good_user_test(), "honoured", vec![]),
        (
            UserTest {
                expired_login: Some(Ok(LoginOutcome::Accepted)),
                provision_valid: None,
                valid_login: None,
                ..good_user_test()
            },
            "IGNORED",
            vec![Check::ExpiryTime],
        ),
        (
            UserTest {
                valid_login: Some(Ok(LoginOutcome::Refused)),
                ..good_user_test()
            },
            "no login",
            vec![Check::ExpiryTime],
        ),
        (
            UserTest {
                provision_expired: Err(timeout()),
                expired_login: None,
                provision_valid: None,
                valid_login: None,
                ..good_user_test()
            },
            "no user",
            vec![Check::ExpiryTime],
        ),
        (
            UserTest {
                provision_valid: Some(Err(timeout())),
                valid_login: None,
                ..good_user_test()
            },
            "error",
            vec![Check::ExpiryTime],
        ),
        (
            UserTest {
                cleanup: Err(timeout()),
                still_present: None,
                ..good_user_test()
            },
            "honoured",
            vec![Check::Cleanup],
        ),
        (
            UserTest {
                still_present: Some(Ok(true)),
                ..good_user_test()
            },
            "honoured",
            vec![Check::Cleanup],
        ),
        (
            UserTest {
                provision_expired: Err(timeout()),
                expired_login: None,
                provision_valid: None,
                valid_login: None,
                cleanup: Err(timeout()),
                still_present: None,
                ..good_user_test()
            },
            "no user",
            vec![Check::ExpiryTime, Check::Cleanup],
        ),
    ];
    for (test, text, checks) in cases {
        let mut obs = healthy_pair(&keys);
        obs.hosts.get_mut("pinned").unwrap().user_test = Some(test.clone());
        let report = report(&obs);
        let pinned = row(&report, "pinned");
        assert_eq!(pinned.expiry_time.text, text, "{test:?}");
        let found: Vec<Check> = pinned.problems.iter().map(|f| f.check).collect();
        assert_eq!(found, checks, "{test:?}");
        assert_eq!(pinned.verdict == Verdict::Ok, checks.is_empty());
        if checks.contains(&Check::Cleanup) {
            let cleanup = pinned
                .problems
                .iter()
                .find(|f| f.check == Check::Cleanup)
                .unwrap();
            assert!(
                cleanup
                    .message
                    .contains(&format!("userdel --remove {}", user())),
                "{}",
                cleanup.message
            );
        }
    }
}

#[test]
fn slots_over_capacity_warn_and_uncountable_slots_are_a_cluster_problem() {
    let keys = keys();
    let mut obs = healthy_pair(&keys);
    obs.slots_used = Ok(BTreeMap::from([("pinned".to_owned(), 3)]));
    let report_over = report(&obs);
    let pinned = row(&report_over, "pinned");
    assert_eq!(pinned.verdict, Verdict::Warn);
    assert_eq!(pinned.problems[0].check, Check::Slots);
    assert_eq!(pinned.problems[0].severity, Severity::Warning);
    assert_eq!(report_over.exit_code(), 1);

    obs.slots_used = Err("the TaskRun API is not served".into());
    let report_unknown = report(&obs);
    assert_eq!(row(&report_unknown, "pinned").slots_used, None);
    assert_eq!(row(&report_unknown, "pinned").verdict, Verdict::Ok);
    assert_eq!(report_unknown.cluster_problems[0].check, Check::TaskRuns);
    assert!(!report_unknown.healthy);
    assert!(table::render(&report_unknown).contains(" ?/2 "));
}

#[test]
fn config_problems_unlabelled_config_and_excluded_hosts() {
    let keys = keys();
    let mut obs = healthy_pair(&keys);
    let mut data: BTreeMap<String, String> = host_entries("pinned", "10.0.0.1", "2")
        .into_iter()
        .chain(host_entries("broken", "10.0.0.3", "9"))
        .collect();
    data.insert("host.pinned.colour".into(), "blue".into());
    data.insert("host-key-checking".into(), "maybe".into());
    data.insert(
        "host.pinned.host-key".into(),
        keys.pin.public_key_line().into(),
    );
    obs.config = config::parse(&data);
    obs.hosts.remove("plain");
    obs.config_labelled = false;
    let report = report(&obs);

    assert_eq!(
        report.config_problems.len(),
        2,
        "{:?}",
        report.config_problems
    );
    assert!(
        report.config_problems[0]
            .message
            .contains("kubectl label configmap host-config -n mpc")
    );
    assert_eq!(
        report.config_problems[1].key.as_deref(),
        Some("host-key-checking")
    );
    let broken = row(&report, "broken");
    assert_eq!(broken.verdict, Verdict::Excluded);
    assert_eq!(broken.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(
        broken.problems[0].key.as_deref(),
        Some("host.broken.concurrency")
    );
    let pinned = row(&report, "pinned");
    assert_eq!(pinned.verdict, Verdict::Warn);
    assert_eq!(
        pinned.problems[0].key.as_deref(),
        Some("host.pinned.colour")
    );

    // --host narrows the rows and the host problems, not the global ones.
    obs.selected = Some(BTreeSet::from(["pinned".to_owned()]));
    let narrowed = super::verdict::report(&obs);
    assert_eq!(narrowed.hosts.len(), 1);
    assert_eq!(narrowed.config_problems.len(), 2);
}

#[test]
fn select_rejects_unknown_host_names() {
    let keys = keys();
    let config = two_hosts(&keys);
    assert_eq!(select(&config, &[]).unwrap(), None);
    assert_eq!(
        select(&config, &["plain".into()]).unwrap(),
        Some(BTreeSet::from(["plain".to_owned()]))
    );
    let err = select(&config, &["plain".into(), "nope".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "host-config has no host nope; its hosts are: pinned, plain"
    );
}

#[test]
fn the_table_shows_rows_problems_keys_and_a_summary() {
    let keys = keys();
    let mut obs = healthy_pair(&keys);
    obs.hosts.get_mut("plain").unwrap().contact = Contact::Failed {
        error: RemoteError::Unreachable {
            host: "plain".into(),
            address: "10.0.0.2:22".into(),
            reason: "Connection refused (os error 111)".into(),
        },
        host_key: None,
    };
    obs.hosts.get_mut("plain").unwrap().user_test = None;
    let text = table::render(&report(&obs));
    let pin = keys.pin.fingerprint();
    let expected = format!(
        "namespace mpc, ConfigMap host-config: 2 host(s)

HOST    PLATFORM     ADDRESS      REACHABLE  HOST KEY  ADMIN  EXPIRY-TIME  SLOTS  VERDICT
pinned  linux/arm64  10.0.0.1:22  12 ms      pinned    root   honoured     1/2    ok
plain   linux/arm64  10.0.0.2:22  no         -         -      -            0/4    FAIL
  FAIL reachable: cannot connect to 10.0.0.2:22: Connection refused (os error 111); check that the host is up, that sshd listens on that address and port (host.plain.address, host.plain.port) and that no firewall blocks the controller

host keys:
  pinned  {pin}  matches host.pinned.host-key

1 of 2 host(s) with problems
"
    );
    assert_eq!(text, expected);

    let healthy_text = table::render(&report(&healthy_pair(&keys)));
    assert!(
        healthy_text.ends_with("\nall 2 host(s) ok\n"),
        "{healthy_text}"
    );
}

#[test]
fn json_carries_every_check_in_camel_case() {
    let keys = keys();
    let json = render(&report(&healthy_pair(&keys)), OutputFormat::Json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["healthy"], true);
    assert_eq!(value["namespace"], "mpc");
    let pinned = &value["hosts"][0];
    assert_eq!(pinned["name"], "pinned");
    assert_eq!(pinned["reachable"]["status"], "pass");
    assert_eq!(pinned["roundTripMs"], 12);
    assert_eq!(pinned["hostKey"]["text"], "pinned");
    assert_eq!(pinned["hostKeyFingerprint"], keys.pin.fingerprint());
    assert_eq!(pinned["admin"]["text"], "root");
    assert_eq!(pinned["expiryTime"]["text"], "honoured");
    assert_eq!(pinned["slotsUsed"], 1);
    assert_eq!(pinned["slotsTotal"], 2);
    assert_eq!(pinned["verdict"], "ok");
    assert_eq!(pinned["problems"], serde_json::json!([]));
}

fn arb_error() -> impl Strategy<Value = RemoteError> {
    let h = || "pinned".to_owned();
    prop_oneof![
        Just(RemoteError::Unreachable {
            host: h(),
            address: "a".into(),
            reason: "r".into()
        }),
        Just(RemoteError::Timeout {
            host: h(),
            phase: SshStep::Connect,
            after: Duration::from_secs(1)
        }),
        Just(RemoteError::HostKeyMismatch {
            host: h(),
            expected: "SHA256:e".into(),
            actual: "SHA256:a".into()
        }),
        Just(RemoteError::AuthenticationFailed {
            host: h(),
            user: "root".into(),
            fingerprint: "SHA256:k".into()
        }),
        Just(RemoteError::MissingTool {
            host: h(),
            detail: "x".into()
        }),
        Just(RemoteError::Busy {
            host: h(),
            operation: Operation::Provision,
            detail: "locked".into()
        }),
    ]
}

fn arb_login() -> impl Strategy<Value = Option<Result<LoginOutcome, StepError>>> {
    prop_oneof![
        Just(None),
        Just(Some(Ok(LoginOutcome::Accepted))),
        Just(Some(Ok(LoginOutcome::Refused))),
        arb_error().prop_map(|e| Some(Err(StepError::Remote(e)))),
    ]
}

fn arb_step() -> impl Strategy<Value = Result<(), StepError>> {
    prop_oneof![
        3 => Just(Ok(())),
        1 => arb_error().prop_map(|e| Err(StepError::Remote(e))),
    ]
}

fn arb_user_test() -> impl Strategy<Value = Option<UserTest>> {
    let test = (
        arb_step(),
        arb_login(),
        proptest::option::of(arb_step()),
        arb_login(),
        arb_step(),
        proptest::option::of(prop_oneof![Just(Ok(true)), Just(Ok(false))]),
    )
        .prop_map(|(pe, el, pv, vl, cleanup, still)| UserTest {
            user: user(),
            provision_expired: pe,
            expired_login: el,
            provision_valid: pv,
            valid_login: vl,
            cleanup,
            still_present: still,
        });
    proptest::option::of(test)
}

fn arb_facts() -> impl Strategy<Value = HostFacts> {
    let admin = prop_oneof![
        4 => Just(loaded()),
        1 => Just(AdminKeyFact::SecretMissing),
        1 => Just(AdminKeyFact::Loaded { fingerprint: "SHA256:k".into(), labelled: false }),
    ];
    let remembered = prop_oneof![
        Just(RememberedKey::None),
        Just(RememberedKey::Key("SHA256:r".into())),
        Just(RememberedKey::Invalid("bad".into())),
    ];
    let contact = prop_oneof![
        3 => Just(Contact::Probed {
            round_trip: Duration::from_millis(5),
            host_key: "SHA256:h".into(),
            privilege: Privilege::Root,
            host: podman_ready(),
        }),
        1 => Just(Contact::Handshake { round_trip: Duration::from_millis(5), host_key: "SHA256:h".into() }),
        2 => arb_error().prop_map(|error| Contact::Failed { error, host_key: None }),
    ];
    (admin, remembered, contact, arb_user_test()).prop_map(
        |(admin_key, remembered_key, contact, user_test)| HostFacts {
            admin_key,
            remembered_key,
            contact,
            user_test,
        },
    )
}

proptest! {
    #[test]
    fn verdicts_follow_findings_and_exit_status_follows_verdicts(
        pinned in arb_facts(),
        plain in arb_facts(),
        used in proptest::option::of(0u32..6),
        labelled in any::<bool>(),
    ) {
        let keys = keys();
        let mut obs = healthy_pair(&keys);
        obs.hosts.insert("pinned".into(), pinned);
        obs.hosts.insert("plain".into(), plain);
        obs.slots_used = used
            .map(|n| BTreeMap::from([("pinned".to_owned(), n)]))
            .ok_or_else(|| "no TaskRuns".to_owned());
        obs.config_labelled = labelled;
        let report = report(&obs);
        for row in &report.hosts {
            let fails = row.problems.iter().any(|f| f.severity == Severity::Failure);
            let expected = if fails {
                Verdict::Fail
            } else if row.problems.is_empty() {
                Verdict::Ok
            } else {
                Verdict::Warn
            };
            prop_assert_eq!(row.verdict, expected);
            // A failed cell always comes with a finding that explains it.
            for cell in [&row.reachable, &row.host_key, &row.admin, &row.expiry_time] {
                if cell.status == Status::Fail {
                    prop_assert!(!row.problems.is_empty(), "{:?}", row);
                }
            }
            for finding in &row.problems {
                prop_assert!(!finding.message.is_empty());
            }
        }
        let all_ok = report.hosts.iter().all(|r| r.verdict == Verdict::Ok)
            && report.config_problems.is_empty()
            && report.cluster_problems.is_empty();
        prop_assert_eq!(report.healthy, all_ok);
        prop_assert_eq!(report.exit_code(), if all_ok { 0 } else { 1 });

        let text = table::render(&report);
        for row in &report.hosts {
            let starts = text.lines().filter(|l| l.starts_with(&format!("{} ", row.name))).count();
            prop_assert_eq!(starts, 1);
        }
        let problem_lines = text.lines().filter(|l| l.starts_with("  FAIL ") || l.starts_with("  warn ")).count();
        let findings = report.config_problems.len() + report.cluster_problems.len()
            + report.hosts.iter().map(|h| h.problems.len()).sum::<usize>();
        prop_assert_eq!(problem_lines, findings);
        let json: serde_json::Value = serde_json::from_str(&render(&report, OutputFormat::Json)).unwrap();
        prop_assert_eq!(json["healthy"].as_bool(), Some(report.healthy));
    }
}
