#!/bin/sh
# docker-entrypoint.sh - relayshim's container entrypoint.
#
# What it does, in order:
#  1. snapshots the container environment into relayshim's configuration
#     and checks it. Why: cron and php-fpm (clear_env = yes) run sendmail
#     with an almost empty environment, so RELAYSHIM_RELAY and friends must
#     be in the file. The image makes /etc/relayshim.conf a symlink into
#     /run/relayshim; the directory is created here because a fresh tmpfs
#     /run has none (the root file system may be read-only).
#  2. log relay: when RELAYSHIM_LOG names a file in that directory (the
#     image says /run/relayshim/log), makes it a FIFO that every user may
#     write and copies it to this process's stdout, the container log.
#     Why: only the container's user may open /proc/1/fd/1 (runc makes it
#     mode 0600), so www-data's php-fpm workers, its detached queue worker
#     and its cron mail would log nowhere.
#  3. starts cron when RELAYSHIM_CRON=yes (root only: cron switches to
#     each job's user).
#  4. starts one queue flush: mail left on the spool volume by the last
#     run goes out now, not when its sender next sends. As root this is
#     every user's area.
#  5. runs the command (php-fpm by default; a first argument starting with
#     "-" is an option for php-fpm, as in the php images), passes it the
#     stop signal (docker stop: SIGQUIT from the php image's STOPSIGNAL,
#     else SIGTERM) and waits for it.
#  6. drains the queue with a deadline before exiting: sendmail -q
#     --deadline=RELAYSHIM_DRAIN_DEADLINE (default 7s, inside docker stop's
#     10 s). What is left stays on the volume and step 4 sends it at the
#     next start; the drain says how much on stderr.
#
# Environment: RELAYSHIM_* and the relay images' own names (see relayshim.conf(5)).
# RELAYSHIM_CONFIG_OUT      where to write (default /etc/relayshim.conf, following the symlink)
# RELAYSHIM_CONFIG_GROUP    group that may read it when started as root (default www-data)
# RELAYSHIM_CRON            yes: start cron (default no)
# RELAYSHIM_DRAIN_DEADLINE  deadline of the drain at stop (default 7s; 0: no drain)
# RELAYSHIM_RELAY_CHECK     1: sendmail --relay-check at start; a refusal stops the start
#
# Exit status: the command's; 73 when the configuration directory cannot be
# created, 78 when the configuration is rejected, --relay-check's when the
# relay refuses us (RELAYSHIM_RELAY_CHECK=1).
set -eu

me=relayshim-entrypoint
sendmail=${RELAYSHIM_SENDMAIL_BIN:-/usr/sbin/sendmail}
out=${RELAYSHIM_CONFIG_OUT:-/etc/relayshim.conf}
if [ -L "$out" ]; then
	# One level, no readlink -f: the target's directory does not exist yet.
	target=$(readlink "$out")
	case $target in
	/*) out=$target ;;
	*) out=$(dirname "$out")/$target ;;
	esac
fi
dir=$(dirname "$out")
if ! err=$(mkdir -p "$dir" 2>&1); then
	if [ "$(id -u)" -eq 0 ]; then
		hint="with --read-only, mount a tmpfs there: docker run --tmpfs $(dirname "$dir")"
	else
		hint="start the container as root, or make $dir writable for $(id -un)"
	fi
	echo "$me: cannot create $dir: ${err##*: } ($hint)" >&2
	exit 73
fi

# 2. The relay starts first, so that the lines of everything below reach it.
relay_pid=
case ${RELAYSHIM_LOG:-} in
"$dir"/*)
	fifo=$RELAYSHIM_LOG
	[ -p "$fifo" ] || { rm -f "$fifo" && mkfifo -m 622 "$fifo"; }
	# Read and write: the FIFO then always has a reader (a writer never gets
	# ENXIO or EPIPE while we live) and cat never sees end of file.
	cat <>"$fifo" &
	relay_pid=$!
	;;
esac

# 1. The file may hold a password: never readable by others.
umask 077
"$sendmail" --write-config >"$out.tmp"
if [ "$(id -u)" -eq 0 ] && getent group "${RELAYSHIM_CONFIG_GROUP:-www-data}" >/dev/null 2>&1; then
	chgrp "${RELAYSHIM_CONFIG_GROUP:-www-data}" "$out.tmp"
	chmod 640 "$out.tmp"
fi
mv "$out.tmp" "$out"
umask 022

# From here on the file alone must be enough, exactly as cron will see it.
if ! env -i PATH=/usr/bin:/bin RELAYSHIM_CONFIG="$out" "$sendmail" --config-check >/dev/null; then
	echo "$me: relayshim configuration rejected (see above)" >&2
	exit 78
fi

# Optional (RELAYSHIM_RELAY_CHECK=1): ask the relay whether it takes our sender and network; its
# refusal stops the start, a relay not up yet (75) does not.
[ "${RELAYSHIM_RELAY_CHECK:-}" != 1 ] || env -i PATH=/usr/bin:/bin RELAYSHIM_CONFIG="$out" "$sendmail" --relay-check || { rc=$?; [ "$rc" -eq 75 ] || exit "$rc"; }

[ "$#" -gt 0 ] || exit 0
if [ "${1#-}" != "$1" ]; then
	set -- php-fpm "$@"
fi

# 3.
cron_pid=
if [ "${RELAYSHIM_CRON:-no}" = yes ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "$me: RELAYSHIM_CRON=yes needs the container to start as root; cron not started" >&2
	else
		cron -f &
		cron_pid=$!
	fi
fi

# 4. In the background: the relay may be slow to come up; the command starts now.
RELAYSHIM_CONFIG="$out" "$sendmail" -q </dev/null >&2 &

# 5.
app_pid=
stop_signal=
forward() {
	stop_signal=$1
	[ -z "$app_pid" ] || kill -s "$1" "$app_pid" 2>/dev/null || :
}
trap 'forward TERM' TERM
trap 'forward QUIT' QUIT
trap 'forward INT' INT
"$@" &
app_pid=$!
[ -z "$stop_signal" ] || kill -s "$stop_signal" "$app_pid" 2>/dev/null || :
status=0
while :; do
	# A trapped signal interrupts wait (status > 128); the command is then
	# still shutting down: wait again.
	if wait "$app_pid"; then status=0; else status=$?; fi
	kill -0 "$app_pid" 2>/dev/null || break
done

# 6. Cron first, so no new mail appears during the drain. The drain logs to
# stderr directly: it is ours, and the relay stops right after.
[ -z "$cron_pid" ] || { kill "$cron_pid" 2>/dev/null || :; wait "$cron_pid" 2>/dev/null || :; }
deadline=${RELAYSHIM_DRAIN_DEADLINE:-7s}
if [ "$deadline" != 0 ]; then
	RELAYSHIM_CONFIG="$out" RELAYSHIM_LOG=stderr "$sendmail" -q --deadline="$deadline" </dev/null >&2 || :
fi
[ -z "$relay_pid" ] || kill "$relay_pid" 2>/dev/null || :
exit "$status"
