#!/bin/sh
# Builder-stage steps shared by the CPU and GPU Dockerfiles (POSIX sh, run on the base image).
#   install.sh deps LOCK WANTED   venv /opt/tritium + the locked packages WANTED needs, hash-checked
#   install.sh app FOLDERS        wheels of the kernel and plugins (FOLDERS: a file of source folders),
#                                 installed without dependencies; pip check; pip and setuptools removed
set -eu
PYTHON=${PYTHON:-python3}
VENV=/opt/tritium
HERE=$(cd "$(dirname "$0")" && pwd)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

case "$1" in
deps)
    lock=$2 wanted=$3 work=$(mktemp -d)
    "$PYTHON" -m venv "$VENV"
    "$PYTHON" "$HERE/select_locked.py" constraints "$lock" > "$work/constraints.txt"
    # Resolve against the lock's pins (no download: --dry-run), then install exactly those entries, hashed.
    "$VENV/bin/pip" install -q --dry-run --ignore-installed --only-binary=:all: --report "$work/report.json" \
        -c "$work/constraints.txt" -r "$wanted"
    "$PYTHON" "$HERE/select_locked.py" subset "$lock" "$work/report.json" > "$work/subset.txt"
    "$VENV/bin/pip" install -q --require-hashes --no-deps --only-binary=:all: -r "$work/subset.txt"
    echo "installed $(grep -c '==' "$work/subset.txt") locked packages"
    rm -rf "$work"
    ;;
app)
    folders=$2 wheels=$(mktemp -d) build=$(mktemp -d)
    "$PYTHON" -m venv "$build"
    "$build/bin/pip" install -q --require-hashes --no-deps --only-binary=:all: -r "$HERE/requirements/build.txt"
    # shellcheck disable=SC2046 # one folder per line, no spaces
    "$build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$wheels" $(cat "$folders")
    "$VENV/bin/pip" install -q --no-deps --no-index "$wheels"/*.whl
    "$VENV/bin/pip" check
    "$VENV/bin/pip" uninstall -q -y pip setuptools 2>/dev/null || "$VENV/bin/pip" uninstall -q -y pip
    rm -rf "$wheels" "$build"
    ;;
*)
    echo "usage: install.sh deps LOCK WANTED | app FOLDERS" >&2
    exit 2
    ;;
esac
