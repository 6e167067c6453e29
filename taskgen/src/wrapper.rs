//! The script that replaces a remote step's own script: it fetches the SSH key, copies
//! workspaces and volumes to the build host, ships the original script in a
//! here-document, runs it there in the step's image with podman, and copies the results
//! back (TASKGEN.md §1.5–1.6).
//!
//! The fixed text of each generation lives in one template under `src/templates/`; this
//! module only renders the per-Task blocks and fills the placeholders.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Volume;
use regex::Regex;

use crate::adjust::ADJUST_IMAGE;
use crate::error::Error;
use crate::generation::Generation;
use crate::model::{Step, StepTemplate, WorkspaceDeclaration};
use crate::validate;

/// The here-document delimiter the wrapper uses to ship the step's script.
pub const HEREDOC_DELIMITER: &str = "REMOTESSHEOF";

/// What the wrapper of one step is made from.
pub struct WrapperInput<'a> {
    /// The step to run remotely (its original script, env, mounts, workingDir).
    pub step: &'a Step,
    /// `spec.stepTemplate` of the Task.
    pub template: &'a StepTemplate,
    /// `spec.workspaces` of the Task.
    pub workspaces: &'a [WorkspaceDeclaration],
    /// `spec.volumes` of the Task (to find which step mounts are Secrets/ConfigMaps).
    pub volumes: &'a [Volume],
}

/// How one generation formats the generated blocks.
struct Dialect {
    template: &'static str,
    /// Indentation of the rsync lines.
    sync_indent: &'static str,
    /// rsync command used to copy to the build host.
    rsync_to: &'static str,
    /// Quote `"$(workspaces.W.path)"` in the copy-to line.
    quote_workspace: bool,
    /// Separator between rsync and the `$HOME/.docker` / results sources (upstream has a
    /// double space in the newer generators).
    fixed_source_sep: &'static str,
    /// Directory of the results on the build host.
    results_dir: &'static str,
    /// Indentation of the `-e`/`-v` podman arguments.
    arg_indent: &'static str,
    /// How the build directory is written in `-v` arguments.
    build_dir: &'static str,
    /// Forward env values with `${NAME@Q}` (survives the second evaluation by sshd).
    quote_env: bool,
    /// rsync command used to copy back.
    rsync_back: &'static str,
    /// Copy back only the `shared` mount (newest) or workspaces and all stepTemplate mounts.
    sync_back_shared_only: bool,
    /// Lines appended to the shipped script.
    remote_appendix: &'static str,
    /// MPC only added its header when the script had no `#!` at all.
    mpc_header: bool,
}

const NEWEST: Dialect = Dialect {
    template: include_str!("templates/newest.sh.tmpl"),
    sync_indent: "  ",
    rsync_to: "rsync --timeout=300 -razW",
    quote_workspace: true,
    fixed_source_sep: "  ",
    results_dir: "results",
    arg_indent: "    ",
    build_dir: "${BUILD_DIR@Q}",
    quote_env: true,
    rsync_back: "rsync --timeout=300 -razW --stats",
    sync_back_shared_only: true,
    remote_appendix: "",
    mpc_header: false,
};

const BUILD_DEFINITIONS: Dialect = Dialect {
    template: include_str!("templates/build-definitions.sh.tmpl"),
    rsync_to: "rsync -razW",
    rsync_back: "rsync -razW --stats",
    sync_back_shared_only: false,
    ..NEWEST
};

const BUILD_DEFINITIONS_2025: Dialect = Dialect {
    template: include_str!("templates/build-definitions-2025.sh.tmpl"),
    rsync_to: "rsync -ra",
    quote_workspace: false,
    fixed_source_sep: " ",
    rsync_back: "rsync -ra",
    sync_back_shared_only: false,
    remote_appendix: "\nbuildah push \"$IMAGE\" \"oci:konflux-final-image:$IMAGE\"\necho \"[$(date --utc -Ins)] End push remote\"",
    ..NEWEST
};

const MPC: Dialect = Dialect {
    template: include_str!("templates/mpc.sh.tmpl"),
    sync_indent: "",
    rsync_to: "rsync -ra",
    quote_workspace: false,
    fixed_source_sep: " ",
    results_dir: "tekton-results",
    arg_indent: " ",
    build_dir: "$BUILD_DIR",
    quote_env: false,
    rsync_back: "rsync -ra",
    sync_back_shared_only: false,
    remote_appendix: "\nbuildah push \"$IMAGE\" oci:rhtap-final-image",
    mpc_header: true,
};

fn dialect(generation: Generation) -> &'static Dialect {
    match generation {
        Generation::Mpc => &MPC,
        Generation::BuildDefinitions01 | Generation::BuildDefinitionsLegacy => {
            &BUILD_DEFINITIONS_2025
        }
        Generation::BuildDefinitions => &BUILD_DEFINITIONS,
        Generation::Newest => &NEWEST,
    }
}

/// A shebang line and the `set -…` lines that follow it, at the very start of a script.
static SHEBANG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(#!.*\n)(set -.*\n)*").expect("static regex"));

/// Renders the wrapper script for one remote step.
pub fn wrapper_script(generation: Generation, input: &WrapperInput<'_>) -> Result<String, Error> {
    let d = dialect(generation);
    let step = input.step;
    validate::step_name(&step.name)?;
    check_script(step)?;

    let mut sync_to = Vec::new();
    let mut args = Vec::new();
    let mut sync_back = Vec::new();
    let (si, ai, bd) = (d.sync_indent, d.arg_indent, d.build_dir);

    for env in input.template.env.iter().chain(&step.env) {
        validate::env_name(&env.name)?;
        let n = &env.name;
        args.push(if d.quote_env {
            format!("{ai}-e {n}=\"${{{n}@Q}}\" \\")
        } else {
            format!("{ai}-e {n}=\"${n}\" \\")
        });
    }
    for ws in input.workspaces {
        validate::workspace_name(&ws.name)?;
        let w = &ws.name;
        let src = if d.quote_workspace {
            format!("\"$(workspaces.{w}.path)\"/")
        } else {
            format!("$(workspaces.{w}.path)/")
        };
        sync_to.push(format!(
            "{si}{} {src} \"$SSH_HOST:$BUILD_DIR/workspaces/{w}/\"",
            d.rsync_to
        ));
        args.push(format!(
            "{ai}-v \"{bd}/workspaces/{w}:$(workspaces.{w}.path):Z\" \\"
        ));
        if !d.sync_back_shared_only {
            sync_back.push(format!(
                "{si}{} \"$SSH_HOST:$BUILD_DIR/workspaces/{w}/\" \"$(workspaces.{w}.path)/\"",
                d.rsync_back
            ));
        }
    }
    let synced_step_mounts = step.volume_mounts.iter().filter(|m| {
        input
            .volumes
            .iter()
            .any(|v| v.name == m.name && (v.secret.is_some() || v.config_map.is_some()))
    });
    for (mount, from_template) in input
        .template
        .volume_mounts
        .iter()
        .map(|m| (m, true))
        .chain(synced_step_mounts.map(|m| (m, false)))
    {
        validate::volume_name(&mount.name)?;
        validate::path("volume mount path", &mount.mount_path)?;
        let (n, mp) = (&mount.name, &mount.mount_path);
        sync_to.push(format!(
            "{si}{} {mp}/ \"$SSH_HOST:$BUILD_DIR/volumes/{n}/\"",
            d.rsync_to
        ));
        args.push(format!("{ai}-v \"{bd}/volumes/{n}:{mp}:Z\" \\"));
        if from_template && !d.sync_back_shared_only {
            sync_back.push(format!(
                "{si}{} \"$SSH_HOST:$BUILD_DIR/volumes/{n}/\" {mp}/",
                d.rsync_back
            ));
        }
    }
    let (rsync, sep, results) = (d.rsync_to, d.fixed_source_sep, d.results_dir);
    sync_to.push(format!(
        "{si}{rsync}{sep}\"$HOME/.docker/\" \"$SSH_HOST:$BUILD_DIR/.docker/\""
    ));
    sync_to.push(format!(
        "{si}{rsync}{sep}\"/tekton/results/\" \"$SSH_HOST:$BUILD_DIR/{results}/\""
    ));
    args.push(format!("{ai}-v \"{bd}/.docker/:/root/.docker:Z\" \\"));
    args.push(format!("{ai}-v \"{bd}/{results}/:/tekton/results:Z\" \\"));

    if d.sync_back_shared_only {
        let shared = input
            .template
            .volume_mounts
            .iter()
            .find(|m| m.name == "shared")
            .ok_or_else(|| Error::MissingSharedMount {
                step: step.name.clone(),
            })?;
        sync_back.push(format!(
            "{si}{} \"$SSH_HOST:$BUILD_DIR/volumes/shared/\" {}/",
            d.rsync_back, shared.mount_path
        ));
    }
    sync_back.push(format!(
        "{si}{} \"$SSH_HOST:$BUILD_DIR/{results}/\" \"/tekton/results/\"",
        d.rsync_back
    ));

    let adjust = if generation.appends_platform() {
        ADJUST_IMAGE
    } else {
        ""
    };
    let remote_script = remote_script(d, step)?;
    let script = fill(
        d.template.strip_suffix('\n').unwrap_or(d.template),
        &[
            ("STEP", &step.name),
            ("SYNC_TO", &sync_to.join("\n")),
            ("ADJUST", adjust),
            ("REMOTE_SCRIPT", &remote_script),
            ("PODMAN_ARGS", &args.join("\n")),
            ("SYNC_BACK", &sync_back.join("\n")),
        ],
    );
    check_wrapper(&step.name, &script)?;
    Ok(script)
}

/// The step's script made standalone: a shebang and `set` lines, `cd` to the step's
/// workingDir, the original body, and the generation's appendix.
fn remote_script(d: &Dialect, step: &Step) -> Result<String, Error> {
    let script = step.script.as_str();
    let mut out = String::new();
    let mut body = script;
    if d.mpc_header {
        if script.starts_with("#!") {
            // Keep the shebang first (MPC put `cd` above it, which breaks the script).
            let end = script.find('\n').map_or(script.len(), |i| i + 1);
            out.push_str(&script[..end]);
            if !out.ends_with('\n') {
                out.push('\n');
            }
            body = &script[end..];
        } else {
            out.push_str("#!/bin/bash\nset -o verbose\nset -e\n");
        }
    } else if let Some(m) = SHEBANG.find(script) {
        out.push_str(m.as_str());
        body = &script[m.end()..];
    } else {
        out.push_str("#!/bin/bash\nset -o verbose\nset -e\n");
    }
    if !step.working_dir.is_empty() {
        validate::path("workingDir", &step.working_dir)?;
        out.push_str("cd ");
        out.push_str(&step.working_dir);
        out.push('\n');
    }
    out.push_str(body);
    out.push_str(d.remote_appendix);
    Ok(out)
}

/// Rejects scripts the wrapper cannot carry faithfully: trailing whitespace (reported
/// with the step's own line numbers) and the here-document delimiter.
fn check_script(step: &Step) -> Result<(), Error> {
    for (i, line) in step.script.split('\n').enumerate() {
        if line.ends_with([' ', '\t']) {
            return Err(Error::TrailingWhitespace {
                step: step.name.clone(),
                line: i + 1,
                text: line.to_owned(),
            });
        }
        if line == HEREDOC_DELIMITER {
            return Err(Error::HeredocDelimiter {
                step: step.name.clone(),
                line: i + 1,
            });
        }
    }
    Ok(())
}

/// The Go tool panics on any wrapper line ending in a space; this catches lines made
/// from generated parts too (e.g. a workingDir ending in a space).
fn check_wrapper(step: &str, script: &str) -> Result<(), Error> {
    match script
        .split('\n')
        .enumerate()
        .find(|(_, line)| line.ends_with([' ', '\t']))
    {
        Some((i, line)) => Err(Error::TrailingWhitespace {
            step: step.to_owned(),
            line: i + 1,
            text: line.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Replaces `{NAME}` placeholders of the template in one pass, so text inserted for one
/// placeholder (e.g. the user's script) is never scanned for others.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (before, from_brace) = rest.split_at(open);
        out.push_str(before);
        let hit = values.iter().find(|(name, _)| {
            from_brace[1..].starts_with(name)
                && from_brace[1 + name.len()..].starts_with('}')
                && !before.ends_with('$')
        });
        match hit {
            Some((name, value)) => {
                out.push_str(value);
                rest = &from_brace[name.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &from_brace[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_each_placeholder_once_and_leaves_shell_braces() {
        let out = fill("a {X} ${X} {Y}\n{X}", &[("X", "{Y}"), ("Y", "y")]);
        assert_eq!(out, "a {Y} ${X} y\n{Y}");
    }

    #[test]
    fn every_template_uses_every_placeholder_it_needs() {
        for d in [&NEWEST, &BUILD_DEFINITIONS, &BUILD_DEFINITIONS_2025, &MPC] {
            for name in [
                "{STEP}",
                "{SYNC_TO}",
                "{REMOTE_SCRIPT}",
                "{PODMAN_ARGS}",
                "{SYNC_BACK}",
            ] {
                assert!(d.template.contains(name), "{name} missing");
            }
            assert_eq!(d.template.contains("{ADJUST}"), !d.mpc_header);
        }
    }
}
