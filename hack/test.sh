#!/usr/bin/env bash
# The README's test command: installs the system packages the tests use, then runs
# every test of the workspace. Safe to run again; it installs only what is missing.
#
# The SSH tests start real sshd hosts in their own namespaces and create real users,
# so test binaries run as root: directly when we are root, otherwise through sudo
# (cargo still builds as the calling user).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=hack/lib/setup.sh
source hack/lib/setup.sh
require_cargo test
install_missing "${BASE_PACKAGES[@]}" \
  /usr/bin/shellcheck=shellcheck \
  /usr/bin/rsync=rsync \
  /usr/bin/kubectl=kubernetes-client \
  /usr/bin/promtool=prometheus \
  "${PODMAN_PACKAGES[@]}"
install_moto

if [ "$(id -u)" -ne 0 ]; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi

echo "==> cargo test --workspace"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
