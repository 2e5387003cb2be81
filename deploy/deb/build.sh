#!/usr/bin/env bash
# Builds the Debian package of tcpadvisor from this repository with plain
# dpkg-deb, and prints the path of the .deb:
#
#   deploy/deb/build.sh [OUTDIR]        # OUTDIR defaults to the current directory
#
# The version is the VERSION file's, with a pre-release's "-" made "~"
# (0.1.0-dev becomes 0.1.0~dev, which sorts before 0.1.0 as it should). The
# architecture is the machine's (dpkg --print-architecture), or
# DEB_HOST_ARCH's. Needs go and dpkg-deb.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
here="$repo/deploy/deb"
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)

upstream=$(tr -d '[:space:]' <"$repo/VERSION")
version=${upstream//-/\~}
arch=${DEB_HOST_ARCH:-$(dpkg --print-architecture)}
case "$arch" in
amd64 | arm64 | riscv64 | s390x) goarch=$arch ;;
i386) goarch=386 ;;
armhf) goarch=arm ;;
ppc64el) goarch=ppc64le ;;
*)
	echo "build.sh: architecture $arch: no Go port known here; set DEB_HOST_ARCH to one of amd64 arm64 armhf i386 ppc64el riscv64 s390x" >&2
	exit 1
	;;
esac

stage=$(mktemp -d)
chmod 0755 "$stage" # the mode of / in the package
trap 'rm -rf "$stage"' EXIT
doc="$stage/usr/share/doc/tcpadvisor"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" "$doc/examples"

# Static, so that the package depends on nothing.
(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=7 go build -trimpath -ldflags="-s -w" -o "$stage/usr/bin/tcpadvisor" .)

install -m 0644 "$repo/deploy/systemd/tcpadvisor.service" "$repo/deploy/systemd/tcpadvisor.socket" "$stage/lib/systemd/system/"
install -m 0644 "$repo/deploy/systemd/tcpadvisor.default" "$stage/etc/default/tcpadvisor"
install -m 0644 "$repo/README.md" "$repo/docs/advice.md" "$here/copyright" "$doc/"
gzip -9n <"$repo/CHANGELOG.md" >"$doc/changelog.gz"
# The rule file is a link in deploy/prometheus: copy what it points to.
install -m 0644 "$repo/deploy/prometheus/prometheus.yml" "$repo/deploy/prometheus/alertmanager.yml" \
	"$repo/rules/tcpadvisor.rules.yml" "$repo/dashboards/tcpadvisor.json" \
	"$repo/deploy/systemd/tcpadvisor-netns.conf" "$doc/examples/"

install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/default/tcpadvisor >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: tcpadvisor
Version: $version
Architecture: $arch
Maintainer: tcpadvisor developers <https://github.com/tcpadvisor/tcpadvisor>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Section: net
Priority: optional
Homepage: https://github.com/tcpadvisor/tcpadvisor
Description: TCP socket states and ephemeral-port pressure for Prometheus
 A Prometheus exporter of TCP socket states and of ephemeral-port pressure
 per destination, read from the kernel with netlink sock_diag, and an
 advisor that evaluates its alert rules and says what to change: a
 connection pool, upstream keepalive, a sysctl.
 .
 The service listens on port 10067 (tcpadvisor.socket) and needs no
 privilege; its flags are in /etc/default/tcpadvisor.
CONTROL

deb="$out/tcpadvisor_${version}_${arch}.deb"
# xz -1: a 15% bigger package than the default -6, built five times faster.
dpkg-deb --root-owner-group -Zxz -z1 --build "$stage" "$deb" >/dev/null
echo "$deb"
