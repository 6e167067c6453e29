//! Time in the core: instants are jiff [`Timestamp`]s (the type of k8s-openapi's `Time`),
//! spans [`SignedDuration`]s; the shell passes `now` into every decision.

pub use jiff::{SignedDuration, Timestamp};
