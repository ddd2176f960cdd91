#!/usr/bin/env bash
# Makes a Docker engine answer and builds the local base image the tests build FROM:
# installs docker.io and debootstrap when missing, starts dockerd when no engine answers, then runs
# build.sh (a no-op when the base is up to date). With CI=true every failure is fatal; elsewhere a
# machine without root or apt only loses the engine tests, which then skip.
set -uo pipefail
cd "$(dirname "$0")/../.."
fail() {
  echo "engine: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "engine: tests that need Docker will be skipped" >&2
  exit 0
}
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v podman >/dev/null || missing+=(podman)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "need ${missing[*]} and root to install them"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || fail "apt-get install ${missing[*]} failed"
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers and only root can start dockerd here"
  mkdir -p .cache
  nohup dockerd >.cache/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start; see .cache/dockerd.log"
  echo "engine: dockerd started (pid $!)"
fi
bash containers/local-base/build.sh || fail "building the local base image failed"
# The same base for podman (the daemonless back end), copied from Docker's store when it changed.
tag=harness-local/pytorch:2.6.0
want=$(docker image inspect -f '{{index .Config.Labels "org.harness.base-inputs"}}' "$tag")
have=$(podman image inspect -f '{{index .Config.Labels "org.harness.base-inputs"}}' "$tag" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  start=$(date +%s)
  docker save "$tag" | podman load -q >/dev/null || fail "copying $tag into podman failed"
  echo "engine: $tag copied into podman in $(( $(date +%s) - start )) s"
fi
