//! The upstream Tekton Pipelines CRDs (TaskRun, Task, PipelineRun, Pipeline, CustomRun,
//! StepAction), read at run time from `../shared/fixtures/tekton-crds` beside the
//! repository (unmodified copies, provenance in its README.txt), never copied into it.
//!
//! They carry a webhook conversion (`spec.conversion`) that needs Tekton's webhook; without
//! Tekton it is removed before the CRDs are applied, so each version is served as stored.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use kube::discovery::ApiResource;
use serde_json::Value;

/// Environment variable naming another folder with the same files.
pub const TEKTON_CRDS_ENV: &str = "TEKTON_CRDS";

/// Name of the TaskRun CRD.
pub const TASKRUN_CRD_NAME: &str = "taskruns.tekton.dev";

/// The CRD files of the folder, in the order they are applied.
pub const TEKTON_CRD_FILES: &[&str] = &[
    "300-task.yaml",
    "300-taskrun.yaml",
    "300-pipeline.yaml",
    "300-pipelinerun.yaml",
    "300-customrun.yaml",
    "300-stepaction.yaml",
];

/// Why the Tekton CRDs could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrdError {
    /// The folder or a file is missing or unreadable.
    #[error(
        "the upstream Tekton CRDs are missing: cannot read {path} ({reason}); they are expected \
         unmodified in ../shared/fixtures/tekton-crds beside the repository (with a README.txt), \
         or set {TEKTON_CRDS_ENV} to a folder holding {TEKTON_CRD_FILES:?}"
    )]
    Missing {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A file is not a CRD in YAML.
    #[error("{path} is not a CustomResourceDefinition in YAML: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The folder the CRDs are read from: `$TEKTON_CRDS`, else `../shared/fixtures/tekton-crds`
/// beside the repository this crate belongs to.
pub fn tekton_crds_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(TEKTON_CRDS_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    repo.join("../shared/fixtures/tekton-crds")
}

/// The Tekton CRDs as JSON, `spec.conversion` removed; read and parsed once per process.
pub fn tekton_crds() -> Result<Arc<Vec<Value>>, CrdError> {
    static CACHE: OnceLock<Result<Arc<Vec<Value>>, CrdError>> = OnceLock::new();
    CACHE.get_or_init(|| read_crds(&tekton_crds_dir())).clone()
}

/// Reads the CRDs from `dir` (without caching).
pub fn read_crds(dir: &Path) -> Result<Arc<Vec<Value>>, CrdError> {
    let mut crds = Vec::new();
    for file in TEKTON_CRD_FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| CrdError::Missing {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut crd: Value = serde_saphyr::from_str(&text).map_err(|e| CrdError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err(CrdError::Parse {
                path,
                reason: "its kind is not CustomResourceDefinition".into(),
            });
        }
        without_conversion(&mut crd);
        crds.push(crd);
    }
    Ok(Arc::new(crds))
}

/// Removes the webhook conversion, which needs Tekton's webhook.
pub fn without_conversion(crd: &mut Value) {
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("conversion");
    }
}

/// `ApiResource` of tekton.dev/v1 TaskRuns, for `Api<DynamicObject>`.
pub fn taskrun_api_resource() -> ApiResource {
    ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: "TaskRun".into(),
        plural: "taskruns".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_crds_parse_and_lose_their_webhook_conversion() {
        let crds = tekton_crds().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(crds.len(), TEKTON_CRD_FILES.len());
        let taskrun = crds
            .iter()
            .find(|c| c["metadata"]["name"] == TASKRUN_CRD_NAME)
            .expect("the TaskRun CRD");
        assert!(taskrun["spec"].get("conversion").is_none());
        let rows = crate::resources::rows_from_crd(taskrun).unwrap();
        let v1 = rows.iter().find(|r| r.version == "v1").unwrap();
        assert!(v1.status_subresource);
        assert_eq!(v1.short_names, ["tr", "trs"]);
        assert!(v1.schema.is_some());
    }

    #[test]
    fn a_missing_folder_is_named_in_the_error() {
        let err = read_crds(Path::new("/nonexistent/tekton-crds")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/tekton-crds/300-task.yaml"),
            "{text}"
        );
        assert!(text.contains("../shared/fixtures/tekton-crds"), "{text}");
    }
}
