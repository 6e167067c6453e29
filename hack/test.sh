#!/usr/bin/env bash
# The README's test command: installs the system packages the tests use, then runs
# every test of the workspace. Safe to run again; it installs only what is missing.
#
# The SSH tests start real sshd hosts in their own namespaces and create real users,
# so test binaries run as root: directly when we are root, otherwise through sudo
# (cargo still builds as the calling user).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# command → Debian package that provides it
declare -A wanted=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/sbin/visudo]=sudo
  [/usr/bin/shellcheck]=shellcheck
  [/usr/bin/rsync]=rsync
  [/usr/bin/pkill]=procps
  [/usr/bin/unshare]=util-linux
  [/usr/bin/kubectl]=kubernetes-client
)
missing=()
for path in "${!wanted[@]}"; do
  [ -x "$path" ] || missing+=("${wanted[$path]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "==> installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$(id -u)" -ne 0 ]; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi

echo "==> cargo test --workspace"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
