//! The TaskRun as the `kube` client watches it.
//!
//! The fields and every reading of them live in [`mpc_core::taskrun::TaskRun`]; this
//! wrapper only tells `kube` where TaskRuns are served (`tekton.dev/v1`, `taskruns`),
//! which the pure crate cannot do without depending on `kube`.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mpc_core::taskrun::TaskRun;
use serde::{Deserialize, Serialize};

/// A tekton.dev/v1 TaskRun, reduced to the fields the controller reads (lossy: never
/// written back whole, only patched).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct TaskRunObject(pub TaskRun);

impl TaskRunObject {
    /// The same TaskRun without what the reflector cache does not need.
    pub fn strip_for_cache(self) -> Self {
        TaskRunObject(self.0.strip_for_cache())
    }
}

impl Deref for TaskRunObject {
    type Target = TaskRun;

    fn deref(&self) -> &TaskRun {
        &self.0
    }
}

impl DerefMut for TaskRunObject {
    fn deref_mut(&mut self) -> &mut TaskRun {
        &mut self.0
    }
}

impl From<TaskRun> for TaskRunObject {
    fn from(taskrun: TaskRun) -> Self {
        TaskRunObject(taskrun)
    }
}

impl kube::Resource for TaskRunObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("TaskRun")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("tekton.dev")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("taskruns")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}
