#!/usr/bin/env bash
# The README's first command: installs the system packages the demo needs (only those
# missing, with apt-get, through sudo when not root), then runs the demo — kube-sim, one
# real sshd build host and the controller on this machine, one TaskRun from submission
# to cleanup, every step printed. Arguments go to the demo (`--keep`, `--help`).
#
# The build host is sshd in its own namespaces, so the demo runs as root: cargo builds
# as the calling user and the demo re-runs itself under sudo when it is not root.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cargo >/dev/null; then
  echo "demo: cargo not found; install Rust 1.95 or later (https://rustup.rs), then run $0 again" >&2
  exit 1
fi

# file → Debian package that provides it (the C compiler links the Rust build)
declare -A wanted=(
  [/usr/bin/cc]=gcc
  [/usr/include/stdio.h]=libc6-dev
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/sbin/useradd]=passwd
  [/usr/bin/sudo]=sudo
  [/usr/bin/pkill]=procps
  [/usr/bin/unshare]=util-linux
  [/usr/bin/nsenter]=util-linux
  [/usr/bin/setpriv]=util-linux
)
missing=()
for path in "${!wanted[@]}"; do
  [ -e "$path" ] || missing+=("${wanted[$path]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "==> installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> building and starting the demo (the first build takes a few minutes)"
exec cargo run --release -p testbed --bin demo -- "$@"
