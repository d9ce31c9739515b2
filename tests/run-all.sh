#!/bin/sh
# run-all.sh - make check: Check unit tests, then the pytest integration suite.
# Prints each runner's own summary, then one overall "N passed, M failed" line.
# Usage: BUILD=build sh tests/run-all.sh UNIT_BINARIES...
set -u
BUILD=${BUILD:-build}
export BUILD
top=$(cd "$(dirname "$0")/.." && pwd)
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
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
INTEGRATION_COUNTS="$counts" sh "$top/tests/run-integration.sh"
read -r p f <"$counts" || { p=0; f=1; }
passed=$((passed + p))
failed=$((failed + f))

echo "check ($BUILD): $passed passed, $failed failed"
# make check adds up its two passes (normal and sanitizer builds) from here.
[ -n "${CHECK_TOTALS:-}" ] && echo "$passed $failed" >>"$CHECK_TOTALS"
[ "$failed" -eq 0 ]
