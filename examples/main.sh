#!/usr/bin/env bash
# The main job, end to end on a fresh machine (as root): train a small
# scikit-learn model, capture it, render its Dockerfile, build the image
# (bootstrapping the offline base image from Debian packages the first time),
# run it with CPU, memory and pids limits, query it, print the prediction and
# the container parity, then stop and remove the container.
# Extra arguments go to examples/main.py (--cpus, --memory, --pids-limit, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap
exec python examples/main.py "$@"
