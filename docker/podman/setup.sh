#!/usr/bin/env bash
# Container tooling for `make images` / `make containers` on a Debian machine with no Docker engine
# and no reachable image registry (CI, dev VMs; root), only the Debian archive and PyPI:
#   1. podman, buildah, runc and debootstrap from the Debian archive,
#   2. a Debian base image (localhost/debian:bookworm) made with debootstrap from that archive,
#   3. a stand-in for the official python:3.11.14-slim-bookworm image the Dockerfiles start FROM:
#      Debian's Python 3.11 with its headers (the official image has them; DeepSpeed's ops compile
#      against them), this machine's CA bundle and pip settings, tagged with the official name so
#      `podman build --pull=never` resolves it.
# Idempotent: seconds once done (~4 min the first time). Nothing it makes may be committed: the
# stand-in carries this machine's CA bundle and pip configuration, copied at run time.
# Prints what to export, and the build options for this machine's local pip indexes:
#   eval "$(docker/podman/setup.sh)"   # CONTAINERS_CONF, FACO_BUILD_OPTS
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${FACO_CONTAINERS_WORK:-${TMPDIR:-/tmp}/faco-containers}
PYTAG=${FACO_PYTHON_BASE:-docker.io/library/python:3.11.14-slim-bookworm}
export CONTAINERS_CONF=$HERE/containers.conf
mkdir -p "$WORK"

# 1. tools
if ! { command -v podman && command -v buildah && command -v runc && command -v debootstrap; } >/dev/null; then
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah runc debootstrap >&2
fi

# The Debian mirror this machine's apt uses, from one-line (sources.list) or deb822 (*.sources) files.
debian_mirror() {
  { grep -rhE '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } \
    | grep -oE 'https?://[^ ]+/debian/?([[:space:]]|$)' | head -1 | tr -d '[:space:]'
}

# 2. the Debian base image
if ! podman image exists localhost/debian:bookworm; then
  mirror=$(debian_mirror)
  rm -rf "$WORK/rootfs"
  echo "debootstrap bookworm from ${mirror:-http://deb.debian.org/debian} (~2 min)" >&2
  nice -n 19 debootstrap --variant=minbase bookworm "$WORK/rootfs" "${mirror:-http://deb.debian.org/debian}" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null
  rm -rf "$WORK/rootfs"
fi

# This machine's pip settings: find-links and local (file://) extra indexes, mounted read-only into
# builds at the same paths (an index's folder with its parent: its pages link to ../../files/).
pip_get() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
links=$(pip_get find-links)
extra=$(pip_get extra-index-url)
mounts=()
for path in $links $extra; do
  path=${path#file://}
  [[ $path == */simple || $path == */simple/ ]] && path=$(dirname "$path")
  if [[ $path == /* && -d $path ]]; then mounts+=("-v" "$path:$path:ro"); fi
done

# 3. the python stand-in, (re)made unless the image there has Python's headers (the official one does)
has_headers() {
  podman image exists "$PYTAG" && podman run --rm --network=none "$PYTAG" python3 -c \
    "import os, sysconfig, sys; sys.exit(not os.path.isfile(sysconfig.get_paths()['include'] + '/Python.h'))" \
    >/dev/null 2>&1
}
if ! has_headers; then
  B="$WORK/pybase"
  rm -rf "$B" && mkdir -p "$B"
  cp /etc/ssl/certs/ca-certificates.crt "$B/host-ca-bundle.crt"     # machine-local: never commit it
  printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\n' >"$B/pip.conf"
  [[ -n $links ]] && printf 'find-links = %s\n' "$links" >>"$B/pip.conf"
  [[ -n $extra ]] && printf 'extra-index-url = %s\n' "$extra" >>"$B/pip.conf"
  cat >"$B/Containerfile" <<'CF'
FROM localhost/debian:bookworm
ENV LANG=C.UTF-8
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates netbase tzdata \
      python3 python3-venv python-is-python3 libpython3.11-dev && rm -rf /var/lib/apt/lists/*
COPY host-ca-bundle.crt /etc/ssl/certs/host-ca-bundle.crt
COPY pip.conf /etc/pip.conf
CMD ["python3"]
CF
  echo "building the stand-in $PYTAG (~1 min)" >&2
  nice -n 19 podman build --pull=never --format docker -t "$PYTAG" "$B" >"$WORK/pybase.log" 2>&1 \
    || { tail -20 "$WORK/pybase.log" >&2; exit 1; }
fi

echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
echo "export FACO_BUILD_OPTS='--pull=never --format docker ${mounts[*]}'"
