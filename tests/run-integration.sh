#!/bin/sh
# run-integration.sh - make integration: the pytest suite against $BUILD, then the
# check that no fixture process outlived it.
#
# Usage: BUILD=build sh tests/run-integration.sh [PYTEST-ARGS...]
#	(default arguments: tests/integration). Prints pytest's own output and one
#	"integration (BUILD): N passed, M failed" line; a fixture left running
#	counts as one failure. INTEGRATION_COUNTS=FILE also writes "N M" there
#	(tests/run-all.sh adds it to the unit tests' counts).
set -u
BUILD=${BUILD:-build}
export BUILD
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$top"
[ $# -gt 0 ] || set -- tests/integration

/usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
# pytest: "== 40 passed, 1 failed, 2 skipped in 12.3s =="
summary=$(grep -E '(passed|failed|error)' "$log" | tail -n 1)
p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
failed=$((${f:-0} + ${e:-0}))
# No summary at all (pytest missing, a collection crash): one failure.
[ -n "$p$f$e" ] || failed=1
passed=${p:-0}

# Nothing of the fixtures may outlive the run.
sh "$top/tests/harness/reap.sh" || failed=$((failed + 1))

echo "integration ($BUILD): $passed passed, $failed failed"
[ -n "${INTEGRATION_COUNTS:-}" ] && echo "$passed $failed" >"$INTEGRATION_COUNTS"
[ "$failed" -eq 0 ]
