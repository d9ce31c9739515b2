#!/bin/sh
# docker-entrypoint.sh - snapshot the container environment into relayshim's
# configuration, check it, then run the application.
#
# Why: cron and php-fpm (clear_env = yes) run sendmail with an almost empty
# environment, so RELAYSHIM_RELAY and friends must be in the file. The image
# makes /etc/relayshim.conf a symlink into /run/relayshim (a tmpfs or volume),
# so this works with a read-only root file system.
#
# Environment: RELAYSHIM_* and the relay images' own names (see relayshim.conf(5)).
# RELAYSHIM_CONFIG_OUT   where to write (default /etc/relayshim.conf, following the symlink)
# RELAYSHIM_CONFIG_GROUP group that may read it when started as root (default www-data)
set -eu

sendmail=${RELAYSHIM_SENDMAIL_BIN:-/usr/sbin/sendmail}
out=${RELAYSHIM_CONFIG_OUT:-/etc/relayshim.conf}
[ -L "$out" ] && out=$(readlink -f "$out")
mkdir -p "$(dirname "$out")"

# The file may hold a password: never readable by others.
umask 077
"$sendmail" --write-config >"$out.tmp"
if [ "$(id -u)" -eq 0 ] && getent group "${RELAYSHIM_CONFIG_GROUP:-www-data}" >/dev/null 2>&1; then
	chgrp "${RELAYSHIM_CONFIG_GROUP:-www-data}" "$out.tmp"
	chmod 640 "$out.tmp"
fi
mv "$out.tmp" "$out"

# From here on the file alone must be enough, exactly as cron will see it.
if ! env -i PATH=/usr/bin:/bin RELAYSHIM_CONFIG="$out" "$sendmail" --config-check >/dev/null; then
	echo "docker-entrypoint: relayshim configuration rejected (see above)" >&2
	exit 78
fi

# Optional (RELAYSHIM_RELAY_CHECK=1): ask the relay whether it takes our sender and network; its
# refusal stops the start, a relay not up yet (75) does not.
[ "${RELAYSHIM_RELAY_CHECK:-}" != 1 ] || env -i PATH=/usr/bin:/bin RELAYSHIM_CONFIG="$out" "$sendmail" --relay-check || { rc=$?; [ "$rc" -eq 75 ] || exit "$rc"; }

[ "$#" -gt 0 ] || exit 0
exec "$@"
