#!/bin/sh
# install-deps.sh - install everything relayshim's build, tests, demo and bench need.
#
# Idempotent: when every package is already present it does nothing (one dpkg-query,
# no apt-get, no network). Used by `make check`, `make demo`, `make bench` and .ci/run;
# `make check NODEPS=1` skips it.
# Postfix is installed with debconf preseeded to "No configuration" and a
# policy-rc.d that forbids starting services, so no system-wide MTA starts: the
# tests run private Postfix instances with their own config and queue dirs.
set -eu

PACKAGES="build-essential pkg-config clang llvm libclang-rt-14-dev
libssl-dev openssl libsasl2-dev libsasl2-2 libsasl2-modules libsasl2-modules-db sasl2-bin
libiniparser-dev check valgrind groff-base
postfix swaks php-cli curl perl libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl libdigest-hmac-perl
clang-format python3 python3-aiosmtpd python3-yaml python3-pytest iproute2 procps util-linux libcap2-bin
msmtp hyperfine time php-symfony-mailer node-nodemailer libphp-phpmailer musl-tools"

# One dpkg-query for all of them ("ii" = installed): make check runs this every time.
installed=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>/dev/null |
	awk '$1 == "ii" { printf "%s ", $2 }')"
missing=""
for p in $PACKAGES; do
	case "$installed" in
	*" $p "*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

# Forbid invoke-rc.d from starting daemons while we install (postfix, saslauthd).
policy=/usr/sbin/policy-rc.d
had_policy=no
[ -e "$policy" ] && had_policy=yes
if [ "$had_policy" = no ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

echo "install-deps: installing:$missing" >&2
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
