#!/bin/sh
# run.sh - make fuzz RUN=N: run each fuzz target for N seconds, two at a time.
# Usage: sh fuzz/run.sh SECONDS BINARY...
# The seed corpus fuzz/corpus/<target> is read; new inputs go to
# build-fuzz/corpus/<target>, findings (crash-*, leak-*, timeout-*) to
# build-fuzz/findings/<target>/, the log to build-fuzz/logs/<target>.log.
# Prints the last "stat::" figures (executions, coverage) per target and
# exits non-zero when any target found something.
set -u
secs=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FUZZ_JOBS:-2}
mkdir -p "$top/build-fuzz/logs"

run_one() {
	bin=$1
	t=$(basename "$bin")
	mkdir -p "$top/build-fuzz/corpus/$t" "$top/build-fuzz/findings/$t"
	"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -dict="$top/fuzz/smtp.dict" \
		-artifact_prefix="$top/build-fuzz/findings/$t/" \
		"$top/build-fuzz/corpus/$t" "$top/fuzz/corpus/$t" \
		>"$top/build-fuzz/logs/$t.log" 2>&1
}

pids=""
n=0
for bin in "$@"; do
	run_one "$bin" &
	pids="$pids $!"
	n=$((n + 1))
	if [ "$n" -ge "$jobs" ]; then
		wait
		n=0
	fi
done
wait

status=0
for bin in "$@"; do
	t=$(basename "$bin")
	execs=$(grep -E '^stat::number_of_executed_units' "$top/build-fuzz/logs/$t.log" | awk '{print $2}')
	cov=$(grep -E '^#[0-9]+' "$top/build-fuzz/logs/$t.log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
	found=$(ls "$top/build-fuzz/findings/$t" 2>/dev/null | wc -l)
	echo "$t: ${execs:-?} executions, ${cov:-no coverage line}, $found findings"
	[ "$found" -eq 0 ] || status=1
done
exit $status
