#!/bin/sh
# run.sh - the shim's C conformance cases, one process per case, under LD_PRELOAD.
#
#   sh tests/shim/run.sh [--no-shim] [--helgrind] [--tsan] [CASE...]
#
# Builds build/shim/librelayshim.so with make, compiles tests/tools/fake_bs.c and
# tests/shim/conformance.c into a private directory, and runs each case in a fresh process
# with a fresh record directory for the fake helper. Prints one line per case
# and "shim conformance: N passed, M failed"; exits non-zero if any failed.
#
#   --no-shim   run without LD_PRELOAD: the intercepting cases must then fail
#               (shows that every case can fail); the exit status is inverted
#               for them, and the summary counts cases that behaved as expected.
#   --helgrind  run the threads case (8 x 50 sessions) under valgrind helgrind.
#   --tsan      build the shim and the cases with ThreadSanitizer and run the
#               threads case with them.
#   --posix-spawn  the spawning cases again with RELAYSHIM_SPAWN=posix: the
#               posix_spawn fallback the shim uses when clone() is refused.
#   --musl      build the shim, the cases and fake_bs with musl-gcc (Alpine's C
#               library) and run every case with them.
#   SHIM_HELPER=path  use another helper instead of fake_bs (e.g. the real
#               build/sendmail/sendmail); cases that read helper records are
#               then skipped.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
cd "$top"
mode=normal
case "${1:-}" in
--no-shim) mode=noshim; shift ;;
--helgrind) mode=helgrind; shift ;;
--tsan) mode=tsan; shift ;;
--posix-spawn) mode=posix; shift ;;
--musl) mode=musl; shift ;;
esac

make --no-print-directory -s "$BUILD/shim/librelayshim.so" >/dev/null || exit 1
# Private copies: several runs (make check by two people) must not clobber each other.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CC=${CC:-cc}
shim="$top/$BUILD/shim/librelayshim.so"
if [ "$mode" = musl ]; then
	CC=musl-gcc
	shim="$tmp/librelayshim-musl.so"
	$CC -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
		-O2 -fPIC -fvisibility=hidden -shared -o "$shim" shim/*.c || exit 1
fi
bin="$tmp/conformance"
$CC -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O1 -g -o "$bin" tests/shim/conformance.c -lpthread || exit 1
if [ "$mode" = tsan ]; then
	shim="$tmp/librelayshim-tsan.so"
	bin="$tmp/conformance-tsan"
	$CC -std=c11 -D_GNU_SOURCE -O1 -g -fPIC -fvisibility=hidden -fsanitize=thread -shared \
		-o "$shim" shim/*.c -ldl || exit 1
	$CC -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -o "$bin" tests/shim/conformance.c -lpthread || exit 1
fi
# fake_bs includes sendmail/shim_accept.c, which the Makefile's rule for tools
# does not know about: build it here so it is never stale.
san=
ldd "$shim" 2>/dev/null | grep -q libasan && san="-fsanitize=address,undefined"
$CC -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O1 -g $san -o "$tmp/fake_bs" tests/tools/fake_bs.c || exit 1
helper=${SHIM_HELPER:-$tmp/fake_bs}
# make SAN=1: an ASan-built shim must come after the ASan runtime in LD_PRELOAD.
preload=$shim
if ldd "$shim" 2>/dev/null | grep -q libasan; then
	preload="$($CC -print-file-name=libasan.so):$shim"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi

if [ $# -gt 0 ]; then
	cases="$*"
elif [ "$mode" = helgrind ] || [ "$mode" = tsan ]; then
	cases="threads"
elif [ "$mode" = posix ]; then
	cases="blocking_v4 nonblock_poll reconnect_idiom helper_inherits_nothing helper_environment
		helper_missing sigchld_handler sigchld_ignored pid1 subreaper threads closed_stdio no_zombie"
else
	cases=$("$bin" list)
fi

passed=0
failed=0
for c in $cases; do
	d="$tmp/case-$c"
	mkdir -p "$d"
	sendmail=$helper
	[ "$c" = helper_missing ] && sendmail=/nonexistent/sendmail
	if [ -n "${SHIM_HELPER:-}" ]; then
		case "$c" in
		helper_inherits_nothing | helper_environment | helper_missing | helper_serves_only_its_peer | helper_gives_up_when_abandoned) echo "skip $c (needs fake_bs records)"; continue ;;
		esac
	fi
	intercept="127.0.0.1:25 [::1]:25"
	case "$c" in
	intercept_list) intercept="LocalHost:2525, [::1]:2587 127.0.0.5:2526 127.0.0.8 bogus 10.0.0.1:25" ;;
	intercept_empty) intercept= ;;
	esac
	# RELAYSHIM_SPARE=0: these cases count and inspect the helper started per
	# connection; the spare helper (shim/spare.c) is tested with the real
	# sendmail in tests/integration/test_shim_spare.py.
	set -- env RELAYSHIM_SENDMAIL="$sendmail" RELAYSHIM_FAKE_BS_DIR="$d" RELAYSHIM_SPARE=0 \
		RELAYSHIM_INTERCEPT="$intercept" MASQUERADED_DOMAINS=example.com CONFORMANCE_SECRET=leak
	[ "$c" = helper_intercepts_nothing ] && set -- "$@" RELAYSHIM_SHIM_ACCEPT=1
	case "$mode" in
	noshim) ;;
	helgrind) set -- "$@" CONFORMANCE_SESSIONS=50 LD_PRELOAD="$preload" \
		valgrind -q --tool=helgrind --error-exitcode=99 ;;
	tsan) set -- "$@" CONFORMANCE_SESSIONS=50 TSAN_OPTIONS=halt_on_error=1:exitcode=99:die_after_fork=0 \
		LD_PRELOAD="$shim" ;;
	posix) set -- "$@" RELAYSHIM_SPAWN=posix LD_PRELOAD="$preload" ;;
	musl) set -- "$@" LD_PRELOAD="$shim" ;;
	*) set -- "$@" LD_PRELOAD="$preload" ;;
	esac
	[ "$c" = pid1 ] && set -- unshare --pid --fork --mount-proc "$@"
	# A private network namespace whose loopback has 127.0.0.1 but no ::1.
	[ "$c" = ipv6_disabled ] && set -- unshare --net sh -c \
		'ip link set lo up && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 && exec "$@"' sh "$@"
	# A hang guard, not a budget: under helgrind the 400 sessions of the threads case
	# needed more than 120 s on a loaded 2-core machine.
	limit=120
	[ "$mode" = helgrind ] && limit=450
	out=$(timeout "$limit" "$@" "$bin" "$c" 2>&1)
	rc=$?
	# With fake_bs the records tell whether any helper ran at all.
	helpers=$(ls "$d" | grep -c '^start\.' || true)
	if [ "$mode" = noshim ]; then
		if [ $rc -ne 0 ]; then
			echo "ok   $c (fails without the shim)"
		else
			echo "--   $c (passes without the shim: it checks that the shim changes nothing)"
		fi
		passed=$((passed + 1))
		continue
	fi
	if [ $rc -eq 0 ]; then
		echo "ok   $c"
		passed=$((passed + 1))
	else
		echo "FAIL $c (exit $rc, $helpers helpers started)"
		failed=$((failed + 1))
	fi
	[ -n "$out" ] && echo "$out" | sed 's/^/     /'
done
echo "shim conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
