#!/usr/bin/env bash
# Runs every test of tcpadvisor, after installing what the tests need.
#
# On a fresh Debian machine with only Go, as root (or with sudo), this is all
# it takes: the packages below are installed with apt-get, with services kept
# from starting. Tests that need root or a network namespace skip, saying so,
# when run without them.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use: promtool (prometheus) lints the exposition,
# ip and ss (iproute2) make and inspect the test network namespaces;
# prometheus-alertmanager receives the advisor's alerts; systemd gives
# systemd-analyze and systemd-socket-activate for the unit's tests, even where
# systemd is not PID 1. The workload's tests run the seed's experiment with
# real servers: redis-server and nginx, the Flask app (python3-flask,
# python3-redis) under gunicorn, and siege as the other load. lintian checks
# the Debian package (and brings man and groff for the man page's tests).
# clang, llvm and libbpf-dev rebuild the connection tracer's eBPF object,
# which a test compares with the checked-in one.
packages=(prometheus prometheus-alertmanager iproute2 systemd redis-server nginx siege python3-flask python3-redis gunicorn lintian clang llvm libbpf-dev)
staticcheck_version=v0.8.2

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else return 1
	fi
}

install_packages() {
	local missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "test.sh: installing ${missing[*]}"
	# A policy-rc.d that exits 101 keeps the packages' services from starting:
	# the tests start their own servers on free ports.
	local policy=/usr/sbin/policy-rc.d created=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy" && created=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	local status=$?
	[ -n "$created" ] && as_root rm -f "$policy"
	return $status
}

if ! install_packages; then
	echo "test.sh: could not install ${packages[*]} (need root or sudo); tests that need them will skip" >&2
fi

echo "test.sh: gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt -l lists files to format:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "test.sh: go vet"
go vet ./...
echo "test.sh: staticcheck"
go run "honnef.co/go/tools/cmd/staticcheck@${staticcheck_version}" ./...
echo "test.sh: go test"
go test -count=1 ./...
# The packages whose goroutines share state (the collectors, the census, the
# namespaces, the tracer under exporter/, the advisor's engine and notifier,
# and the pipeline whose loop runs beside the web handlers)
# run again under the race detector.
echo "test.sh: go test -race ./exporter/... ./advisor/engine/... ./internal/pipeline/..."
go test -count=1 -race ./exporter/... ./advisor/engine/... ./internal/pipeline/...
# The fleet page shares one report among the readers that wait for it: its
# tests that read the page at once, and through the client configuration.
echo "test.sh: go test -race ./fleet -run 'TestIntegrationFleetCost|TestIntegrationFleetClientConfig'"
go test -count=1 -race ./fleet -run 'TestIntegrationFleetCost|TestIntegrationFleetClientConfig'
