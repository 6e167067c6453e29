//! One test per rule of TASKGEN.md §3.2 and per error case, on small hand-written Tasks.

mod common;

use common::{assert_bash_syntax, assert_shellcheck, parse_yaml, step_script};
use serde_json::Value;
use taskgen::{ADJUST_IMAGE, Error, Generation, Options, StepSelection};

/// A minimal buildah-like Task; `steps` and `extra_spec` are YAML fragments indented
/// for `spec:`.
fn task(name: &str, steps: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: {name}
spec:
  stepTemplate:
    env:
    - name: IMAGE
      value: $(params.IMAGE)
    volumeMounts:
    - name: shared
      mountPath: /shared
  params:
  - name: IMAGE
    type: string
  volumes:
  - name: shared
    emptyDir: {{}}
{extra_spec}  steps:
{steps}"
    )
}

const BUILD_STEP: &str = "  - name: build
    image: quay.io/example/builder:1
    workingDir: $(workspaces.source.path)
    script: |
      #!/bin/bash
      set -e
      buildah build -t \"$IMAGE\" .
";

fn with(generation: Generation) -> Options {
    Options {
        generation,
        ..Options::default()
    }
}

fn generate(input: &str, options: &Options) -> Value {
    let out = taskgen::generate(input, "test.yaml", options).unwrap_or_else(|e| panic!("{e}"));
    parse_yaml(&out)
}

fn newest(input: &str) -> Value {
    generate(input, &Options::default())
}

fn build_script(task: &Value) -> String {
    step_script(task, "build").expect("build step script")
}

/// The here-document body (the script shipped to the build host).
fn shipped(script: &str) -> String {
    let start = script.find("<<'REMOTESSHEOF'\n").expect("heredoc") + "<<'REMOTESSHEOF'\n".len();
    let end = script[start..].find("\nREMOTESSHEOF\n").expect("delimiter") + start;
    script[start..end].to_owned()
}

fn env_names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|e| e["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

// §3.2.2 name mapping

#[test]
fn names_map_buildah_to_buildah_remote() {
    for (from, to) in [
        ("buildah", "buildah-remote"),
        ("buildah-oci-ta", "buildah-remote-oci-ta"),
        ("my-build", "my-build"),
    ] {
        let out = newest(&task(from, BUILD_STEP, ""));
        assert_eq!(out["metadata"]["name"], to);
    }
    let options = Options {
        task_name: Some("run-remote".to_owned()),
        ..Options::default()
    };
    let out = generate(&task("run", BUILD_STEP, ""), &options);
    assert_eq!(out["metadata"]["name"], "run-remote");
}

// §3.2.3 non-build step scripts

#[test]
fn other_steps_get_the_image_suffix_snippet_only_when_they_are_bash() {
    let steps = format!(
        "{BUILD_STEP}  - name: plain
    image: x
    script: echo \"$IMAGE\"
  - name: with-set
    image: x
    script: |
      #!/bin/bash
      set -e
      echo
  - name: env-bash
    image: x
    script: |
      #!/usr/bin/env bash
      set -euo pipefail
      set -x
      echo
  - name: python
    image: x
    script: |
      #!/bin/python3
      print('hi')
  - name: args-only
    image: x
    args: [--flag]
"
    );
    let out = newest(&task("buildah", &steps, ""));
    assert_eq!(
        step_script(&out, "plain").unwrap(),
        format!("#!/bin/bash\nset -e\n{ADJUST_IMAGE}echo \"$IMAGE\"")
    );
    assert_eq!(
        step_script(&out, "with-set").unwrap(),
        format!("#!/bin/bash\nset -e\n{ADJUST_IMAGE}echo\n")
    );
    assert_eq!(
        step_script(&out, "env-bash").unwrap(),
        format!("#!/usr/bin/env bash\nset -euo pipefail\nset -x\n{ADJUST_IMAGE}echo\n")
    );
    assert_eq!(
        step_script(&out, "python").unwrap(),
        "#!/bin/python3\nprint('hi')\n"
    );
    assert_eq!(step_script(&out, "args-only"), None);
    let args_only = &out["spec"]["steps"][5];
    assert_eq!(args_only["args"], serde_json::json!(["--flag"]));
    assert_eq!(args_only["computeResources"], serde_json::json!({}));

    for generation in [Generation::BuildDefinitions01, Generation::Mpc] {
        let out = generate(&task("buildah", &steps, ""), &with(generation));
        assert_eq!(
            step_script(&out, "plain").unwrap(),
            "echo \"$IMAGE\"",
            "{generation:?}"
        );
    }
}

// §3.2.4 build script with/without shebang and workingDir

#[test]
fn shipped_script_keeps_its_shebang_and_set_lines_then_changes_directory() {
    let out = newest(&task("buildah", BUILD_STEP, ""));
    assert_eq!(
        shipped(&build_script(&out)),
        "#!/bin/bash\nset -e\ncd $(workspaces.source.path)\nbuildah build -t \"$IMAGE\" .\n"
    );
}

#[test]
fn shipped_script_without_shebang_or_working_dir_gets_the_default_header() {
    let step = "  - name: build
    image: b
    script: |
      make
";
    let out = newest(&task("buildah", step, ""));
    assert_eq!(
        shipped(&build_script(&out)),
        "#!/bin/bash\nset -o verbose\nset -e\nmake\n"
    );
}

#[test]
fn a_shebang_later_in_a_shebang_less_script_is_left_where_it_is() {
    // The Go tool copied such a match to the top (e.g. a python shebang from an embedded
    // file), which made the shipped bash script a python script. taskgen only treats a
    // shebang on the first line as the script's own.
    let step = "  - name: build
    image: b
    script: |
      cat > x.py <<'EOF'
      #!/usr/bin/env python3
      set -x
      EOF
";
    let out = newest(&task("buildah", step, ""));
    assert_eq!(
        shipped(&build_script(&out)),
        "#!/bin/bash\nset -o verbose\nset -e\ncat > x.py <<'EOF'\n#!/usr/bin/env python3\nset -x\nEOF\n"
    );
}

#[test]
fn mpc_keeps_a_shebang_above_the_cd_line() {
    let out = generate(&task("buildah", BUILD_STEP, ""), &with(Generation::Mpc));
    assert!(
        shipped(&build_script(&out))
            .starts_with("#!/bin/bash\ncd $(workspaces.source.path)\nset -e\nbuildah build")
    );
}

// §3.2.5 which build-step volumes are synced

#[test]
fn only_secret_and_config_map_mounts_of_the_build_step_are_synced() {
    let step = "  - name: build
    image: b
    script: make
    volumeMounts:
    - name: creds
      mountPath: /creds
    - name: ca
      mountPath: /mnt/ca
      readOnly: true
    - name: scratch
      mountPath: /scratch
    - name: token
      mountPath: /token
";
    let volumes = "  workspaces: []
";
    let input = task("buildah", step, volumes).replace(
        "  - name: shared\n    emptyDir: {}\n",
        "  - name: shared\n    emptyDir: {}\n  - name: creds\n    secret:\n      secretName: c\n  - name: ca\n    configMap:\n      name: ca\n  - name: scratch\n    emptyDir: {}\n  - name: token\n    projected:\n      sources: []\n",
    );
    let script = build_script(&newest(&input));
    assert!(
        script
            .contains("rsync --timeout=300 -razW /creds/ \"$SSH_HOST:$BUILD_DIR/volumes/creds/\"")
    );
    assert!(script.contains("-v \"${BUILD_DIR@Q}/volumes/ca:/mnt/ca:Z\" \\"));
    assert!(!script.contains("/scratch"));
    assert!(!script.contains("/token"));
}

// §3.2.6 workspaces and stepTemplate mounts

#[test]
fn every_workspace_is_synced_and_mounted_in_declaration_order() {
    let count_syncs = |extra: &str| {
        let script = build_script(&newest(&task("buildah", BUILD_STEP, extra)));
        script.matches("\"$SSH_HOST:$BUILD_DIR/workspaces/").count()
    };
    assert_eq!(count_syncs(""), 0);
    assert_eq!(count_syncs("  workspaces:\n  - name: source\n"), 1);
    let script = build_script(&newest(&task(
        "buildah",
        BUILD_STEP,
        "  workspaces:\n  - name: source\n  - name: cache\n    optional: true\n",
    )));
    let source = script.find("-v \"${BUILD_DIR@Q}/workspaces/source:$(workspaces.source.path):Z\"");
    let cache = script.find("-v \"${BUILD_DIR@Q}/workspaces/cache:$(workspaces.cache.path):Z\"");
    assert!(source.is_some() && cache.is_some() && source < cache);
    // The newest generator does not copy workspaces back.
    assert!(!script.contains("workspaces/source/\" \"$(workspaces.source.path)/\""));
}

#[test]
fn step_template_mounts_are_synced_and_older_generators_copy_them_back() {
    let input = task("buildah", BUILD_STEP, "  workspaces:\n  - name: source\n");
    let newest_script = build_script(&newest(&input));
    assert!(newest_script.contains(
        "rsync --timeout=300 -razW --stats \"$SSH_HOST:$BUILD_DIR/volumes/shared/\" /shared/"
    ));
    let bd = build_script(&generate(&input, &with(Generation::BuildDefinitions)));
    assert!(bd.contains("rsync -razW --stats \"$SSH_HOST:$BUILD_DIR/workspaces/source/\" \"$(workspaces.source.path)/\""));
    assert!(bd.contains("rsync -razW --stats \"$SSH_HOST:$BUILD_DIR/volumes/shared/\" /shared/"));
}

#[test]
fn step_template_without_mounts_is_fine_for_older_generators_only() {
    let input = task("buildah", BUILD_STEP, "").replace(
        "    volumeMounts:\n    - name: shared\n      mountPath: /shared\n",
        "",
    );
    let bd = build_script(&generate(&input, &with(Generation::BuildDefinitions)));
    assert!(!bd.contains("/volumes/"));
    match taskgen::generate(&input, "t", &Options::default()) {
        Err(Error::MissingSharedMount { step }) => assert_eq!(step, "build"),
        other => panic!("expected MissingSharedMount, got {other:?}"),
    }
}

// §3.2.7 env forwarding

#[test]
fn env_is_forwarded_by_name_template_first_and_appended_env_is_not() {
    let step = "  - name: build
    image: b
    script: make
    env:
    - name: HOME
      value: /root
    - name: TOKEN
      valueFrom:
        secretKeyRef:
          name: s
          key: k
";
    let out = newest(&task("buildah", step, ""));
    let script = build_script(&out);
    let forwarded: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-e "))
        .map(|l| l.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(forwarded, ["IMAGE", "HOME", "TOKEN"]);
    assert!(script.contains("-e TOKEN=\"${TOKEN@Q}\" \\"));
    assert_eq!(
        env_names(&out["spec"]["stepTemplate"]["env"]),
        [
            "IMAGE",
            "BUILDER_IMAGE",
            "PLATFORM",
            "IMAGE_APPEND_PLATFORM"
        ]
    );
    assert_eq!(out["spec"]["stepTemplate"]["env"][1]["value"], "b");
    let mpc = build_script(&generate(
        &task("buildah", step, ""),
        &with(Generation::Mpc),
    ));
    assert!(mpc.contains(" -e TOKEN=\"$TOKEN\" \\"));
}

// §3.2.8 trailing whitespace, heredoc delimiter

#[test]
fn trailing_whitespace_in_the_build_script_is_an_error_naming_the_line() {
    for ending in [" ", "\t"] {
        let step = format!(
            "  - name: build\n    image: b\n    script: \"make\\nmake install{}\\necho\"\n",
            if ending == " " { " " } else { "\\t" }
        );
        match taskgen::generate(&task("buildah", &step, ""), "t", &Options::default()) {
            Err(Error::TrailingWhitespace { step, line, text }) => {
                assert_eq!((step.as_str(), line), ("build", 2));
                assert_eq!(text, format!("make install{ending}"));
            }
            other => panic!("expected TrailingWhitespace, got {other:?}"),
        }
    }
    // Other steps keep Go's behaviour: their script is written double-quoted.
    let steps =
        format!("{BUILD_STEP}  - name: other\n    image: x\n    script: \"echo \\necho\"\n");
    let out = taskgen::generate(&task("buildah", &steps, ""), "t", &Options::default()).unwrap();
    assert!(out.contains("script: \"#!/bin/bash\\nset -e\\n"));
}

#[test]
fn trailing_space_from_generated_parts_is_an_error_too() {
    let input = task("buildah", BUILD_STEP, "").replace(
        "workingDir: $(workspaces.source.path)",
        "workingDir: \"/src \"",
    );
    assert!(matches!(
        taskgen::generate(&input, "t", &Options::default()),
        Err(Error::UnsafeShellWord { .. } | Error::TrailingWhitespace { .. })
    ));
}

#[test]
fn the_heredoc_delimiter_inside_the_script_is_an_error() {
    let step = "  - name: build
    image: b
    script: |
      cat <<REMOTESSHEOF
      hi
      REMOTESSHEOF
";
    match taskgen::generate(&task("buildah", step, ""), "t", &Options::default()) {
        Err(Error::HeredocDelimiter { step, line }) => {
            assert_eq!((step.as_str(), line), ("build", 3))
        }
        other => panic!("expected HeredocDelimiter, got {other:?}"),
    }
}

// §3.2.9 unreadable / invalid input, missing stepTemplate

#[test]
fn invalid_yaml_and_non_tasks_are_errors() {
    assert!(matches!(
        taskgen::generate("spec: [unclosed", "bad.yaml", &Options::default()),
        Err(Error::InvalidYaml { origin, .. }) if origin == "bad.yaml"
    ));
    assert!(matches!(
        taskgen::generate("spec:\n  steps: 3\n", "t", &Options::default()),
        Err(Error::InvalidYaml { .. })
    ));
    let v1beta1 = task("buildah", BUILD_STEP, "").replace("tekton.dev/v1", "tekton.dev/v1beta1");
    let err = taskgen::generate(&v1beta1, "t", &Options::default()).unwrap_err();
    assert!(matches!(err, Error::NotATask { .. }));
    assert!(err.to_string().contains("tekton.dev/v1beta1"));
    assert!(matches!(
        taskgen::generate("", "empty.yaml", &Options::default()),
        Err(Error::NotATask { .. })
    ));
}

#[test]
fn missing_step_template_is_an_error() {
    let input = "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: buildah\nspec:\n  steps:\n  - name: build\n    image: b\n    script: make\n";
    let err = taskgen::generate(input, "t", &Options::default()).unwrap_err();
    assert!(matches!(err, Error::MissingStepTemplate));
    assert!(err.to_string().contains("stepTemplate"));
}

#[test]
fn unsafe_names_and_paths_are_errors() {
    let cases = [
        ("mountPath: /shared", "mountPath: /sha red"),
        (
            "value: $(params.IMAGE)\n    volumeMounts",
            "value: x\n    - name: BAD-NAME\n      value: y\n    volumeMounts",
        ),
        (
            "workingDir: $(workspaces.source.path)",
            "workingDir: /src;rm",
        ),
    ];
    for (from, to) in cases {
        let input = task("buildah", BUILD_STEP, "").replacen(from, to, 1);
        assert!(
            matches!(
                taskgen::generate(&input, "t", &Options::default()),
                Err(Error::UnsafeShellWord { .. })
            ),
            "{to}"
        );
    }
}

// §3.2.10 no build step; --step

#[test]
fn without_a_build_step_only_the_task_level_additions_are_made() {
    let steps = "  - name: compile\n    image: c\n    script: make\n";
    let out = newest(&task("buildah", steps, ""));
    assert_eq!(
        out["spec"]["stepTemplate"]["env"][1],
        serde_json::json!({"name": "BUILDER_IMAGE"})
    );
    let params: Vec<&str> = out["spec"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["IMAGE", "PLATFORM", "IMAGE_APPEND_PLATFORM"]);
    assert_eq!(
        out["spec"]["volumes"][1]["secret"]["secretName"],
        "multi-platform-ssh-$(context.taskRun.name)"
    );
    assert_eq!(out["spec"]["volumes"][1]["secret"]["optional"], false);
    assert!(
        step_script(&out, "compile")
            .unwrap()
            .contains("IMAGE_APPEND_PLATFORM")
    );
}

#[test]
fn step_flag_selects_remote_steps_and_rejects_unknown_ones() {
    let steps = "  - name: compile\n    image: c1\n    script: make\n  - name: test\n    image: c2\n    script: make test\n  - name: report\n    image: c3\n    script: echo done\n";
    let options = Options {
        steps: StepSelection::Named(vec!["compile".into(), "test".into()]),
        ..Options::default()
    };
    let out = generate(&task("run", steps, ""), &options);
    for (name, image) in [("compile", "c1"), ("test", "c2")] {
        let script = step_script(&out, name).unwrap();
        assert!(script.contains(&format!("cat >scripts/script-{name}.sh <<'REMOTESSHEOF'")));
        let step = out["spec"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        assert_eq!(step["image"], image);
        assert_eq!(step["volumeMounts"][0]["mountPath"], "/ssh");
    }
    // The stepTemplate names the last remote step's image; the others override it.
    assert_eq!(out["spec"]["stepTemplate"]["env"][1]["value"], "c2");
    assert_eq!(
        out["spec"]["steps"][0]["env"],
        serde_json::json!([{"name": "BUILDER_IMAGE", "value": "c1"}])
    );
    assert!(out["spec"]["steps"][1].get("env").is_none());
    assert!(
        step_script(&out, "report")
            .unwrap()
            .contains("IMAGE_APPEND_PLATFORM")
    );

    let options = Options {
        steps: StepSelection::Named(vec!["nope".into()]),
        ..Options::default()
    };
    let err = taskgen::generate(&task("run", steps, ""), "t", &options).unwrap_err();
    assert!(err.to_string().contains("compile, test, report"), "{err}");
}

// Generations

#[test]
fn legacy_versions_add_platform_handling_and_the_container_mount_block() {
    let input = task("buildah", BUILD_STEP, "");
    for (generation, platform) in [
        (Generation::BuildDefinitions01, false),
        (Generation::BuildDefinitionsLegacy, true),
    ] {
        let out = generate(&input, &with(generation));
        let script = build_script(&out);
        assert!(script.contains("find $(cat /shared/container_path) -xtype l -delete"));
        assert!(script.contains("buildah push \"$IMAGE\" \"oci:konflux-final-image:$IMAGE\""));
        assert_eq!(script.contains(ADJUST_IMAGE), platform, "{generation:?}");
        assert_eq!(
            env_names(&out["spec"]["stepTemplate"]["env"]).contains(&"PLATFORM".to_owned()),
            platform
        );
        assert_eq!(out["metadata"]["creationTimestamp"], Value::Null);
        assert!(
            out["metadata"]
                .as_object()
                .unwrap()
                .contains_key("creationTimestamp")
        );
    }
    let newest_out = newest(&input);
    assert!(
        !newest_out["metadata"]
            .as_object()
            .unwrap()
            .contains_key("creationTimestamp")
    );
}

#[test]
fn mpc_runs_the_wrapper_in_the_runner_image() {
    let out = generate(&task("buildah", BUILD_STEP, ""), &with(Generation::Mpc));
    let build = &out["spec"]["steps"][0];
    assert!(
        build["image"]
            .as_str()
            .unwrap()
            .starts_with("quay.io/redhat-appstudio/multi-platform-runner:")
    );
    assert_eq!(
        out["spec"]["stepTemplate"]["env"][1]["value"],
        "quay.io/example/builder:1"
    );
    assert_eq!(
        env_names(&out["spec"]["stepTemplate"]["env"]),
        ["IMAGE", "BUILDER_IMAGE"]
    );
}

// Typed model

#[test]
fn typed_values_keep_their_string_form_and_unknown_fields_are_dropped() {
    let input = task("buildah", BUILD_STEP, "").replace(
        "metadata:\n  name: buildah\n",
        "metadata:\n  name: buildah\n  labels:\n    app.kubernetes.io/version: 0.1\n    count: 10\n  annotations:\n    expires: 2024-11-13T00:00:00Z\n  madeUp: true\n",
    )
    .replace("  params:\n", "  unknownSpecField: 1\n  params:\n");
    let out = taskgen::generate(&input, "t", &Options::default()).unwrap();
    assert!(out.contains("    expires: \"2024-11-13T00:00:00Z\"\n"));
    assert!(out.contains("    app.kubernetes.io/version: \"0.1\"\n"));
    assert!(out.contains("    count: \"10\"\n"));
    assert!(!out.contains("madeUp"));
    assert!(!out.contains("unknownSpecField"));
}

#[test]
fn step_timeouts_are_written_as_go_durations() {
    let input = task("buildah", BUILD_STEP, "")
        .replace("    workingDir:", "    timeout: 90m\n    workingDir:");
    let out = newest(&input);
    assert_eq!(out["spec"]["steps"][0]["timeout"], "1h30m0s");
}

// Lint of every generated wrapper

#[test]
fn generated_wrappers_pass_bash_and_shellcheck() {
    let input = task("buildah", BUILD_STEP, "  workspaces:\n  - name: source\n");
    let script = build_script(&newest(&input));
    assert_bash_syntax(&script, "newest");
    assert_shellcheck(&script, &[], "newest");
    for (generation, allowed) in [
        (Generation::BuildDefinitions, &["SC2155"][..]),
        (
            Generation::BuildDefinitionsLegacy,
            &["SC2155", "SC2046", "SC2086"][..],
        ),
        (
            Generation::BuildDefinitions01,
            &["SC2155", "SC2046", "SC2086"][..],
        ),
        (Generation::Mpc, &["SC2155", "SC2046", "SC2086"][..]),
    ] {
        let script = build_script(&generate(&input, &with(generation)));
        let what = format!("{generation:?}");
        assert_bash_syntax(&script, &what);
        assert_shellcheck(&script, allowed, &what);
    }
}

#[test]
fn resource_quantities_are_written_as_go_writes_them() {
    let input = task("buildah", BUILD_STEP, "").replace(
        "    workingDir:",
        "    computeResources:\n      requests:\n        cpu: 1000m\n        memory: 1024Mi\n      limits:\n        cpu: 0.5\n        memory: 8Gi\n    workingDir:",
    );
    let out = newest(&input);
    let resources = &out["spec"]["steps"][0]["computeResources"];
    assert_eq!(resources["requests"]["cpu"], "1");
    assert_eq!(resources["requests"]["memory"], "1Gi");
    assert_eq!(resources["limits"]["cpu"], "500m");
    assert_eq!(resources["limits"]["memory"], "8Gi");

    let bad = input.replace("cpu: 0.5", "cpu: lots");
    let err = taskgen::generate(&bad, "t", &Options::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidQuantity { .. }));
    assert!(
        err.to_string()
            .contains("spec.steps[0].computeResources.limits.cpu"),
        "{err}"
    );
}
