//! YAML output in the Go tool's format (go-yaml v2 via `sigs.k8s.io/yaml`).

mod emit;
mod resolve;

pub use emit::{go_key_order, to_yaml};
pub use resolve::plain_reads_as_string;
