//! Everything that can stop a generation, with messages that say what to change.

use std::path::PathBuf;

/// Why a remote Task could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The input is not valid YAML or does not have the shape of a Task.
    #[error("{origin} is not a valid Tekton Task: {message}")]
    InvalidYaml {
        /// File name or `<input>`.
        origin: String,
        /// The parser's explanation, with line and column.
        message: String,
    },

    /// The document is YAML but not a `tekton.dev/v1` Task.
    #[error(
        "{origin} has apiVersion {api_version:?} and kind {kind:?}; taskgen reads Tasks with \
         apiVersion tekton.dev/v1 and kind Task (convert v1beta1 Tasks first)"
    )]
    NotATask {
        /// File name or `<input>`.
        origin: String,
        /// The `apiVersion` found.
        api_version: String,
        /// The `kind` found.
        kind: String,
    },

    /// `spec.stepTemplate` is absent.
    #[error(
        "spec.stepTemplate is missing: the remote Task adds BUILDER_IMAGE and PLATFORM to \
         stepTemplate.env and syncs stepTemplate.volumeMounts to the build host; add a \
         stepTemplate (at least `stepTemplate: {{}}`) to the input Task"
    )]
    MissingStepTemplate,

    /// The newest generation copies `/shared` back and needs the mount to know where it is.
    #[error(
        "spec.stepTemplate.volumeMounts has no mount named \"shared\", needed by remote step \
         {step:?}: the remote wrapper copies that volume back from the build host so later \
         steps see the build's output; add an emptyDir volume \"shared\" and mount it in \
         stepTemplate.volumeMounts (for example at /shared)"
    )]
    MissingSharedMount {
        /// The remote step.
        step: String,
    },

    /// A line of a remote step's script ends in whitespace.
    #[error(
        "step {step:?}: line {line} of the generated remote script ends with whitespace \
         ({text:?}); remove the trailing whitespace from the step's script (YAML could only \
         keep it in an unreadable double-quoted string)"
    )]
    TrailingWhitespace {
        /// The remote step.
        step: String,
        /// 1-based line number in the step's own script (or in the wrapper when the line
        /// comes from a generated part, such as `cd <workingDir>`).
        line: usize,
        /// The offending line.
        text: String,
    },

    /// The script contains the here-document delimiter the wrapper uses.
    #[error(
        "step {step:?}: line {line} of the script is exactly REMOTESSHEOF, the delimiter of \
         the here-document that ships the script to the build host; it would end the script \
         early — rename that delimiter in the step's script"
    )]
    HeredocDelimiter {
        /// The remote step.
        step: String,
        /// 1-based line number in the step's script.
        line: usize,
    },

    /// A resource quantity Go would fail to decode.
    #[error("{field}: {source}")]
    InvalidQuantity {
        /// Where it is, e.g. `spec.steps[0].computeResources.limits.cpu`.
        field: String,
        /// What is wrong with it.
        source: crate::quantity::QuantityError,
    },

    /// `--step` named a step the Task does not have.
    #[error("--step {name:?}: the Task has no step with that name (its steps: {available})")]
    UnknownStep {
        /// The requested name.
        name: String,
        /// The step names present, comma-separated.
        available: String,
    },

    /// A name or path would be pasted into the wrapper script unquoted and is not safe there.
    #[error("{what} {value:?} cannot be used in the remote script: {rule}")]
    UnsafeShellWord {
        /// Which field (e.g. `workspace name`).
        what: String,
        /// Its value.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },

    /// `--task-version` is not one of the accepted forms.
    #[error(
        "--task-version {0:?} is not recognised: give a catalog version such as 0.1, 0.3 or \
         0.10, or \"mpc\" for the multi-platform-controller's own generator"
    )]
    InvalidTaskVersion(String),
}
