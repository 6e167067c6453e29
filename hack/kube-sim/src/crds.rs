//! The project's tekton.dev/v1 TaskRun CRD, shipped as `crds/tekton-taskrun.yaml`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::discovery::ApiResource;

/// The CRD manifest, as in `hack/kube-sim/crds/tekton-taskrun.yaml`.
pub const TASKRUN_CRD_YAML: &str = include_str!("../crds/tekton-taskrun.yaml");

/// Name of the CRD object.
pub const TASKRUN_CRD_NAME: &str = "taskruns.tekton.dev";

/// The CRD as plain JSON.
pub fn taskrun_crd_value() -> serde_json::Value {
    // The manifest is part of the crate and checked by a unit test; it cannot fail here.
    serde_saphyr::from_str(TASKRUN_CRD_YAML).expect("the shipped TaskRun CRD is valid YAML")
}

/// The CRD as the typed k8s-openapi object.
pub fn taskrun_crd() -> CustomResourceDefinition {
    serde_json::from_value(taskrun_crd_value()).expect("the shipped TaskRun CRD is a valid CRD")
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
    fn shipped_crd_parses_and_declares_status() {
        let crd = taskrun_crd();
        assert_eq!(crd.metadata.name.as_deref(), Some(TASKRUN_CRD_NAME));
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["tr".into(), "trs".into()])
        );
        let rows = crate::resources::rows_from_crd(&taskrun_crd_value()).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].status_subresource);
    }
}
