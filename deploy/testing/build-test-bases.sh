#!/usr/bin/env bash
# Test-only base images for `make image-test` (`debian-only`: just the debootstrapped base), built without any image registry (none is reachable on the
# build machines): a Debian bookworm root made with debootstrap, the same trusting this machine's proxy CA
# for pip, a Python 3.11 base on that, and a Prometheus image from Debian's package. Idempotent: an image that
# exists is kept. Never used by the shipped Dockerfiles' defaults; they take the base as BASE_IMAGE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DEBIAN_BASE=${DEBIAN_BASE:-localhost/tritium-test/debian:bookworm}
CA_BASE=${CA_BASE:-localhost/tritium-test/debian-ca:bookworm}
PYTHON_BASE=${PYTHON_BASE:-localhost/tritium-test/python:3.11}
PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-localhost/tritium-test/prometheus:bookworm}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

exists() { podman image exists "$1"; }

if ! exists "$DEBIAN_BASE"; then
    # The mirror apt itself uses, so the base gets packages from wherever this machine can reach.
    mirror=$(apt-cache policy 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /var/tmp/tritium-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$DEBIAN_BASE" >/dev/null
    rm -rf "$rootfs"; trap - EXIT
fi
[ "${1:-}" = debian-only ] && exit 0

if ! exists "$PYTHON_BASE" || ! exists "$CA_BASE"; then
    ctx=$(mktemp -d); cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
    for target in build-ca python; do
        tag=$CA_BASE; [ "$target" = python ] && tag=$PYTHON_BASE
        podman build -q --target "$target" -f "$here/Containerfile.python-base" \
            --build-arg BASE_IMAGE="$DEBIAN_BASE" -t "$tag" "$ctx" >/dev/null
    done
    rm -rf "$ctx"
fi

if ! exists "$PROMETHEUS_IMAGE"; then
    podman build -q -f "$here/Containerfile.prometheus" --build-arg BASE_IMAGE="$DEBIAN_BASE" -t "$PROMETHEUS_IMAGE" "$here" >/dev/null
fi
echo "test bases ready: $DEBIAN_BASE $CA_BASE $PYTHON_BASE $PROMETHEUS_IMAGE"
