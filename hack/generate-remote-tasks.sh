#!/usr/bin/env bash
# Regenerates the remote variants of the Tasks in tasks/ with taskgen.
#   hack/generate-remote-tasks.sh           rewrite the generated files
#   hack/generate-remote-tasks.sh --check   exit 1 with a diff if any is out of date
# TASKGEN may name a taskgen binary; by default it is built and run with cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

check=()
if [ "${1:-}" = "--check" ]; then
  check=(--check)
fi
if [ -n "${TASKGEN:-}" ]; then
  taskgen=("$TASKGEN")
else
  taskgen=(cargo run --quiet -p taskgen --)
fi

status=0
gen() {
  "${taskgen[@]}" "${check[@]}" "$@" || status=1
}

gen --buildah-task tasks/buildah/buildah.yaml \
    --remote-task tasks/buildah-remote/buildah-remote.yaml
gen --buildah-task tasks/run-script/run-script.yaml \
    --remote-task tasks/run-script-remote/run-script-remote.yaml \
    --step run --task-name run-script-remote

if [ "$status" -ne 0 ]; then
  echo "tasks/ is not up to date: run hack/generate-remote-tasks.sh" >&2
fi
exit "$status"
