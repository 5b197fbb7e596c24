#!/usr/bin/env bash
# Makes a Docker engine answer on this machine and prepares the offline base image.
#
#   1. installs Debian's docker.io, debootstrap and docker-registry when missing (needs root);
#   2. starts dockerd detached (data under $MLOPS_DOCKER_ROOT) unless an engine already answers;
#   3. builds the base image $MLOPS_BASE_IMAGE from a debootstrapped Debian bookworm with python3
#      (no registry can be pulled from here; see README "Docker").
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
DOCKER_ROOT=${MLOPS_DOCKER_ROOT:-/var/lib/mlops-docker}
BASE_IMAGE=${MLOPS_BASE_IMAGE:-mlops-base:bookworm}
LOG_DIR=${MLOPS_DOCKER_LOGS:-/tmp/mlops-docker}
mkdir -p "$LOG_DIR"

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
    echo "docker-engine: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$LOG_DIR/apt.log" 2>&1
fi

if ! docker info >/dev/null 2>&1; then
    echo "docker-engine: starting dockerd (data root $DOCKER_ROOT)"
    mkdir -p "$DOCKER_ROOT"
    setsid dockerd --data-root "$DOCKER_ROOT" >"$LOG_DIR/dockerd.log" 2>&1 < /dev/null &
    echo $! >"$LOG_DIR/dockerd.pid"
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "docker-engine: dockerd did not answer; see $LOG_DIR/dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "docker-engine: building base image $BASE_IMAGE with debootstrap (about a minute)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
        >"$LOG_DIR/debootstrap.log" 2>&1
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
fi
# The offline image answers for the Dockerfile's default base image (a public image CodeBuild pulls), so
# that the Dockerfile and the buildspec build here exactly as they do on AWS.
PUBLIC_BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' "$(dirname "$0")/../container/Dockerfile")
if [ -n "$PUBLIC_BASE" ] && [ "$PUBLIC_BASE" != "$BASE_IMAGE" ]; then
    docker tag "$BASE_IMAGE" "$PUBLIC_BASE"
fi
echo "docker-engine: ready (base image $BASE_IMAGE${PUBLIC_BASE:+, also as $PUBLIC_BASE})"
