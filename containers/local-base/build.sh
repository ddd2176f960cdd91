#!/usr/bin/env bash
# Builds a registry-free stand-in for the official pytorch/pytorch 2.6.0 base image, for tests and CI
# on machines that reach PyPI and Debian but no container registry:
#   Debian bookworm (debootstrap) + a Python venv at /opt/conda, as in the official image,
#   holding the same torch / torchvision / numpy wheels as requirements.lock.
# Recipes then build FROM it with --build-arg BASE_IMAGE=<tag>. It is rebuilt only when this
# script or the pins it takes from requirements.lock change (their hash is the image's label).
#
#   containers/local-base/build.sh [TAG]      (needs root, debootstrap, uv and a running dockerd)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-harness-local/pytorch:2.6.0}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pin() { grep -E "^$1==" requirements.lock; }
PACKAGES=(torch torchvision numpy pillow)
INPUTS_HASH=$( (cat containers/local-base/build.sh; for p in "${PACKAGES[@]}"; do pin "$p"; done) | sha256sum | cut -c1-16)

if [ "$(docker image inspect -f '{{index .Config.Labels "org.harness.base-inputs"}}' "$TAG" 2>/dev/null)" = "$INPUTS_HASH" ]; then
  echo "local base $TAG is up to date ($INPUTS_HASH)"
  exit 0
fi

ROOTFS=$(mktemp -d -t harness-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
start=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" >/dev/null
chroot "$ROOTFS" python3 -m venv /opt/conda
# The host's CA bundle: PyPI is reached through a TLS proxy that only the host trusts.
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
# The venv's interpreter links to /usr/bin/python3, the same Debian 3.11 on the host as in the rootfs,
# so uv installs into the rootfs venv from its own cache; byte-compiled, as the official image is (a
# container's root file system is read-only: without them every import compiles from source).
UV_NATIVE_TLS=1 uv pip install -q --link-mode copy --compile-bytecode --python "$ROOTFS/opt/conda/bin/python" \
  $(for p in "${PACKAGES[@]}"; do pin "$p"; done)
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change "LABEL org.harness.base-inputs=$INPUTS_HASH" \
  - "$TAG" >/dev/null
echo "built local base $TAG in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
