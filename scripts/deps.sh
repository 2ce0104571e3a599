# shellcheck shell=bash
# Debian packages Device Hub needs, and a function that installs the missing ones.
# Sourced by scripts/run and scripts/test; not run on its own.

# shellcheck disable=SC2034
# (python3-requests: the build writes devicehub(1) from the Python client's --help)
DH_BUILD_PKGS="gcc meson ninja-build pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libcbor-dev nettle-dev libgnutls28-dev uuid-dev libcurl4-gnutls-dev libpq-dev libcoap3-dev python3
python3-requests"
# shellcheck disable=SC2034
DH_TEST_PKGS="check python3-pytest python3-requests python3-cbor2 openssl clang-format
sqlite3 curl postgresql libcoap3-bin python3-hypothesis
python3-mypy python3-typeshed python3-venv python3-pip python3-setuptools python3-wheel"
# shellcheck disable=SC2034
# scripts/package: Debian's packaging tools (the suite builds the package too)
DH_PACKAGE_PKGS="debhelper dh-python dpkg-dev lintian man-db"
# shellcheck disable=SC2034
DH_BENCH_PKGS="nginx-light wrk python3-requests sqlite3 libcoap3-bin"
# shellcheck disable=SC2034
# browser tests (tests/browser/run installs them): Debian's Chromium and a font for
# readable screenshots; node and npm run playwright-core (a newer node already there is kept)
DH_BROWSER_PKGS="chromium fonts-dejavu-core nodejs npm"

# dh_install PKG... : apt-get installs those not yet installed (as root, or with sudo).
dh_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "Installing Debian packages: ${missing[*]}" >&2
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
	# Another apt-get (a parallel build, unattended upgrades) may hold the lock: wait for it.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends \
		"${missing[@]}" >&2
}
