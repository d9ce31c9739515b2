#!/bin/sh
# install-container-deps.sh - what `make check-containers` needs on a fresh Debian 12 (root):
# podman with runc, catatonit, podman-compose, mmdebstrap, cgi-fcgi, and two local images,
#   docker.io/library/debian:bookworm-slim   mmdebstrap minbase + the slim image's apt/dpkg
#                                             settings (tests/containers/slim/)
#   docker.io/library/php:8.2-fpm-bookworm   tests/containers/php-fpm-bookworm.Containerfile
# built here because there is no registry to pull from. Idempotent: packages already present
# are not reinstalled, and an image whose recipe label matches its recipe is kept.
#
# How podman must be run on these machines (the tests do the same):
#   CONTAINERS_CONF=tests/containers/containers.conf   (default_ulimits = []: raising
#                                                       RLIMIT_NOFILE is refused here)
#   podman --runtime runc ...                          (crun fails on this cgroup v1 layout)
#   --network host, --pull=never                       (no netavark, no registry)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
export CONTAINERS_CONF="$top/tests/containers/containers.conf"
podman="podman --runtime runc"

pkgs="podman runc catatonit uidmap slirp4netns containernetworking-plugins podman-compose mmdebstrap
	libfcgi-bin python3-pytest python3-yaml"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-container-deps: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# recipe_hash FILE... - the label that says which recipe built an image
recipe_hash() {
	cat "$@" | sha256sum | cut -c1-16
}

# image_current TAG HASH - true when TAG exists and was built from this recipe
image_current() {
	[ "$($podman image inspect --format '{{index .Labels "relayshim.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

# The Debian mirror this machine uses (deb822 or one-line sources), else deb.debian.org.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/*\)$/\1/p; s/^deb  *\(http[^ ]*\/debian\/*\)  *bookworm .*/\1/p' \
	/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(echo "$mirror" | sed 's,/debian/*$,/debian-security,')

slim=docker.io/library/debian:bookworm-slim
# Raise when the mmdebstrap call below changes.
slim_recipe=4
slim_hash=$(echo "$slim_recipe" | recipe_hash - tests/containers/slim/*)
if ! image_current "$slim" "$slim_hash"; then
	echo "install-container-deps: building $slim from $mirror (mmdebstrap)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# Size figures measured on top of it must mean what they mean on Docker Hub, so it
	# is built as debuerreotype builds the real one: merged /usr by a hook (not the
	# usrmerge package, which brings perl), the slim image's dpkg excludes applied while
	# unpacking (--dpkgopt, kept as /etc/dpkg/dpkg.cfg.d/docker), its apt settings.
	# Debian's python3 for mmtarfilter, whatever else is first on PATH.
	PATH=/usr/sbin:/usr/bin:/sbin:/bin mmdebstrap --quiet --variant=minbase \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt="$top/tests/containers/slim/dpkg-docker" \
		--customize-hook='mv "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$1/etc/dpkg/dpkg.cfg.d/docker"' \
		--customize-hook="copy-in $top/tests/containers/slim/docker-clean $top/tests/containers/slim/docker-gzip-indexes $top/tests/containers/slim/docker-no-languages $top/tests/containers/slim/docker-autoremove-suggests /etc/apt/apt.conf.d" \
		--customize-hook='cd "$1/usr/share" && rm -rf groff/* info/* linda/* lintian/* locale/* man/* && find doc -mindepth 1 ! -type d ! -name copyright -delete' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/etc/apt/apt.conf.d/99mmdebstrap' \
		bookworm "$tmp/base.tar" \
		"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
		"deb $security bookworm-security main"
	$podman import -q --change "LABEL relayshim.recipe=$slim_hash" --change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$tmp/base.tar" "$slim" >/dev/null
	rm -rf "$tmp"
	trap - EXIT
fi

php=docker.io/library/php:8.2-fpm-bookworm
php_hash=$(recipe_hash tests/containers/php-fpm-bookworm.Containerfile)-$slim_hash
if ! image_current "$php" "$php_hash"; then
	echo "install-container-deps: building $php (stand-in, Debian's php8.2-fpm)"
	$podman build -q --network host --pull=never --label "relayshim.recipe=$php_hash" \
		-f tests/containers/php-fpm-bookworm.Containerfile -t "$php" tests/containers >/dev/null
fi
