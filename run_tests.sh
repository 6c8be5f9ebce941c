#!/usr/bin/env bash
# Sets up .venv (first run only) and runs the test suite in TEST_WORKERS processes (2; 0 runs
# it in this one). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh
exec python -m pytest -n "${TEST_WORKERS:-2}" --dist worksteal "$@"
