//! taskgen: turns a buildah-style Tekton Task into its remote (SSH) variant, the way the
//! Konflux Go generator does, for every generation of that tool.
//!
//! The remote variant runs chosen steps (by default the step named `build`) on a build
//! host of another architecture: the multi-platform controller provisions the host and
//! puts its address and key into the Secret `multi-platform-ssh-$(context.taskRun.name)`,
//! which the remote Task mounts at `/ssh`.
//!
//! ```
//! let input = r#"
//! apiVersion: tekton.dev/v1
//! kind: Task
//! metadata:
//!   name: buildah
//! spec:
//!   stepTemplate:
//!     volumeMounts:
//!     - name: shared
//!       mountPath: /shared
//!   steps:
//!   - name: build
//!     image: quay.io/buildah/stable
//!     script: buildah build .
//!   volumes:
//!   - name: shared
//!     emptyDir: {}
//! "#;
//! let out = taskgen::generate(input, "buildah.yaml", &taskgen::Options::default()).unwrap();
//! assert!(out.contains("name: buildah-remote"));
//! assert!(out.contains("cat >scripts/script-build.sh <<'REMOTESSHEOF'"));
//! ```

mod adjust;
mod convert;
mod duration;
mod error;
mod generation;
pub mod model;
mod quantity;
mod validate;
mod wrapper;
pub mod yaml;

pub use adjust::{ADJUST_IMAGE, inject_image_suffix};
pub use convert::{DEFAULT_REMOTE_STEP, Options, SSH_SECRET_NAME, StepSelection, convert};
pub use duration::GoDuration;
pub use error::Error;
pub use generation::Generation;
pub use wrapper::HEREDOC_DELIMITER;

use model::Task;

/// Parses a Task from YAML text. `origin` names the input in error messages.
///
/// Like the Go decoder: a leading `---` is fine, comments and unknown fields are
/// dropped, and values keep their declared types (a label `0.1` stays a string).
pub fn parse_task(text: &str, origin: &str) -> Result<Task, Error> {
    let task: Task = serde_saphyr::from_str(text).map_err(|e| Error::InvalidYaml {
        origin: origin.to_owned(),
        message: e.to_string(),
    })?;
    if task.api_version != "tekton.dev/v1" || task.kind != "Task" {
        return Err(Error::NotATask {
            origin: origin.to_owned(),
            api_version: task.api_version,
            kind: task.kind,
        });
    }
    let mut task = task;
    canonicalize_quantities(&mut task)?;
    Ok(task)
}

/// Rewrites resource quantities the way Go's decoder + encoder round trip does
/// (`1000m` → `1`), and rejects the ones Go cannot decode.
fn canonicalize_quantities(task: &mut Task) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    fn fix(resources: &mut ResourceRequirements, at: &str) -> Result<(), Error> {
        for (kind, map) in [
            ("limits", &mut resources.limits),
            ("requests", &mut resources.requests),
        ] {
            for (name, quantity) in map.iter_mut().flatten() {
                quantity.0 =
                    quantity::canonical(&quantity.0).map_err(|source| Error::InvalidQuantity {
                        field: format!("{at}.computeResources.{kind}.{name}"),
                        source,
                    })?;
            }
        }
        Ok(())
    }
    let spec = &mut task.spec;
    if let Some(template) = spec.step_template.as_mut() {
        fix(&mut template.compute_resources, "spec.stepTemplate")?;
    }
    for (i, step) in spec.steps.iter_mut().enumerate() {
        fix(&mut step.compute_resources, &format!("spec.steps[{i}]"))?;
    }
    for (i, sidecar) in spec.sidecars.iter_mut().enumerate() {
        fix(
            &mut sidecar.compute_resources,
            &format!("spec.sidecars[{i}]"),
        )?;
    }
    for (i, volume) in spec.volumes.iter_mut().enumerate() {
        if let Some(limit) = volume
            .empty_dir
            .as_mut()
            .and_then(|e| e.size_limit.as_mut())
        {
            limit.0 = quantity::canonical(&limit.0).map_err(|source| Error::InvalidQuantity {
                field: format!("spec.volumes[{i}].emptyDir.sizeLimit"),
                source,
            })?;
        }
    }
    Ok(())
}

/// Writes a Task as YAML in the Go tool's format (sorted keys, go-yaml v2 style).
pub fn render_task(task: &Task, generation: Generation) -> String {
    let mut value = match serde_json::to_value(task) {
        Ok(value) => value,
        // Our model only has string map keys, so serialization cannot fail.
        Err(_) => serde_json::Value::Null,
    };
    if generation.writes_null_creation_timestamp()
        && let Some(meta) = value
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
    {
        meta.entry("creationTimestamp")
            .or_insert(serde_json::Value::Null);
    }
    yaml::to_yaml(&value)
}

/// Parses `input`, converts it and renders the remote Task.
pub fn generate(input: &str, origin: &str, options: &Options) -> Result<String, Error> {
    let task = parse_task(input, origin)?;
    let remote = convert(&task, options)?;
    Ok(render_task(&remote, options.generation))
}
