#!/usr/bin/env bash
# The README's first command: installs the system packages the demo needs (only those
# missing, with apt-get, through sudo when not root), then runs the demo — kube-sim, one
# real sshd build host and the controller on this machine, one TaskRun from submission
# to cleanup, every step printed. Arguments go to the demo (`--keep`, `--cloud`,
# `--help`). `--cloud` serves the TaskRun from a dynamic AWS platform on a local EC2
# (moto, installed here when missing, with a real sshd per instance).
#
# The build host is sshd in its own namespaces, so the demo runs as root: cargo builds
# as the calling user and the demo re-runs itself under sudo when it is not root.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=hack/lib/setup.sh
source hack/lib/setup.sh
require_cargo demo
install_missing "${BASE_PACKAGES[@]}"
for arg in "$@"; do
  if [ "$arg" = --cloud ]; then
    install_moto
  fi
done

echo "==> building and starting the demo (the first build takes a few minutes)"
exec cargo run --release -p testbed --bin demo -- "$@"
