//! The alerts and the dashboard of `deploy/monitoring/`: the PrometheusRule passes
//! `promtool check rules`, its unit tests (`tests/alerts-test.yaml`) pass `promtool test
//! rules` with a firing and a quiet case for every alert, every alert has a runbook, the
//! dashboard's queries are valid PromQL, and both use only metric names the controller
//! exports.
//!
//! promtool comes from Debian's `prometheus` package, which hack/test.sh installs; only
//! outside CI, when it is missing and hack/test.sh would install it, do the promtool
//! checks skip (with a note); under CI (`CI` set) a missing promtool fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mpc_core::machine::{Gauges, HostGauge, Metric, PlatformGauge};
use mpc_core::platform::Platform;
use multi_platform_controller::metrics::Metrics;
use serde_json::Value;

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

fn read(name: &str) -> String {
    let path = monitoring_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PrometheusRule, parsed.
fn rule() -> Value {
    serde_saphyr::from_str(&read("prometheus-rule.yaml")).expect("prometheus-rule.yaml is YAML")
}

/// Every alerting rule of the PrometheusRule.
fn alerts() -> Vec<Value> {
    rule()["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&read("dashboard.json")).expect("dashboard.json is JSON")
}

/// Every PromQL expression of the dashboard's panels (rows included).
fn dashboard_queries() -> Vec<String> {
    fn walk(panels: &[Value], out: &mut Vec<String>) {
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            walk(panel["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard()["panels"].as_array().expect("panels"), &mut out);
    out
}

/// The names the controller exports, histogram series included: every family made to
/// appear through the public API.
fn exported_names() -> BTreeSet<String> {
    let metrics = Metrics::new().unwrap();
    let mut gauges = Gauges::default();
    gauges.platforms.insert(
        "linux/arm64".into(),
        PlatformGauge {
            cloud: true,
            ..Default::default()
        },
    );
    gauges.hosts.insert(
        "a1".into(),
        HostGauge {
            platform: "linux/arm64".into(),
            ..Default::default()
        },
    );
    gauges.instances.insert(
        "linux/arm64".into(),
        BTreeMap::from([("running".into(), 1)]),
    );
    metrics.set_gauges(&gauges);
    metrics.record(&Metric::LaunchFailure {
        platform: Platform::parse("linux/arm64").unwrap(),
        code: "Unsupported".into(),
    });
    let mut names = BTreeSet::new();
    for line in metrics.encode().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The controller's metric names an expression uses.
fn used_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("multi_platform_controller_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn alerts_and_dashboard_use_only_metrics_the_controller_exports() {
    let exported = exported_names();
    assert!(
        exported.contains("multi_platform_controller_wait_time_count"),
        "{exported:?}"
    );
    let mut used = BTreeSet::new();
    for alert in alerts() {
        let expr = alert["expr"].as_str().unwrap();
        let names = used_names(expr);
        assert!(!names.is_empty(), "{expr}");
        for name in &names {
            assert!(
                exported.contains(name),
                "alert {} uses {name}, which the controller does not export",
                alert["alert"]
            );
        }
    }
    for expr in dashboard_queries() {
        let names = used_names(&expr);
        assert!(
            !names.is_empty(),
            "a dashboard query on none of ours: {expr}"
        );
        for name in &names {
            assert!(
                exported.contains(name),
                "the dashboard uses {name}, which the controller does not export: {expr}"
            );
        }
        used.extend(names);
    }
    // The dashboard shows pool usage per platform and host, the queue and wait time,
    // allocation time, failures by kind, host health and cloud instances.
    for wanted in [
        "running_tasks",
        "platform_pool_size",
        "slots_used",
        "slots_total",
        "waiting_tasks",
        "wait_time_bucket",
        "host_allocation_time_bucket",
        "provisioning_failures",
        "cleanup_failures",
        "host_allocation_failures",
        "host_cleanup_failures",
        "host_up",
        "cloud_instances",
        "cloud_launch_failures",
    ] {
        let name = format!("multi_platform_controller_{wanted}");
        assert!(used.contains(&name), "the dashboard does not show {name}");
    }
}

#[test]
fn the_dashboard_is_importable() {
    let board = dashboard();
    assert_eq!(board["uid"], "multi-platform-controller");
    let variables: Vec<&str> = board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "platform"]);
    let mut ids = BTreeSet::new();
    for panel in board["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "duplicate panel id {}",
            panel["id"]
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_i64().unwrap(), grid["w"].as_i64().unwrap());
        assert!(
            x >= 0 && w > 0 && x + w <= 24,
            "panel {} leaves the grid",
            panel["title"]
        );
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(
                !panel["targets"].as_array().unwrap().is_empty(),
                "{}",
                panel["title"]
            );
        }
    }
}

#[test]
fn every_alert_has_a_summary_a_runbook_and_firing_and_quiet_unit_tests() {
    let tests: Value = serde_saphyr::from_str(&read("tests/alerts-test.yaml")).unwrap();
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    let alerts = alerts();
    assert_eq!(
        alerts.len(),
        4,
        "host down, cleanup failures, queue, error Secrets"
    );
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        for annotation in ["summary", "runbook"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| s.len() > 20),
                "{name} has no {annotation}"
            );
        }
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
        let mine: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let fires = |c: &&&Value| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        assert!(mine.iter().any(fires), "no unit test where {name} fires");
        assert!(
            mine.iter().any(|c| !fires(c)),
            "no unit test where {name} stays quiet"
        );
    }
}

/// promtool's path, or `None` outside CI when hack/test.sh would install it and it is
/// not installed here; a missing promtool under CI (`CI` set), or one that nothing
/// installs, fails the test.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test.sh");
    let installs = std::fs::read_to_string(&script)
        .unwrap_or_default()
        .contains("/usr/bin/promtool=prometheus");
    assert!(
        installs,
        "promtool not found on PATH and {} does not install it: install Debian's `prometheus` package",
        script.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool not found on PATH under CI: {} should have installed Debian's `prometheus` package",
        script.display()
    );
    eprintln!(
        "SKIPPED: promtool not found on PATH; hack/test.sh installs it (Debian package `prometheus`), run the tests through it or `apt-get install prometheus`"
    );
    None
}

/// Runs promtool; fails the test with its output unless it succeeds.
fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The PrometheusRule's spec as a plain rules file in `dir`.
fn write_rules(dir: &Path, groups: &Value) {
    let doc = serde_json::json!({ "groups": groups });
    // JSON is YAML: promtool reads it as is.
    std::fs::write(dir.join("rules.yaml"), doc.to_string()).unwrap();
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), &rule()["spec"]["groups"]);
    let checked = run_promtool(&promtool, &["check", "rules", "rules.yaml"], dir.path());
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
    std::fs::write(
        dir.path().join("alerts-test.yaml"),
        read("tests/alerts-test.yaml"),
    )
    .unwrap();
    let tested = run_promtool(
        &promtool,
        &["test", "rules", "alerts-test.yaml"],
        dir.path(),
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_dashboard_queries_are_valid_promql() {
    let Some(promtool) = promtool() else {
        return;
    };
    // Each query becomes a recording rule, which `promtool check rules` parses; Grafana's
    // variables get values first.
    let rules: Vec<Value> = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$platform", ".*");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let count = rules.len();
    let dir = tempfile::tempdir().unwrap();
    write_rules(
        dir.path(),
        &serde_json::json!([{"name": "dashboard", "rules": rules}]),
    );
    let checked = run_promtool(&promtool, &["check", "rules", "rules.yaml"], dir.path());
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );
}
