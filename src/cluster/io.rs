//! The Kubernetes writes the controller makes: our marks on TaskRuns and the
//! per-TaskRun Secrets. Thin on purpose: what to write comes from [`super::patches`]
//! and [`super::secrets`]; this module only sends it and classifies the answer.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::cluster::TaskRunObject;
use mpc_core::allocation::TaskRunKey;
use mpc_core::cluster::patches;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "multi-platform-controller";

/// How often a finalizer patch is retried when the list moved under it.
const FINALIZER_ATTEMPTS: usize = 5;

/// A Kubernetes write that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The TaskRun no longer exists.
    #[error("TaskRun {0} no longer exists")]
    Gone(TaskRunKey),
    /// The API server refused or failed the request; worth retrying later.
    #[error("Kubernetes API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// Whether an error is the API server's "not found".
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

fn is_conflict(err: &kube::Error) -> bool {
    // A resourceVersion conflict, or a JSON patch `test` that failed (422 Invalid).
    matches!(err, kube::Error::Api(status) if status.is_conflict() || status.is_invalid())
}

/// 409 is also the answer to a refused write (reason `Conflict`): only the reason
/// `AlreadyExists` says the object is there.
fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_already_exists())
}

/// Writes to TaskRuns and Secrets.
#[derive(Clone)]
pub struct ClusterWriter {
    client: Client,
}

impl ClusterWriter {
    /// A writer using `client`.
    pub fn new(client: Client) -> Self {
        ClusterWriter { client }
    }

    fn taskruns(&self, key: &TaskRunKey) -> Api<TaskRunObject> {
        Api::namespaced(self.client.clone(), &key.namespace)
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn gone_or(key: &TaskRunKey, err: kube::Error) -> ClusterError {
        if is_not_found(&err) {
            ClusterError::Gone(key.clone())
        } else {
            ClusterError::Api(err)
        }
    }

    /// Adds our finalizer (no-op when present). The patch tests the list it saw, so a
    /// concurrent writer's finalizer is never lost; on a conflict it re-reads and retries.
    pub async fn add_finalizer(&self, key: &TaskRunKey) -> Result<(), ClusterError> {
        self.edit_finalizers(key, patches::add_finalizer).await
    }

    /// Removes our finalizer (no-op when absent or when the TaskRun is gone).
    pub async fn remove_finalizer(&self, key: &TaskRunKey) -> Result<(), ClusterError> {
        match self.edit_finalizers(key, patches::remove_finalizer).await {
            Err(ClusterError::Gone(_)) => Ok(()),
            other => other,
        }
    }

    async fn edit_finalizers(
        &self,
        key: &TaskRunKey,
        build: fn(Option<&[String]>) -> Option<json_patch::Patch>,
    ) -> Result<(), ClusterError> {
        let api = self.taskruns(key);
        let mut last = None;
        for _ in 0..FINALIZER_ATTEMPTS {
            let current = api
                .get(&key.name)
                .await
                .map_err(|e| Self::gone_or(key, e))?;
            let Some(patch) = build(current.metadata.finalizers.as_deref()) else {
                return Ok(());
            };
            let params = PatchParams::default();
            match api
                .patch(&key.name, &params, &Patch::Json::<()>(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if is_conflict(&err) => last = Some(err),
                Err(err) => return Err(Self::gone_or(key, err)),
            }
        }
        Err(last.map_or_else(|| ClusterError::Gone(key.clone()), ClusterError::Api))
    }

    /// Applies a JSON merge patch of our labels/annotations.
    pub async fn patch_marks(&self, key: &TaskRunKey, patch: &Value) -> Result<(), ClusterError> {
        self.taskruns(key)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| Self::gone_or(key, e))
    }

    /// The Secret, if it exists.
    pub async fn get_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Secret>, ClusterError> {
        Ok(self.secrets(namespace).get_opt(name).await?)
    }

    /// Creates the Secret, replacing one of the same name (ours: the name is ours).
    pub async fn put_secret(&self, secret: &Secret) -> Result<(), ClusterError> {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let api = self.secrets(&namespace);
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match api.create(&post, secret).await {
            Ok(_) => Ok(()),
            Err(err) if is_already_exists(&err) => {
                let existing = api.get(&name).await?;
                let mut replacement = secret.clone();
                replacement.metadata.resource_version = existing.resource_version();
                api.replace(&name, &post, &replacement).await?;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Creates the Secret unless one of that name exists already.
    pub async fn create_secret_if_absent(&self, secret: &Secret) -> Result<(), ClusterError> {
        let namespace = secret.namespace().unwrap_or_default();
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match self.secrets(&namespace).create(&post, secret).await {
            Ok(_) => Ok(()),
            Err(err) if is_already_exists(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Deletes the Secret; an absent one is fine.
    pub async fn delete_secret(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        match self
            .secrets(namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": "m",
        }))
        .unwrap();
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn only_already_exists_means_the_object_is_there() {
        assert!(is_already_exists(&api_error(409, "AlreadyExists")));
        // A refused write (stale resourceVersion, storage conflict) is also a 409.
        assert!(!is_already_exists(&api_error(409, "Conflict")));
        assert!(!is_already_exists(&api_error(500, "InternalError")));
        assert!(is_conflict(&api_error(409, "Conflict")));
    }
}
