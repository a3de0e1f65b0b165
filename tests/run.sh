#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# unit, integration and notebook tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap
# Each run gets its own mlpack home (image store, containers, caches), so a
# run never sees state from an earlier one; base images and wheels are cached
# inside it and shared by every test of the run.
export MLPACK_TEST_HOME="${MLPACK_TEST_HOME:-$(mktemp -d /var/tmp/mlpack-test.XXXXXX)}"
set +e
python -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
