#!/bin/sh
# run-all.sh - make check: Check unit tests, then the pytest integration suite.
# Prints each runner's own summary, then one overall "N passed, M failed" line.
# Usage: BUILD=build sh tests/run-all.sh UNIT_BINARIES...
set -u
BUILD=${BUILD:-build}
export BUILD
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0
failed=0

echo "== unit tests (Check)"
for t in "$@"; do
	out=$(CK_FORK=yes "$t" 2>&1)
	echo "$out"
	# Check: "100%: Checks: 12, Failures: 0, Errors: 0"
	line=$(echo "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$t: no Check summary (crashed?)"
		failed=$((failed + 1))
		continue
	fi
	n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	passed=$((passed + n - f - e))
	failed=$((failed + f + e))
done

echo "== integration tests (pytest, real Postfix relay and fault server)"
cd "$top"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration 2>&1 | tee "$log"
# pytest: "== 40 passed, 1 failed, 2 skipped in 12.3s =="
summary=$(grep -E '(passed|failed|error)' "$log" | tail -n 1)
p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
[ -n "$p" ] || { p=0; [ -n "$f$e" ] || failed=$((failed + 1)); }
passed=$((passed + p))
failed=$((failed + ${f:-0} + ${e:-0}))

# Nothing of the fixtures may outlive the run.
sh "$top/tests/harness/reap.sh" || failed=$((failed + 1))

echo "check ($BUILD): $passed passed, $failed failed"
# make check adds up its two passes (normal and sanitizer builds) from here.
[ -n "${CHECK_TOTALS:-}" ] && echo "$passed $failed" >>"$CHECK_TOTALS"
[ "$failed" -eq 0 ]
