#!/bin/sh
# reap.sh - find, report and kill test fixture processes that outlived their test run.
#
# Usage: sh tests/harness/reap.sh        (make check runs it after pytest)
#
# Every private Postfix instance of the harness lives in /tmp/relayshim-test-*
# and its processes carry MAIL_CONFIG=<that dir>/conf in their environment.
# The instance directory holds owner.pid, the process that started it (a
# pytest run, or relay_ctl.py for make demo). An instance whose owner is
# still alive belongs to a run in progress (several people test on one
# machine at once) and is left alone; one whose owner is gone is a leftover:
# it is listed, killed, and its directory removed. The Python capture and
# fault servers are threads of the pytest process and die with it.
#
# Exit status: 0 when nothing was left over, 1 when something was (and has
# now been killed).
set -u

prefix=/tmp/relayshim-test-
found=0
dirs=""

for envfile in /proc/[0-9]*/environ; do
	pid=${envfile#/proc/}
	pid=${pid%/environ}
	conf=$({ tr '\0' '\n' <"$envfile"; } 2>/dev/null | sed -n "s|^MAIL_CONFIG=\(${prefix}[^/]*\)/conf\$|\1|p")
	[ -n "$conf" ] || continue
	owner=$(cat "$conf/owner.pid" 2>/dev/null || true)
	if [ -n "$owner" ] && [ "$owner" != "$pid" ] && kill -0 "$owner" 2>/dev/null; then
		continue
	fi
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
	[ "$state" = "Z" ] && continue
	cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
	echo "reap: left running: pid $pid ($cmd) of $conf" >&2
	kill -9 "$pid" 2>/dev/null
	found=1
	case " $dirs " in *" $conf "*) ;; *) dirs="$dirs $conf" ;; esac
done

for d in $dirs; do
	case $d in "$prefix"*) rm -rf "$d" ;; esac
done

# Directories (PKI, Postfix instance) whose owner died without cleaning up:
# no process runs there any more, so remove them quietly.
for d in "$prefix"*; do
	[ -f "$d/owner.pid" ] || continue
	owner=$(cat "$d/owner.pid" 2>/dev/null || true)
	[ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
	rm -rf "$d"
done

if [ "$found" -ne 0 ]; then
	echo "reap: FAIL: fixture processes outlived the tests (killed now)" >&2
	exit 1
fi
echo "reap: no fixture process left running"
exit 0
