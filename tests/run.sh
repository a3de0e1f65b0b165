#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# unit, integration and notebook tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap
# Each run gets its own mlpack home (image store, containers, caches), so a
# run never sees state from an earlier one; base images and wheels are cached
# inside it and shared by every test of the run.
if [ -z "${MLPACK_TEST_HOME:-}" ]; then
  MLPACK_TEST_HOME=$(mktemp -d /var/tmp/mlpack-test.XXXXXX)
  # A run's home holds a base image, builds and caches (a few GB): drop it
  # afterwards, never crossing into anything still mounted there.
  trap 'rm -rf --one-file-system "$MLPACK_TEST_HOME" 2>/dev/null || true' EXIT
fi
export MLPACK_TEST_HOME
set +e
python -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
