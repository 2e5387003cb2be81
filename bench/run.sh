#!/usr/bin/env bash
# Times one tcpadvisor scrape against ss, a bare inet_diag dump (the floor)
# and node_exporter's tcpstat collector, on loopback TCP populations of
# several sizes, each built in a network namespace of this script's own.
#
# Usage: sudo bench/run.sh [SIZE...]
#   SIZE   sockets in the population (default: $SIZES, or 10000 50000 130000)
#   RUNS   timed runs per tool and size (default 7)
#   IDLE_PROCESSES  idle processes started for the run, so that owner
#          attribution reads a host's worth of /proc (default 300)
#   SHARED_CGROUP=1  the population runs in the idle processes' cgroup, as
#          an application shares its container or session with a shell:
#          its cgroup then names no single process
#   TCPADVISOR_ARGS  more flags for every tcpadvisor daemon, such as
#          --no-collector.connections to measure without the tracer
#
# Prints a markdown table and writes it to bench/results/. See bench/README.md.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-7}
if (($# > 0)); then
	sizes=("$@")
else
	read -ra sizes <<<"${SIZES:-10000 50000 130000}"
fi
node_exporter=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}

# Ports inside the namespace, all below the ephemeral range set there.
tcpadvisor_port=10067
tcpadvisor_sockets_port=10068
tcpadvisor_no_owners_port=10069
node_port=9100
population_base_port=5000
ephemeral_range="10240 65535"

# TIME_WAIT sockets start to expire 55-62 s after they are made: every
# measurement of a size must end within this many seconds of the start of
# its population.
window=50

die() {
	echo "run.sh: $*" >&2
	exit 1
}

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

is_count "$runs" && ((runs >= 3 && runs <= 50)) || die "RUNS=$runs: want 3 to 50"
((${#sizes[@]} >= 1 && ${#sizes[@]} <= 10)) || die "want 1 to 10 sizes"
max_size=0
for s in "${sizes[@]}"; do
	is_count "$s" && ((s >= 1000 && s <= 250000)) || die "size $s: want 1000 to 250000 sockets"
	if ((s > max_size)); then
		max_size=$s
	fi
done
((EUID == 0)) || die "must run as root (network namespaces): sudo $0 $*"
for cmd in go ip ss curl awk sort; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
if [[ ! -x $node_exporter ]]; then
	echo "run.sh: $node_exporter not found (set NODE_EXPORTER): no node_exporter rows" >&2
	node_exporter=
fi

idle_processes=${IDLE_PROCESSES:-300}
idle_pids=()
cgroup=
ns=tcpadv-bench-$$
tmp=$(mktemp -d /tmp/tcpadv-bench.XXXXXX)
pids=()
pop_fd=

# stop ends every process this script started, by PID: SIGTERM, then
# SIGKILL for those still there after 5 s.
stop() {
	if [[ -n $pop_fd ]]; then
		# The population also leaves when its stdin closes.
		exec {pop_fd}>&-
		pop_fd=
	fi
	((${#pids[@]} > 0)) || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local pid i
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if ((i == 50)); then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop
	if ((${#idle_pids[@]} > 0)); then
		kill "${idle_pids[@]}" 2>/dev/null || true
		wait "${idle_pids[@]}" 2>/dev/null || true
	fi
	ip netns del "$ns" 2>/dev/null || true
	if [[ -n $cgroup ]]; then
		rmdir "$cgroup"/*/ "$cgroup" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { ip netns exec "$ns" "$@"; }

# A host's processes live in cgroups of their own (systemd units), which
# owner attribution names them by: the daemons, the population, the idle
# processes and the scraping curl each get one, under $cgroup, when the
# cgroup v2 hierarchy is there to make them.
cgroup=
cgroup2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [[ -n $cgroup2 ]] && mkdir "$cgroup2/tcpadv-bench-$$.slice" 2>/dev/null; then
	cgroup=$cgroup2/tcpadv-bench-$$.slice
	for unit in tcpadvisor.service population.service idle.service scraper.scope; do
		mkdir "$cgroup/$unit"
	done
else
	echo "run.sh: no writable cgroup v2 hierarchy: every process stays in this script's cgroup" >&2
fi

# in_unit sets $in_unit to the command prefix that runs a command in the
# cgroup UNIT (when there are cgroups): a shell that moves itself there and
# execs the command, so that the PID started in the background is the
# command's.
in_unit() {
	in_unit=()
	# shellcheck disable=SC2016 # expanded by the inner shell
	[[ -z $cgroup ]] || in_unit=(bash -c 'echo $$ >"$0" && exec "$@"' "$cgroup/$1/cgroup.procs")
}

# new_namespace makes a fresh namespace, so that no TIME_WAIT socket of an
# earlier size is left, and sets what the population needs in it.
new_namespace() {
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# A fresh namespace allows 131072 TIME_WAIT sockets (half the
	# established hash) and connect() picks from 32768-60999. With
	# tcp_tw_reuse=2, its default, connect() over loopback recycles
	# TIME_WAIT sockets older than 1 s and eats the population.
	in_ns sysctl -q -w \
		net.ipv4.tcp_max_tw_buckets=$((max_size * 2 > 262144 ? max_size * 2 : 262144)) \
		net.ipv4.ip_local_port_range="$ephemeral_range" \
		net.ipv4.tcp_tw_reuse=0
}

# start runs a command in the namespace in the background, logging to
# $tmp/NAME.log, and records its PID in $last_pid. ip is started directly,
# not through in_ns, and execs the command: the PID is the command's own.
start() {
	local name=$1
	shift
	# nsenter, not ip netns exec, which would remount /sys and hide the
	# cgroup tree from the daemons.
	in_unit tcpadvisor.service
	"${in_unit[@]}" nsenter --net="/run/netns/$ns" -- "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
	last_pid=$!
}

# wait_http waits up to 10 s for a daemon to answer.
wait_http() {
	local pid=$1 url=$2 name=$3 i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -n 5 "$tmp/$name.log")"
		in_ns curl -sf -o /dev/null --max-time 2 "$url" && return 0
		sleep 0.1
	done
	die "$name did not answer on $url within 10 s"
}

# scrape_ms prints how long one scrape of url took, in ms, and writes what
# came to file (default: nowhere).
scrape_ms() {
	local t
	in_unit scraper.scope
	t=$("${in_unit[@]}" ip netns exec "$ns" curl -sf -o "${2:-/dev/null}" --max-time 10 -w '%{time_total}' "$1") || return 1
	awk -v t="$t" 'BEGIN { printf "%.3f\n", t * 1000 }'
}

# ss_ms prints the wall time of `ss -tan -H | wc -l` and the count it gave.
ss_ms() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	in_ns bash -c 't0=$EPOCHREALTIME; n=$(ss -tan -H | wc -l); t1=$EPOCHREALTIME; echo "$t0 $t1 $n"' |
		awk '{ printf "%.3f %d\n", ($2 - $1) * 1000, $3 }'
}

# raw_ms prints the time of one floor dump and its count.
raw_ms() {
	in_ns "$tmp/rawdump" -runs 1 | awk '{ print $1, $3 }'
}

# vm_hwm prints a process's peak RSS in MB.
vm_hwm() {
	awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

echo "building into $tmp" >&2
(cd "$repo" && go build -o "$tmp/tcpadvisor" . &&
	go build -o "$tmp/population" ./bench/population &&
	go build -o "$tmp/rawdump" ./bench/rawdump) || die "build failed"

node_version=
if [[ -n $node_exporter ]]; then
	node_version=$("$node_exporter" --version 2>&1 | awk 'NR == 1 { print $3 }') ||
		die "$node_exporter --version failed"
fi

# tools are run in every round; rows are the table's, which adds the
# sockets collector's own duration, read from the sockets-only scrape.
tools=(floor tcpadvisor tcpadvisor_no_owners tcpadvisor_sockets node ss)
[[ -n $node_exporter ]] || tools=(floor tcpadvisor tcpadvisor_no_owners tcpadvisor_sockets ss)
rows=(floor tcpadvisor connections_collector tcpadvisor_no_owners tcpadvisor_sockets sockets_collector node ss)
[[ -n $node_exporter ]] || rows=(floor tcpadvisor connections_collector tcpadvisor_no_owners tcpadvisor_sockets sockets_collector ss)
declare -A label=(
	[floor]="raw inet_diag dump, v4 + v6 (**the floor**)"
	[tcpadvisor]="tcpadvisor scrape, all collectors, owners on (the default)"
	[tcpadvisor_no_owners]="tcpadvisor scrape, all collectors, \`--no-collector.sockets.owners\`"
	[tcpadvisor_sockets]="tcpadvisor scrape, \`--collector.sockets\` only"
	[sockets_collector]="… of which the sockets collector (its \`collector_duration_seconds\`)"
	[connections_collector]="… of which the connections collector, draining the tracer's maps (its \`collector_duration_seconds\`)"
	[node]="node_exporter $node_version scrape, only \`--collector.tcpstat\`"
	[ss]="\`ss -tan -H \\| wc -l\` (whole process)"
)

samples=$tmp/samples # size tool ms
counts=$tmp/counts   # size tool count
rss=$tmp/rss         # size tool MB
notes=$tmp/notes
: >"$samples"
: >"$counts"
: >"$rss"
: >"$notes"

# run_tool runs one timed run of a tool and records its time and, for the
# floor and ss, the count it gave.
run_tool() {
	local size=$1 tool=$2 out ms count
	case $tool in
	floor) out=$(raw_ms) ;;
	ss) out=$(ss_ms) ;;
	tcpadvisor)
		out=$(scrape_ms "http://127.0.0.1:$tcpadvisor_port/metrics" "$tmp/scrape.metrics")
		awk -v s="$size" '/^tcpadvisor_scrape_collector_duration_seconds\{collector="connections"\}/ { print s, "connections_collector", $NF * 1000 }' \
			"$tmp/scrape.metrics" >>"$samples"
		;;
	tcpadvisor_no_owners) out=$(scrape_ms "http://127.0.0.1:$tcpadvisor_no_owners_port/metrics") ;;
	tcpadvisor_sockets)
		out=$(scrape_ms "http://127.0.0.1:$tcpadvisor_sockets_port/metrics" "$tmp/scrape.metrics")
		awk -v s="$size" '/^tcpadvisor_scrape_collector_duration_seconds\{collector="sockets"\}/ { print s, "sockets_collector", $NF * 1000 }' \
			"$tmp/scrape.metrics" >>"$samples"
		;;
	node) out=$(scrape_ms "http://127.0.0.1:$node_port/metrics") ;;
	esac || die "$tool failed"
	[[ -n $out ]] || die "$tool gave no time"
	read -r ms count <<<"$out"
	echo "$size $tool $ms" >>"$samples"
	[[ -z $count ]] || echo "$size $tool $count" >>"$counts"
}

measure_size() {
	local size=$1 pairs tw adv adv_no_owners adv_sockets node= pop t_start t_ready i r j ready
	echo "size $size: namespace $ns" >&2
	new_namespace

	# The daemons start before the population, so that the time the
	# population lives is spent measuring.
	local extra sockets_only_extra
	read -ra extra <<<"${TCPADVISOR_ARGS:-}"
	# The sockets-only daemon runs without the tracer, whatever the flags.
	sockets_only_extra=("${extra[@]}")
	[[ " ${extra[*]} " == *" --no-collector.connections "* ]] || sockets_only_extra+=(--no-collector.connections)
	start tcpadvisor "$tmp/tcpadvisor" serve --web.listen-address="127.0.0.1:$tcpadvisor_port" "${extra[@]}"
	adv=$last_pid
	start tcpadvisor_no_owners "$tmp/tcpadvisor" serve --web.listen-address="127.0.0.1:$tcpadvisor_no_owners_port" \
		--no-collector.sockets.owners "${extra[@]}"
	adv_no_owners=$last_pid
	start tcpadvisor_sockets "$tmp/tcpadvisor" serve --web.listen-address="127.0.0.1:$tcpadvisor_sockets_port" \
		--no-collector.netstat --no-collector.sockstat --no-collector.sysctl "${sockets_only_extra[@]}"
	adv_sockets=$last_pid
	if [[ -n $node_exporter ]]; then
		start node "$node_exporter" --collector.disable-defaults --collector.tcpstat \
			--web.listen-address="127.0.0.1:$node_port"
		node=$last_pid
	fi
	wait_http "$adv" "http://127.0.0.1:$tcpadvisor_port/metrics" tcpadvisor
	wait_http "$adv_no_owners" "http://127.0.0.1:$tcpadvisor_no_owners_port/metrics" tcpadvisor_no_owners
	wait_http "$adv_sockets" "http://127.0.0.1:$tcpadvisor_sockets_port/metrics" tcpadvisor_sockets
	[[ -z $node ]] || wait_http "$node" "http://127.0.0.1:$node_port/metrics" node

	# 5 % of the sockets are ESTABLISHED, the rest TIME_WAIT.
	pairs=$((size / 40))
	tw=$((size - 2 * pairs))
	rm -f "$tmp/population.in"
	mkfifo "$tmp/population.in"
	t_start=$EPOCHREALTIME
	if [[ ${SHARED_CGROUP:-} == 1 ]]; then
		in_unit idle.service
	else
		in_unit population.service
	fi
	"${in_unit[@]}" ip netns exec "$ns" "$tmp/population" -time-wait "$tw" -established "$pairs" -base-port "$population_base_port" \
		-hold 120s -build-timeout 40s <"$tmp/population.in" >"$tmp/population.out" 2>"$tmp/population.log" &
	pop=$!
	pids+=("$pop")
	exec {pop_fd}>"$tmp/population.in"
	ready=
	for ((i = 0; i < 450; i++)); do
		ready=$(awk '$1 == "ready" { print $2 }' "$tmp/population.out")
		[[ -n $ready ]] && break
		kill -0 "$pop" 2>/dev/null || die "population failed: $(cat "$tmp/population.log")"
		sleep 0.1
	done
	[[ -n $ready ]] || die "population not ready within 45 s"
	t_ready=$EPOCHREALTIME
	echo "size $size: $ready sockets built in $(awk -v a="$t_start" -v b="$t_ready" 'BEGIN { printf "%.1f", b - a }') s" >&2

	# One untimed round: the first scrape of a daemon sizes its tables,
	# and it gives the count each tool sees.
	in_ns curl -sf --max-time 10 "http://127.0.0.1:$tcpadvisor_port/metrics" >"$tmp/tcpadvisor.metrics" ||
		die "tcpadvisor scrape failed"
	in_ns curl -sf -o /dev/null --max-time 10 "http://127.0.0.1:$tcpadvisor_no_owners_port/metrics" ||
		die "tcpadvisor (no owners) scrape failed"
	in_ns curl -sf -o /dev/null --max-time 10 "http://127.0.0.1:$tcpadvisor_sockets_port/metrics" ||
		die "tcpadvisor (sockets only) scrape failed"
	if [[ -n $node ]]; then
		in_ns curl -sf --max-time 10 "http://127.0.0.1:$node_port/metrics" >"$tmp/node.metrics" ||
			die "node_exporter scrape failed"
	fi
	ss_ms >/dev/null
	raw_ms >/dev/null
	local failed
	failed=$(awk -F'"' '/^tcpadvisor_scrape_collector_success\{/ && / 0$/ { printf "%s%s", sep, $2; sep = ", " }' "$tmp/tcpadvisor.metrics")
	if [[ -n $failed ]]; then
		echo "- $size: tcpadvisor collectors failed: $failed. Its log: \`$(awk '/collector failed/ { print; exit }' "$tmp/tcpadvisor.log")\`" >>"$notes"
	fi
	if [[ " ${extra[*]} " != *" --no-collector.connections "* ]] && ! grep -q '^tcpadvisor_tracer_up 1' "$tmp/tcpadvisor.metrics"; then
		echo "- $size: the connection tracer is not up: $(grep '^tcpadvisor_tracer_down_reason' "$tmp/tcpadvisor.metrics" || echo 'no status')" >>"$notes"
	fi
	awk -v s="$size" '/^tcpadvisor_sockets\{/ { n += $NF } END { print s, "tcpadvisor", n }' "$tmp/tcpadvisor.metrics" >>"$counts"
	if [[ -n $node ]]; then
		# Its rx_queued_bytes and tx_queued_bytes "states" are no sockets.
		awk -v s="$size" '/^node_tcp_connection_states\{/ && !/_queued_bytes"/ { n += $NF } END { print s, "node", n }' "$tmp/node.metrics" >>"$counts"
	fi

	# Each round runs every tool once, starting from a different one each
	# time, so that no tool always follows the same other.
	for ((r = 0; r < runs; r++)); do
		for ((j = 0; j < ${#tools[@]}; j++)); do
			run_tool "$size" "${tools[(r + j) % ${#tools[@]}]}"
		done
	done
	local elapsed
	elapsed=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "size $size: measured within $elapsed s of the population's start" >&2
	if awk -v e="$elapsed" -v w="$window" 'BEGIN { exit !(e > w) }'; then
		echo "- $size: measuring ended ${elapsed} s after the population's start, past the ${window} s before TIME_WAIT expires: its numbers are suspect." >>"$notes"
	fi

	echo "$size tcpadvisor $(vm_hwm "$adv")" >>"$rss"
	echo "$size tcpadvisor_no_owners $(vm_hwm "$adv_no_owners")" >>"$rss"
	echo "$size tcpadvisor_sockets $(vm_hwm "$adv_sockets")" >>"$rss"
	[[ -z $node ]] || echo "$size node $(vm_hwm "$node")" >>"$rss"
	stop
}

# A few hundred idle processes, so that owner attribution has a host's
# worth of /proc to read; they end with the script.
for ((i = 0; i < idle_processes; i++)); do
	in_unit idle.service
	"${in_unit[@]}" sleep 600 &
	idle_pids+=($!)
done

for size in "${sizes[@]}"; do
	measure_size "$size"
done

# The allocation benchmark of the sockets collector, when this tree has it.
# go test -c writes no binary for a package without tests.
bench_out=
(cd "$repo" && go test -c -o "$tmp/exporter.test" ./exporter/ >&2) || die "go test -c ./exporter/ failed"
if [[ -x $tmp/exporter.test ]] &&
	(cd "$repo/exporter" && "$tmp/exporter.test" -test.list '^BenchmarkSocketsCollector') | grep -q '^BenchmarkSocketsCollector'; then
	echo "running BenchmarkSocketsCollector" >&2
	new_namespace
	# Run from the package directory, as go test does.
	bench_out=$(cd "$repo/exporter" && in_ns "$tmp/exporter.test" -test.run '^$' \
		-test.bench BenchmarkSocketsCollector -test.benchmem -test.timeout 3m | grep '^Benchmark') ||
		die "BenchmarkSocketsCollector failed"
else
	echo "no BenchmarkSocketsCollector in ./exporter/: skipped" >&2
fi

# median_count prints the median of the counts a tool gave for a size.
median_count() {
	awk -v s="$1" -v t="$2" '$1 == s && $2 == t { print $3 }' "$counts" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# min_median prints the minimum and the median of a tool's times for a size.
min_median() {
	awk -v s="$1" -v t="$2" '$1 == s && $2 == t { print $3 }' "$samples" | sort -g |
		awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m }'
}

mkdir -p "$repo/bench/results"
report=$repo/bench/results/$(date +%F_%H%M%S).md
{
	echo "# tcpadvisor scrape vs the floor, $(date '+%F %H:%M')"
	echo
	echo "Kernel $(uname -r), $(nproc) CPUs, $(go version | awk '{ print $3 }'), tcpadvisor $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)."
	echo "Medians and minima of $runs runs per tool and size, in ms; µs/socket and \"× floor\" from the medians."
	echo "Peak RSS is VmHWM after the runs. Noise is about ±20 %: compare only within this table."
	echo
	echo "| sockets | tool | min ms | median ms | µs/socket | × floor | peak RSS MB |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	for size in "${sizes[@]}"; do
		n=$(median_count "$size" floor)
		read -r _ floor_median <<<"$(min_median "$size" floor)"
		for tool in "${rows[@]}"; do
			read -r mn md <<<"$(min_median "$size" "$tool")"
			r=$(awk -v s="$size" -v t="$tool" '$1 == s && $2 == t { print $3 }' "$rss")
			nums=$(awk -v n="$n" -v mn="$mn" -v md="$md" -v f="$floor_median" \
				'BEGIN { printf "%.1f | %.1f | %.2f | %.2f", mn, md, md * 1000 / n, md / f }')
			echo "| $n | ${label[$tool]} | $nums | ${r:-–} |"
		done
	done
	echo
	echo "Sockets counted (medians): floor, ss, tcpadvisor (sum of \`tcpadvisor_sockets\`), node_exporter (sum of \`node_tcp_connection_states\`):"
	echo
	for size in "${sizes[@]}"; do
		line="- population of $size:"
		for tool in floor ss tcpadvisor node; do
			c=$(median_count "$size" "$tool")
			if [[ -n $c ]]; then
				line+=" $tool $c,"
			fi
		done
		range=$(awk -v s="$size" '$1 == s && $2 == "floor" { if (!n++ || $3 < lo) lo = $3; if ($3 > hi) hi = $3 } END { print lo "-" hi }' "$counts")
		echo "${line%,}; floor range over the runs $range."
	done
	if [[ -s $notes ]]; then
		echo
		cat "$notes"
	fi
	if [[ -n $bench_out ]]; then
		echo
		echo "\`go test -run '^\$' -bench BenchmarkSocketsCollector -benchmem ./exporter/\`, run as the test binary in an empty namespace:"
		echo
		echo '```'
		echo "$bench_out"
		echo '```'
	fi
} | tee "$report"
echo "written to $report" >&2
