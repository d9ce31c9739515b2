#!/bin/sh
# test_deb.sh - the Debian package, installed as a Debian user would, delivers.
#
# Usage: sh tests/deb/test_deb.sh DIR     (DIR holds relayshim_*.deb; make check-deb)
#
# In a Debian bookworm container (podman):
#   apt-get install ./relayshim_*.deb bsd-mailx cron
# must pull in no other MTA (mail-transport-agent is provided by relayshim
# alone; no exim4 or postfix; mailutils, simulated afterwards, would not
# bring one either); the package must lay out sendmail, its two
# symlinks, the shim (not preloaded), the man pages, the conffile and the
# queue directory (mode 1733, root); then, with the relay named in
# /etc/relayshim.conf, "echo hi | mail -s test root" must reach the relay:
# the harness's private Postfix relay on host loopback (tests/harness/
# relay_ctl.py), whose capture sink must hold the message. A message sent
# while the relay is down is queued, survives "postrm purge" (mail is
# never deleted silently), and "sendmail -q" delivers it; then a purge
# removes the empty queue directory.
#
# Image: docker.io/library/debian:bookworm-slim when present (tools/
# install-container-deps.sh builds it), else a minbase bookworm built here
# with mmdebstrap from this machine's Debian mirror and podman import, kept
# as localhost/relayshim-deb-base:bookworm. podman runs with runc, host
# networking, no pulls, and a private containers.conf (default_ulimits = []:
# raising RLIMIT_NOFILE is refused on these machines). Needs root.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 64; }
top=$(cd "$(dirname "$0")/../.." && pwd)
debdir=$(cd "$1" && pwd)
deb=$(ls "$debdir"/relayshim_*.deb 2>/dev/null | grep -v dbgsym | head -n 1)
[ -n "$deb" ] || { echo "test_deb: no relayshim_*.deb in $debdir (make deb)" >&2; exit 1; }

start=$(date +%s)
work=$(mktemp -d /tmp/relayshim-deb-test.XXXXXX)
relay_started=no
cleanup() {
	[ "$relay_started" = yes ] && /usr/bin/python3 "$top/tests/harness/relay_ctl.py" stop "$work/relay" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
podman="podman --runtime runc"

fail() {
	echo "test_deb: FAIL: $*" >&2
	exit 1
}

# The Debian base image.
image=docker.io/library/debian:bookworm-slim
if ! $podman image exists "$image"; then
	image=localhost/relayshim-deb-base:bookworm
	if ! $podman image exists "$image"; then
		mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/*\)$/\1/p; s/^deb  *\(http[^ ]*\/debian\/*\)  *bookworm .*/\1/p' \
			/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
		mirror=${mirror:-http://deb.debian.org/debian}
		security=$(echo "$mirror" | sed 's,/debian/*$,/debian-security,')
		echo "test_deb: building $image from $mirror (mmdebstrap)"
		mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar" \
			"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
			"deb $security bookworm-security main"
		$podman import -q "$work/base.tar" "$image" >/dev/null
		rm -f "$work/base.tar"
	fi
fi

# The relay: a private Postfix on host loopback (mynetworks 127.0.0.0/8),
# delivering to its capture sink; it stops with this shell at the latest.
/usr/bin/python3 "$top/tests/harness/relay_ctl.py" start "$work/relay" --owner $$ >/dev/null
relay_started=yes
. "$work/relay/env"

cp "$deb" "$work/"
cat >"$work/inside.sh" <<'INSIDE'
set -eu
export DEBIAN_FRONTEND=noninteractive
cd /deb
apt-get update -q >/dev/null
# Exactly what a user types (recommends included, as apt does by default).
apt-get install -y -q ./relayshim_*.deb bsd-mailx cron >apt.log 2>&1 || { cat apt.log; exit 1; }
echo "== dpkg -l | grep -i -E 'mta|exim|postfix|sendmail|relayshim|mailx|cron'"
dpkg -l | grep -i -E 'mta|exim|postfix|sendmail|relayshim|mailx|cron' || true
echo "== packages providing mail-transport-agent"
dpkg-query -W -f '${Status} ${Package} ${Provides}\n' |
	awk '/^install ok installed/ && /mail-transport-agent/ {print $4}' | tee mta.list
echo "== apt-get install -s mailutils (simulated): what it would add"
apt-get install -s -q mailutils 2>&1 | awk '/^Inst / {print $2}' | tee mailutils.inst
echo "== layout"
ls -ld /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/lib/relayshim/librelayshim.so \
	/etc/relayshim.conf /var/spool/relayshim | tee layout.txt
# The slim image's dpkg excludes drop man pages on unpack: ask the package.
dpkg -L relayshim | grep -E '/man[58]/relayshim' | tee man.txt
stat -c '%a %U %G' /var/spool/relayshim >spool.stat
readlink /usr/lib/sendmail /usr/bin/mailq >links.txt
grep -q /etc/relayshim.conf /var/lib/dpkg/info/relayshim.conffiles && echo conffile >conffile.txt
grep -s relayshim /etc/ld.so.preload >preload.txt || true
echo "== configure the relay in /etc/relayshim.conf"
sed -i "s|^#host = .*|host = $RELAY_HOST:$RELAY_PLAIN_PORT|; s|^#domain =.*|domain = deb.test|" /etc/relayshim.conf
sendmail --config-check >config-check.txt 2>&1 || { cat config-check.txt; exit 1; }
grep -E '^ *(host|domain) ' config-check.txt || true
echo "== echo hi | mail -s test root"
echo hi | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mail -s test root
echo "mail exit status $?"
echo "== relay down (RELAYSHIM_RELAY=127.0.0.1:9): queued"
echo hi | RELAYSHIM_RELAY=127.0.0.1:9 mail -s queued root
mailq | tee mailq.txt
echo "== postrm purge with mail in the queue: kept"
/var/lib/dpkg/info/relayshim.postrm purge 2>&1 | tee postrm.txt
[ -d /var/spool/relayshim ] && echo "spool kept" | tee -a postrm.txt
echo "== sendmail -q with the relay of /etc/relayshim.conf"
sendmail -q
mailq | tee mailq-after.txt
echo "== dpkg --purge: queue directory removed"
dpkg --purge --force-depends relayshim >purge.log 2>&1 || { cat purge.log; exit 1; }
[ -e /var/spool/relayshim ] || echo "spool removed" | tee purged.txt
INSIDE

$podman run --rm --network host --pull=never --hostname deb-test \
	-e RELAY_HOST="$RELAY_HOST" -e RELAY_PLAIN_PORT="$RELAY_PLAIN_PORT" \
	-v "$work:/deb" "$image" sh -x /deb/inside.sh 2>"$work/inside.err" |
	tee "$work/inside.out" || true
grep -q '^mail exit status 0$' "$work/inside.out" || { cat "$work/inside.err" >&2; fail "the container run did not get to a successful mail(1)"; }

# No other MTA: relayshim is the only provider, exim4 and postfix absent.
[ "$(cat "$work/mta.list")" = relayshim ] || fail "providers of mail-transport-agent: $(cat "$work/mta.list")"
grep -q -E '^ii +(exim4|postfix|nullmailer|dma|msmtp-mta|ssmtp)' "$work/inside.out" && fail "another MTA was installed"
grep -q '^mailutils$' "$work/mailutils.inst" || fail "apt-get install -s mailutils did not plan mailutils"
grep -E '^(exim4|postfix|nullmailer|dma|msmtp-mta|ssmtp|sendmail-bin)' "$work/mailutils.inst" &&
	fail "mailutils would pull in another MTA"
# Layout.
[ "$(cat "$work/spool.stat")" = "1733 root root" ] || fail "spool is $(cat "$work/spool.stat"), want 1733 root root"
[ "$(cat "$work/links.txt")" = "$(printf '../sbin/sendmail\n../sbin/sendmail')" ] || fail "symlinks: $(cat "$work/links.txt")"
[ -s "$work/conffile.txt" ] || fail "/etc/relayshim.conf is not a conffile"
[ -s "$work/preload.txt" ] && fail "the shim is in /etc/ld.so.preload"
[ "$(wc -l <"$work/layout.txt")" -eq 6 ] || fail "missing files: $(cat "$work/layout.txt")"
[ "$(wc -l <"$work/man.txt")" -eq 2 ] || fail "man pages: $(cat "$work/man.txt")"

# The queue: one message while the relay was down, kept by a purge, then
# delivered by sendmail -q; the purge of an empty queue removes it.
grep -q 'still holds queued or failed mail' "$work/postrm.txt" && grep -q 'spool kept' "$work/postrm.txt" ||
	fail "postrm purge did not keep a queue with mail in it: $(cat "$work/postrm.txt")"
[ -s "$work/purged.txt" ] || fail "dpkg --purge left /var/spool/relayshim: $(cat "$work/purge.log")"

# The relay got both, the direct one first.
/usr/bin/python3 "$top/tests/harness/relay_ctl.py" wait "$work/relay" 2 30 ||
	fail "the relay's capture sink does not hold two messages: $(ls "$CAPTURE_DIR")"
grep -l -q '^Subject: queued' "$CAPTURE_DIR"/*.eml || fail "the queued message did not reach the relay"
eml=$(grep -l '^Subject: test' "$CAPTURE_DIR"/*.eml | head -n 1)
[ -n "$eml" ] || fail "no captured message has 'Subject: test'"
grep -q '"root@deb.test"' "${eml%.eml}.json" || fail "recipient is not root@deb.test: $(cat "${eml%.eml}.json")"
echo "== captured by the relay: $(basename "$eml")"
sed -n '/^\r\{0,1\}$/q; p' "$eml" | tr -d '\r'

echo "test_deb: PASS ($(($(date +%s) - start)) s)"
