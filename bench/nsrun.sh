#!/bin/sh
# nsrun.sh - run a command in private mount and PID namespaces, with
# directories of the peers' unpacked packages overlaid on the system ones.
#
#   sh bench/nsrun.sh [-o TARGET=LOWER[:LOWER...]]... [-b TARGET=DIR]... [-s SPOOL]
#                     -- command [args]
#
# Why: dma and libESMTP's plugins only look in compiled-in paths
# (/etc/dma/dma.conf, /usr/lib/x86_64-linux-gnu/esmtp-plugins-*). Rather
# than installing them system-wide (forbidden: they provide
# /usr/sbin/sendmail), each -o mounts a read-only overlayfs on TARGET
# whose upper layers are the given directories, visible only inside this
# mount namespace. The PID namespace makes the command its init's child:
# when the command ends, every process it left behind (dma's background
# deliverers, relayshim's queue worker) is killed with the namespace, so
# the benchmark leaves nothing running.
#
# -b TARGET=DIR bind-mounts a writable DIR on TARGET (after the overlays,
# so TARGET may be a directory that only exists in an overlay): a spool.
#
# -s SPOOL: after the command, wait up to 10 s for SPOOL to become empty,
# so background deliveries reach the sink before the namespace is torn
# down. The wait is outside the timed command.
#
# Exit status: the command's.
set -u

if [ "${NSRUN_INSIDE:-}" != 1 ]; then
	NSRUN_INSIDE=1 exec unshare --mount --pid --fork --mount-proc --propagation private \
		sh "$0" "$@"
fi

spool=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o)
		target=${2%%=*}
		lower=${2#*=}
		mount -t overlay overlay -o "lowerdir=$lower:$target" "$target" || {
			echo "nsrun: cannot overlay $target" >&2
			exit 71
		}
		shift 2
		;;
	-b)
		mount --bind "${2#*=}" "${2%%=*}" || {
			echo "nsrun: cannot bind ${2#*=} on ${2%%=*}" >&2
			exit 71
		}
		shift 2
		;;
	-s)
		spool=$2
		shift 2
		;;
	--)
		shift
		break
		;;
	*)
		echo "nsrun: bad option $1" >&2
		exit 64
		;;
	esac
done

"$@"
status=$?
if [ -n "$spool" ]; then
	i=0
	while [ $i -lt 100 ] && [ -n "$(ls "$spool" 2>/dev/null)" ]; do
		sleep 0.1
		i=$((i + 1))
	done
fi
exit $status
