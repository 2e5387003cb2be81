#!/usr/bin/env bash
# Builds the Debian package of tcpadvisor from this repository with plain
# dpkg-deb, and prints the path of the .deb:
#
#   deploy/deb/build.sh [OUTDIR]        # OUTDIR defaults to the current directory
#
# The version is the VERSION file's, with a pre-release's "-" made "~"
# (0.1.0-dev becomes 0.1.0~dev, which sorts before 0.1.0 as it should); a
# pre-release built from a git clone adds the commit's date and revision
# (0.1.0~dev+git20261202.c83f02b), so that each snapshot sorts after the one
# before. The binary is stamped with the version, revision, branch and
# date (the commit's, so that the build is reproducible), which
# --version, the landing page and tcpadvisor_build_info show. The
# architecture is the machine's (dpkg --print-architecture), or
# DEB_HOST_ARCH's. The Maintainer field is "$DEBFULLNAME <$DEBEMAIL>" when
# both are set. Needs go and dpkg-deb; git for the revision.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
here="$repo/deploy/deb"
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)

upstream=$(tr -d '[:space:]' <"$repo/VERSION")
version=${upstream//-/\~}
revision="" branch="" date="" epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
	revision=$(git -C "$repo" rev-parse HEAD)
	branch=$(git -C "$repo" rev-parse --abbrev-ref HEAD)
	date=$(TZ=UTC git -C "$repo" show -s --format=%cd --date=format-local:%Y%m%d-%H:%M:%S HEAD)
	epoch=$(git -C "$repo" show -s --format=%ct HEAD)
	if [[ $upstream == *-* ]]; then
		version+="+git${date%%-*}.${revision:0:7}"
	fi
fi
maintainer="tcpadvisor developers <tcpadvisor@users.noreply.github.com>"
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
	maintainer="$DEBFULLNAME <$DEBEMAIL>"
fi
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
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" "$doc/examples" \
	"$stage/usr/share/man/man1" "$stage/usr/share/lintian/overrides"

# Static, so that the package depends on nothing. -buildvcs=false: the
# revision is stamped explicitly, also where GOFLAGS turns VCS stamping off.
stamp=github.com/prometheus/common/version
ldflags="-s -w -X $stamp.Version=$upstream -X $stamp.BuildUser=deploy/deb/build.sh"
[ -n "$revision" ] && ldflags+=" -X $stamp.Revision=$revision -X $stamp.Branch=$branch -X $stamp.BuildDate=$date"
(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=7 go build -buildvcs=false -trimpath -ldflags="$ldflags" -o "$stage/usr/bin/tcpadvisor" .)

install -m 0644 "$repo/deploy/systemd/tcpadvisor.service" "$repo/deploy/systemd/tcpadvisor.socket" "$stage/lib/systemd/system/"
install -m 0644 "$repo/deploy/systemd/tcpadvisor.default" "$stage/etc/default/tcpadvisor"
# The README and docs/, laid out as in the repository so that the README's
# links work.
install -m 0644 "$repo/README.md" "$repo/LICENSE" "$here/copyright" "$doc/"
install -d "$doc/docs"
install -m 0644 "$repo"/docs/*.md "$doc/docs/"
# The package is native (its version has no Debian revision), so its
# changelog.gz is a Debian changelog, which points to the project's.
gzip -9n <"$repo/CHANGELOG.md" >"$doc/CHANGELOG.md.gz"
cat <<CHANGELOG | gzip -9n >"$doc/changelog.gz"
tcpadvisor ($version) unstable; urgency=medium

  * Built from ${revision:-a source tree without git history} of
    https://github.com/tcpadvisor/tcpadvisor; what changed is in
    /usr/share/doc/tcpadvisor/CHANGELOG.md.gz.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$epoch")
CHANGELOG
install -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/tcpadvisor"
# The man page, as the binary writes it (it runs here: built for this
# architecture only).
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
	"$stage/usr/bin/tcpadvisor" --help-man | gzip -9n >"$stage/usr/share/man/man1/tcpadvisor.1.gz"
else
	(cd "$repo" && CGO_ENABLED=0 go run -buildvcs=false -ldflags="$ldflags" . --help-man) | gzip -9n >"$stage/usr/share/man/man1/tcpadvisor.1.gz"
fi
chmod 0644 "$stage/usr/share/man/man1/tcpadvisor.1.gz"
# The rule file is a link in deploy/prometheus: copy what it points to.
install -m 0644 "$repo/deploy/prometheus/prometheus.yml" "$repo/deploy/prometheus/alertmanager.yml" \
	"$repo/rules/tcpadvisor.rules.yml" "$repo/dashboards/tcpadvisor.json" \
	"$repo/dashboards/tcpadvisor-netns.json" \
	"$repo/deploy/systemd/tcpadvisor-netns.conf" "$doc/examples/"

install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/default/tcpadvisor >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: tcpadvisor
Version: $version
Architecture: $arch
Maintainer: $maintainer
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

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

deb="$out/tcpadvisor_${version}_${arch}.deb"
# xz -1: a 15% bigger package than the default -6, built five times faster.
dpkg-deb --root-owner-group -Zxz -z1 --build "$stage" "$deb" >/dev/null
echo "$deb"
