#!/usr/bin/env bash
# Peak memory of the tcpadvisor daemon against the number of distinct
# outbound destinations, and whether its top 20 stays right.
#
# Usage: sudo bench/destinations.sh [DESTINATIONS...]   (default 10000 70000 200000)
#   TCPADVISOR  a tcpadvisor binary to measure instead of building this tree
#
# For each size, in a network namespace of its own: the daemon (every
# collector, owners included), then bench/population -destinations N: one
# TIME_WAIT socket toward each of N loopback addresses 127.1.0.0 and up, and
# 20 heavy destinations among them with 119 down to 100 sockets. Three
# scrapes, then the daemon's VmHWM (peak RSS). The top 20 is right when the
# 20 destinations the scrape names are the heavy ones; its counts are exact
# when they are the heavy ones' TIME_WAIT counts too. See bench/README.md.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if (($# > 0)); then sizes=("$@"); else sizes=(10000 70000 200000); fi
for s in "${sizes[@]}"; do
	[[ $s =~ ^[1-9][0-9]*$ ]] && ((s >= 100 && s <= 250000)) || { echo "destinations.sh: size $s: want 100 to 250000" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "destinations.sh: needs root (network namespaces)" >&2; exit 1; }

work=$(mktemp -d)
ns=tcpadv-dest-$$
daemon=""
population=""
cleanup() {
	[ -n "$population" ] && kill "$population" 2>/dev/null && wait "$population" 2>/dev/null
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# TCPADVISOR=path measures another build of the daemon, such as an older
# release, with this population.
if [ -n "${TCPADVISOR:-}" ]; then
	cp "$TCPADVISOR" "$work/tcpadvisor"
else
	(cd "$repo" && go build -o "$work/tcpadvisor" .)
fi
(cd "$repo" && go build -o "$work/population" ./bench/population)

printf '| destinations | sockets | peak RSS MiB | RSS before MiB | top 20 right | counts exact | scrape ms |\n|---|---|---|---|---|---|---|\n'
for size in "${sizes[@]}"; do
	ip netns add "$ns"
	in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
	in_ns ip link set lo up
	in_ns sysctl -qw net.ipv4.ip_local_port_range="10240 65535" net.ipv4.tcp_max_tw_buckets=400000 net.ipv4.tcp_tw_reuse=0
	# nsenter execs the daemon: $! is its PID.
	nsenter --net="/run/netns/$ns" "$work/tcpadvisor" --web.listen-address=127.0.0.1:10067 --log.level=error &
	daemon=$!
	for _ in $(seq 100); do in_ns curl -sf -o /dev/null http://127.0.0.1:10067/metrics && break; sleep 0.1; done
	before=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$daemon/status")

	coproc pop { exec nsenter --net="/run/netns/$ns" "$work/population" -time-wait 0 -established 0 -destinations "$size" -workers 16 -build-timeout 45s -hold 2m; }
	population=$pop_PID
	read -r ready sockets <&"${pop[0]}"
	[ "$ready" = ready ] || { echo "destinations.sh: population failed" >&2; exit 1; }

	for _ in 1 2 3; do
		in_ns curl -sf -o "$work/metrics" -w '%{time_total}\n' http://127.0.0.1:10067/metrics >"$work/time"
	done
	scrape_ms=$(awk '{printf "%.0f", $1*1000}' "$work/time")
	peak=$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$daemon/status")

	# The heavy destinations are 127.1.0.0 to 127.1.0.19, with 119 down to
	# 100 TIME_WAIT sockets.
	want=$(for i in $(seq 0 19); do echo "127.1.0.$i $((119 - i))"; done)
	got=$(grep '^tcpadvisor_outbound_sockets{' "$work/metrics" | grep 'state="time_wait"' | grep -v 'destination_address="other"' |
		sed -E 's/.*destination_address="([^"]*)".* ([0-9]+)$/\1 \2/' | sort -t. -k4 -n)
	[ -n "${KEEP_METRICS:-}" ] && cp "$work/metrics" "$KEEP_METRICS.$size"
	# Right: the 20 heavy destinations, none other. Exact: with their
	# exact counts too. A dump can miss or repeat a socket when others come
	# and go while it runs (the scrape's own connection does), so a count
	# may be off by one now and then.
	right=no exact=no
	[ "$(cut -d' ' -f1 <<<"$got")" = "$(cut -d' ' -f1 <<<"$want")" ] && right=yes
	[ "$got" = "$want" ] && exact=yes

	printf '| %d | %d | %s | %s | %s | %s | %s |\n' "$size" "$sockets" "$peak" "$before" "$right" "$exact" "$scrape_ms"
	kill "$population"; wait "$population" 2>/dev/null || true; population=""
	kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""
	ip netns del "$ns"
done
