#!/bin/sh
# install-deb-deps.sh - install what `make deb` (and with --test, `make check-deb`) needs.
#
# make deb: Debian's packaging tools and the package's Build-Depends
# (debian/control; check only for the unit tests, which nocheck skips).
# --test adds what tests/deb/test_deb.sh needs: podman with runc, mmdebstrap
# for the Debian base image, and python3 for the harness's capture sink.
# Idempotent: when every package is already present it does nothing (no
# apt-get update, no network).
set -eu

PACKAGES="build-essential dpkg-dev debhelper devscripts fakeroot lintian
pkg-config libssl-dev libsasl2-dev libiniparser-dev check"
if [ "${1:-}" = --test ]; then
	PACKAGES="$PACKAGES podman runc mmdebstrap python3 ca-certificates"
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deb-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deb-deps: installing:$missing" >&2
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
