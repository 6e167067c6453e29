//! The tags the controller puts on its instances (the Go controller's names: existing
//! instances and IAM conditions on tags keep working).

/// Marks every instance the controller launched (value `true`).
pub const MANAGED_TAG: &str = "MultiPlatformManaged";
/// The platform's instance tag: which dynamic platform the instance belongs to.
pub const INSTANCE_TAG: &str = "multi-platform-instance";
/// The console name: [`NAME_PREFIX`] followed by the TaskRun's name.
pub const NAME_TAG: &str = "Name";
/// Prefix of the `Name` tag's value.
pub const NAME_PREFIX: &str = "multi-platform-builder-";
/// The TaskRun the instance is for, as `<namespace>:<name>`.
pub const TASK_RUN_TAG: &str = "taskRunID";
