#!/bin/sh
# run.sh - make fuzz RUN=N: run each fuzz target for N seconds, FUZZ_JOBS
# (default 2) at a time.
# Usage: sh fuzz/run.sh SECONDS BINARY...
# The seed corpus fuzz/corpus/<target> is read; new inputs go to
# build-fuzz/corpus/<target>, findings (crash-*, leak-*, timeout-*, oom-*) to
# build-fuzz/findings/<target>/, the log to build-fuzz/logs/<target>.log.
# Prints the final figures per target (executions, coverage: cov = edges,
# ft = features) and exits non-zero when any target found something.
# A finding: reproduce with build-fuzz/fuzz/<target> FILE, fix, and copy the
# file to fuzz/regressions/<target>/ (replayed by make check).
set -u
secs=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$top/build-fuzz/logs"

if [ "${FUZZ_ONE:-}" = "" ]; then
	# Job slots: a target that stops early (a finding) frees its slot at once.
	printf '%s\n' "$@" | FUZZ_ONE=1 xargs -P "${FUZZ_JOBS:-2}" -I{} sh "$0" "$secs" {}
else
	bin=$1
	t=$(basename "$bin")
	mkdir -p "$top/build-fuzz/corpus/$t" "$top/build-fuzz/findings/$t"
	exec "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -dict="$top/fuzz/smtp.dict" \
		-artifact_prefix="$top/build-fuzz/findings/$t/" \
		"$top/build-fuzz/corpus/$t" "$top/fuzz/corpus/$t" \
		>"$top/build-fuzz/logs/$t.log" 2>&1
fi
[ "${FUZZ_ONE:-}" = "" ] || exit 0

status=0
for bin in "$@"; do
	t=$(basename "$bin")
	log="$top/build-fuzz/logs/$t.log"
	execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
	found=$(ls "$top/build-fuzz/findings/$t" 2>/dev/null | wc -l)
	echo "$t: ${execs:-?} executions, ${cov:-no coverage line}, $found findings"
	[ "$found" -eq 0 ] || status=1
done
exit $status
