# shellcheck shell=bash
# Set-up shared by hack/demo.sh and hack/test.sh (sourced, not run): checks for cargo
# and installs the Debian packages that are missing, through sudo when not root.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# require_cargo NAME: stops with what to do when there is no Rust toolchain.
require_cargo() {
  if ! command -v cargo >/dev/null; then
    echo "$1: cargo not found; install Rust 1.95 or later (https://rustup.rs), then run it again" >&2
    exit 1
  fi
}

# Files the build and the sshd build hosts need, as FILE=PACKAGE (the C compiler links
# the Rust build; the hosts are sshd in their own namespaces, managing real users).
# shellcheck disable=SC2034 # used by the scripts that source this file
BASE_PACKAGES=(
  /usr/bin/cc=gcc
  /usr/include/stdio.h=libc6-dev
  /usr/sbin/sshd=openssh-server
  /usr/bin/ssh=openssh-client
  /usr/bin/ssh-keygen=openssh-client
  /usr/sbin/useradd=passwd
  /usr/bin/sudo=sudo
  /usr/sbin/visudo=sudo
  /usr/bin/pkill=procps
  /usr/bin/unshare=util-linux
  /usr/bin/nsenter=util-linux
  /usr/bin/setpriv=util-linux
)

# install_missing FILE=PACKAGE...: installs, with apt-get, the package of every FILE
# that does not exist (once each); does nothing when all are there.
install_missing() {
  local pair missing=()
  for pair in "$@"; do
    [ -e "${pair%%=*}" ] || missing+=("${pair#*=}")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "==> installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
