//! Golden tests: every upstream input/output pair in the shared fixture folder is
//! regenerated with the generation its README names and compared — parsed YAML, the
//! build-step script, and the whole file byte for byte.

mod common;

use std::collections::BTreeSet;

use common::{assert_bash_syntax, assert_shellcheck, fixtures_dir, parse_yaml, step_script};
use taskgen::{Generation, Options, StepSelection};

/// Folder → `--task-version` (None = newest) → shellcheck codes the upstream output of
/// that generation itself triggers (older generators predate shellcheck in CI).
const FOLDERS: &[(&str, Option<&str>, &[&str])] = &[
    ("01-newest-container-build-catalog-0.12.0", None, &[]),
    ("02-build-definitions-0.10", Some("0.10"), &["SC2155"]),
    (
        "04-build-definitions-0.1-taskversion-0.1",
        Some("0.1"),
        &["SC2155", "SC2046", "SC2086"],
    ),
    (
        "05-mpc-taskgen-era-0.1",
        Some("mpc"),
        &["SC2155", "SC2046", "SC2086"],
    ),
];

const VARIANTS: &[(&str, &str)] = &[
    ("input-buildah.yaml", "output-buildah-remote.yaml"),
    (
        "input-buildah-oci-ta.yaml",
        "output-buildah-remote-oci-ta.yaml",
    ),
];

#[test]
fn every_fixture_folder_is_known_and_present() {
    let dir = fixtures_dir();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "fixture folder {} cannot be read ({e}); it is ../shared/fixtures/taskgen \
                 beside the repository, or set TASKGEN_FIXTURES to the taskgen fixtures",
                dir.display()
            )
        })
        .map(|entry| entry.expect("dir entry"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = FOLDERS.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(
        present, known,
        "fixture folders and the table in tests/golden.rs differ: add new folders with the \
         task version their README.txt names"
    );
}

#[test]
fn fixtures_regenerate_byte_for_byte() {
    let dir = fixtures_dir();
    for (folder, version, allowed) in FOLDERS {
        let generation = Generation::from_task_version(*version).expect("known version");
        for (input_name, output_name) in VARIANTS {
            let input_path = dir.join(folder).join(input_name);
            let output_path = dir.join(folder).join(output_name);
            let case = format!("{folder}/{input_name}");
            let input = std::fs::read_to_string(&input_path)
                .unwrap_or_else(|e| panic!("missing fixture {}: {e}", input_path.display()));
            let expected = std::fs::read_to_string(&output_path)
                .unwrap_or_else(|e| panic!("missing fixture {}: {e}", output_path.display()));
            let options = Options {
                generation,
                steps: StepSelection::Build,
                task_name: None,
            };
            let generated = taskgen::generate(&input, &case, &options)
                .unwrap_or_else(|e| panic!("{case}: {e}"));

            let (got, want) = (parse_yaml(&generated), parse_yaml(&expected));
            let got_script = step_script(&got, "build").expect("generated build script");
            let want_script = step_script(&want, "build").expect("upstream build script");
            assert_eq!(got_script, want_script, "{case}: build script differs");
            assert_eq!(got, want, "{case}: parsed YAML differs");
            assert!(
                generated == expected,
                "{case}: not byte-identical:\n{}",
                similar::TextDiff::from_lines(&expected, &generated)
                    .unified_diff()
                    .header("upstream", "generated")
            );

            assert_bash_syntax(&got_script, &case);
            assert_shellcheck(&got_script, allowed, &case);
        }
    }
}
