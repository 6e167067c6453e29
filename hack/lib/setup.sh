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

# What the build users of the test hosts need for rootless podman, and the tiny
# image the podman tests import (Debian's static busybox; no registry is reachable).
# shellcheck disable=SC2034 # used by the scripts that source this file
PODMAN_PACKAGES=(
  /usr/bin/podman=podman
  /usr/bin/newuidmap=uidmap
  /usr/bin/newgidmap=uidmap
  /usr/bin/fuse-overlayfs=fuse-overlayfs
  /usr/bin/slirp4netns=slirp4netns
  /bin/busybox=busybox-static
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
  apt_install "${missing[@]}"
}

# apt_install PACKAGE...: installs the packages with apt-get, without questions.
apt_install() {
  echo "==> installing system packages: $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# moto's server for the EC2 tests (hack/ec2-testbed): a virtualenv holding exactly
# hack/ec2-testbed/moto-requirements.txt. The testbed looks in the same place
# (MPC_MOTO_VENV, default /opt/mpc-moto-venv) and checks the copy of the requirements
# that a finished install leaves there.
MOTO_VENV=${MPC_MOTO_VENV:-/opt/mpc-moto-venv}
MOTO_PYTHON=${MPC_MOTO_PYTHON:-/usr/bin/python3}
MOTO_REQUIREMENTS=hack/ec2-testbed/moto-requirements.txt

# install_moto: (re)creates the virtualenv when it is missing or was installed from
# other requirements; does nothing otherwise. Needs PyPI (and apt for python3-venv).
install_moto() {
  local stamp="$MOTO_VENV/.mpc-requirements"
  if cmp -s "$MOTO_REQUIREMENTS" "$stamp"; then
    return 0
  fi
  if [ "$MOTO_PYTHON" = /usr/bin/python3 ]; then
    install_missing /usr/bin/python3=python3
    # Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
    if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
      apt_install python3-venv
    fi
  fi
  echo "==> installing moto into $MOTO_VENV (hack/ec2-testbed/moto-requirements.txt)"
  as_root rm -rf "$MOTO_VENV"
  as_root "$MOTO_PYTHON" -m venv "$MOTO_VENV"
  as_root "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
    --no-input -r "$MOTO_REQUIREMENTS"
  # Written last: an interrupted install has no stamp and is redone next time.
  as_root cp "$MOTO_REQUIREMENTS" "$stamp"
}
