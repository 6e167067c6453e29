//! Task → remote Task (TASKGEN.md §1.2–1.4): a pure function over the typed model.

use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume};

use crate::adjust::inject_image_suffix;
use crate::error::Error;
use crate::generation::Generation;
use crate::model::{EnvVar, ParamSpec, ParamValue, Task, VolumeMount};
use crate::wrapper::{WrapperInput, wrapper_script};

/// Name of the step the Go tool runs remotely.
pub const DEFAULT_REMOTE_STEP: &str = "build";

/// Which steps run on the remote host.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StepSelection {
    /// The step named `build`, if there is one (the Go tool's only behaviour; a Task
    /// without it still gets the PLATFORM param, ssh volume and env).
    #[default]
    Build,
    /// These steps, each of which must exist.
    Named(Vec<String>),
}

/// How to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Which upstream generator's output to reproduce.
    pub generation: Generation,
    /// Which steps run remotely.
    pub steps: StepSelection,
    /// Name of the remote Task; `None` replaces `buildah` with `buildah-remote` in the
    /// input's name as the Go tool does.
    pub task_name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            generation: Generation::Newest,
            steps: StepSelection::Build,
            task_name: None,
        }
    }
}

/// Secret the controller creates for each TaskRun; mounted at `/ssh` in remote steps.
pub const SSH_SECRET_NAME: &str = "multi-platform-ssh-$(context.taskRun.name)";

/// Turns a Task into its remote variant.
pub fn convert(task: &Task, options: &Options) -> Result<Task, Error> {
    let generation = options.generation;
    let template = task
        .spec
        .step_template
        .clone()
        .ok_or(Error::MissingStepTemplate)?;
    let remote_names: Vec<&str> = match &options.steps {
        StepSelection::Build => vec![DEFAULT_REMOTE_STEP],
        StepSelection::Named(names) => {
            for name in names {
                if !task.spec.steps.iter().any(|s| &s.name == name) {
                    let available: Vec<&str> =
                        task.spec.steps.iter().map(|s| s.name.as_str()).collect();
                    return Err(Error::UnknownStep {
                        name: name.clone(),
                        available: available.join(", "),
                    });
                }
            }
            names.iter().map(String::as_str).collect()
        }
    };

    let mut out = task.clone();
    // (step index, original image) of every remote step, in step order.
    let mut builder_images: Vec<(usize, String)> = Vec::new();
    for (index, step) in task.spec.steps.iter().enumerate() {
        if remote_names.contains(&step.name.as_str()) {
            let script = wrapper_script(
                generation,
                &WrapperInput {
                    step,
                    template: &template,
                    workspaces: &task.spec.workspaces,
                    volumes: &task.spec.volumes,
                },
            )?;
            builder_images.push((index, step.image.clone()));
            let remote = &mut out.spec.steps[index];
            remote.script = script;
            if let Some(runner) = generation.runner_image() {
                remote.image = runner.to_owned();
            }
            remote.volume_mounts.push(VolumeMount {
                name: "ssh".to_owned(),
                read_only: true,
                mount_path: "/ssh".to_owned(),
                ..VolumeMount::default()
            });
        } else if !step.script.is_empty() && generation.appends_platform() {
            out.spec.steps[index].script = inject_image_suffix(&step.script);
        }
    }

    out.metadata.name = match &options.task_name {
        Some(name) => Some(name.clone()),
        None => out
            .metadata
            .name
            .as_ref()
            .map(|n| n.replace("buildah", "buildah-remote")),
    };
    out.spec.params.push(ParamSpec {
        name: "PLATFORM".to_owned(),
        type_: "string".to_owned(),
        description: "The platform to build on".to_owned(),
        ..ParamSpec::default()
    });
    out.spec.volumes.push(Volume {
        name: "ssh".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(SSH_SECRET_NAME.to_owned()),
            optional: Some(false),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });

    // The Go tool keeps the image of the last remote step.
    let builder_image = builder_images
        .last()
        .map(|(_, image)| image.clone())
        .unwrap_or_default();
    let env = &mut out
        .spec
        .step_template
        .get_or_insert_with(Default::default)
        .env;
    env.push(EnvVar::new("BUILDER_IMAGE", &builder_image));
    if generation.appends_platform() {
        env.push(EnvVar::new("PLATFORM", "$(params.PLATFORM)"));
        out.spec.params.push(ParamSpec {
            name: "IMAGE_APPEND_PLATFORM".to_owned(),
            type_: "string".to_owned(),
            description: "Whether to append a sanitized platform architecture on the IMAGE tag"
                .to_owned(),
            default: Some(ParamValue::String("false".to_owned())),
            ..ParamSpec::default()
        });
        if let Some(template) = out.spec.step_template.as_mut() {
            template.env.push(EnvVar::new(
                "IMAGE_APPEND_PLATFORM",
                "$(params.IMAGE_APPEND_PLATFORM)",
            ));
        }
    }
    // Several remote steps with different images: each runs its own image (the step's
    // env overrides the stepTemplate's). Added after the wrappers, so not forwarded.
    for (index, image) in &builder_images {
        if *image != builder_image {
            out.spec.steps[*index]
                .env
                .push(EnvVar::new("BUILDER_IMAGE", image));
        }
    }
    Ok(out)
}
