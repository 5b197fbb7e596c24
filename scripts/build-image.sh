#!/usr/bin/env bash
# Builds the BYOC image from container/ with the classic Docker builder, offline.
#
#   scripts/build-image.sh [TAG]          (default TAG: byoc-gptneo:local)
#
#   BASE_IMAGE   the image to build on (default mlops-base:bookworm, which scripts/docker-engine.sh
#                makes offline; on AWS e.g. public.ecr.aws/docker/library/python:3.11-slim-bookworm)
#   PIP          the pip that fills the wheelhouse (default: the project's .venv/bin/pip, else pip3)
#
# 1. The wheelhouse container/wheels/ (git-ignored): `pip download` of container/requirements.txt for
#    CPython 3.11 on manylinux x86_64, binary wheels only. Skipped when a stamp says it was made from the
#    same requirements.txt. torch==2.13.0 comes from wherever this pip finds it (here: /opt/wheels, the
#    CPU build, through pip's configuration).
# 2. `docker build` with --build-arg BASE_IMAGE; Docker's layer cache makes an unchanged rebuild quick.
# Quiet: pip's and docker's output go to logs in $MLOPS_DOCKER_LOGS (default /tmp/mlops-docker), shown
# on failure. Prints image=, id= and size_mb= lines on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-byoc-gptneo:local}
BASE_IMAGE=${BASE_IMAGE:-mlops-base:bookworm}
CONTEXT=container
WHEELS=$CONTEXT/wheels
STAMP=$WHEELS/.requirements.sha256
if [ -z "${PIP:-}" ]; then
    if [ -x .venv/bin/pip ]; then PIP=.venv/bin/pip; else PIP=pip3; fi
fi

LOG_DIR=${MLOPS_DOCKER_LOGS:-/tmp/mlops-docker}
mkdir -p "$LOG_DIR"
# Two builds of this checkout at once (parallel test workers, two terminals) would fill container/wheels
# together: the second waits for the first, then finds the wheelhouse made and the layers cached.
exec 9>"$LOG_DIR/build-$(pwd | sha256sum | cut -c1-16).lock"
flock 9
log() { echo "build-image: $*" >&2; }

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ "$BASE_IMAGE" = "mlops-base:bookworm" ]; then
        log "base image $BASE_IMAGE missing: making it with scripts/docker-engine.sh"
        MLOPS_BASE_IMAGE=$BASE_IMAGE scripts/docker-engine.sh >&2
    else
        log "base image $BASE_IMAGE is not local; docker build will try to pull it"
    fi
fi

wanted=$(sha256sum "$CONTEXT/requirements.txt" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    log "wheelhouse $WHEELS is up to date ($(find "$WHEELS" -name '*.whl' | wc -l) wheels)"
else
    log "filling wheelhouse $WHEELS from $CONTEXT/requirements.txt with $PIP"
    mkdir -p "$WHEELS"
    started=$(date +%s)
    # The image's Python is CPython 3.11 on glibc 2.36 (bookworm): ask for wheels that run there, whatever
    # the host. pip does not widen a manylinux platform to older glibc versions itself: list them.
    platforms=()
    for minor in $(seq 36 -1 5); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
    pip_log=$LOG_DIR/wheelhouse.log
    if ! "$PIP" download --disable-pip-version-check --dest "$WHEELS" --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" \
        -r "$CONTEXT/requirements.txt" >"$pip_log" 2>&1; then
        tail -n 40 "$pip_log" >&2
        log "pip download failed; the whole log is $pip_log"
        exit 1
    fi
    echo "$wanted" >"$STAMP"
    log "wheelhouse ready in $(( $(date +%s) - started )) s ($(du -sh "$WHEELS" | cut -f1))"
fi

build_log=$LOG_DIR/build-image.log
log "building $TAG on $BASE_IMAGE (log: $build_log)"
started=$(date +%s)
if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$TAG" "$CONTEXT" \
    >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    log "docker build failed; the whole log is $build_log"
    exit 1
fi
log "built in $(( $(date +%s) - started )) s"
id=$(docker image inspect --format '{{.Id}}' "$TAG")
size=$(docker image inspect --format '{{.Size}}' "$TAG")
echo "image=$TAG"
echo "id=$id"
echo "size_mb=$(( size / 1024 / 1024 ))"
