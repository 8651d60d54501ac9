#!/usr/bin/env bash
# Build the CPU image and the CPU build of the train image with podman, from the repository root:
#   docker/podman/build.sh CPU_TAG TRAIN_CPU_TAG      (`make images` passes faco.kfp_docker's tags)
# The first build takes ~20 min on 2 cores; later ones reuse podman's layer cache, so a change under
# src/ rebuilds only the wheel layers (seconds). Never run it while containers run: a build blocks
# podman's API for minutes.
set -euo pipefail
cpu=${1:?usage: build.sh CPU_TAG TRAIN_CPU_TAG}
train=${2:?usage: build.sh CPU_TAG TRAIN_CPU_TAG}
cd "$(dirname "$0")/../.."
eval "$(docker/podman/setup.sh)"
read -r -a opts <<<"$FACO_BUILD_OPTS"
for spec in "Dockerfile.cpu=$cpu" "Dockerfile.train-cpu=$train"; do
  file=${spec%%=*} tag=${spec#*=}
  start=$SECONDS
  echo "podman build -f docker/$file -t $tag" >&2
  nice -n 10 podman build "${opts[@]}" --layers -f "docker/$file" -t "$tag" . >&2
  echo "built $tag in $((SECONDS - start)) s" >&2
done
