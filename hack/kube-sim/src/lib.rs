//! kube-sim: an in-memory Kubernetes API server for tests and demos.
