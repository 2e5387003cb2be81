// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* The connection tracer: one program on sock:inet_sock_set_state, which sees
 * every state change of every full TCP socket of every network namespace,
 * counts what each change means (opened, failed with which errno, accepted,
 * closed first by which side, how long it lived) in fixed-size hash maps
 * keyed by namespace, cgroup, process and destination or service port, and
 * never wakes userspace: the exporter drains the maps at each scrape.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* TCP states, as include/net/tcp_states.h numbers them. */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8

#define EADDRNOTAVAIL 99
#define ENETUNREACH 101
#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define EHOSTUNREACH 113

/* Indexes of conn_counts.failed: the errno of a failed connect(). */
enum failure {
	FAILURE_EADDRNOTAVAIL,
	FAILURE_ECONNREFUSED,
	FAILURE_ETIMEDOUT,
	FAILURE_ENETUNREACH,
	FAILURE_EHOSTUNREACH,
	FAILURE_OTHER,
	NUM_FAILURES,
};

/* Indexes of the closed counters: who ended an established connection. */
enum closer {
	/* ESTABLISHED -> FIN_WAIT1: this host closed first, and holds the
	 * TIME_WAIT. */
	CLOSED_LOCAL,
	/* ESTABLISHED -> CLOSE_WAIT: the peer closed first. */
	CLOSED_PEER,
	/* ESTABLISHED -> CLOSE: reset, sent or received. */
	CLOSED_RESET,
	NUM_CLOSERS,
};

/* Indexes of the events map: what the tracer could not count in full. */
enum event {
	/* A change whose outbound key did not fit in the outbound map: it
	 * was counted in outbound_overflow. */
	EVENT_OUTBOUND_FULL,
	/* Same, for the inbound map and inbound_overflow. */
	EVENT_INBOUND_FULL,
	/* An established connection ended that was opened or accepted
	 * before the tracer started, or whose entry the sockets map
	 * evicted: no direction, owner or lifetime is known. */
	EVENT_UNTRACKED_CLOSE,
	NUM_EVENTS,
};

/* What is known of a live socket since its connect() or accept. */
struct socket_info {
	__u64 established_ns;
	__u64 cgroup;
	__u32 netns;
	__u32 tgid;
	char comm[16];
	/* The socket's inode number, as sock_diag and /proc/PID/fd show it;
	 * 0 for an accepted one, which has none yet. */
	__u32 inode;
	__u8 outbound;
	__u8 pad[3];
};

/* An outbound destination and the owner of the connections toward it.
 * Addresses are IPv6, IPv4 ones mapped (::ffff:a.b.c.d). */
struct outbound_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 cgroup;
	__u32 netns;
	__u16 dport;
	__u16 pad;
	char comm[16];
};

struct outbound_counts {
	__u64 opened;
	__u64 failed[NUM_FAILURES];
	__u64 closed[NUM_CLOSERS];
	__u64 lifetime_ns;
	__u64 lifetimes;
};

/* A local service port, for connections accepted on it. */
struct inbound_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

struct inbound_counts {
	__u64 accepted;
	__u64 closed[NUM_CLOSERS];
	__u64 lifetime_ns;
	__u64 lifetimes;
};

/* Set by the loader: the network namespace to trace (its inode number), or
 * 0 for every one. */
volatile const __u32 target_netns = 0;

/* Sizes are the loader's defaults; it may set others before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	/* LRU lists of each CPU's own: no lock shared by every CPU on each
	 * connect() and accept. */
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u64);
	__type(value, struct socket_info);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct outbound_key);
	__type(value, struct outbound_counts);
} outbound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct inbound_key);
	__type(value, struct inbound_counts);
} inbound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct outbound_counts);
} outbound_overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inbound_counts);
} inbound_overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NUM_EVENTS);
	__type(key, __u32);
	__type(value, __u64);
} events SEC(".maps");

static __always_inline void count_event(__u32 event)
{
	__u64 *n = bpf_map_lookup_elem(&events, &event);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* outbound_counts_of returns the counters of key, made if new, or the
 * overflow counters when the map is full. */
static __always_inline struct outbound_counts *outbound_counts_of(struct outbound_key *key)
{
	struct outbound_counts *c = bpf_map_lookup_elem(&outbound, key);
	if (c)
		return c;
	struct outbound_counts zero = {};
	/* EEXIST means another CPU made it meanwhile: use that one. */
	bpf_map_update_elem(&outbound, key, &zero, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&outbound, key);
	if (c)
		return c;
	count_event(EVENT_OUTBOUND_FULL);
	__u32 zero_index = 0;
	return bpf_map_lookup_elem(&outbound_overflow, &zero_index);
}

static __always_inline struct inbound_counts *inbound_counts_of(struct inbound_key *key)
{
	struct inbound_counts *c = bpf_map_lookup_elem(&inbound, key);
	if (c)
		return c;
	struct inbound_counts zero = {};
	bpf_map_update_elem(&inbound, key, &zero, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&inbound, key);
	if (c)
		return c;
	count_event(EVENT_INBOUND_FULL);
	__u32 zero_index = 0;
	return bpf_map_lookup_elem(&inbound_overflow, &zero_index);
}

/* counted tells the changes the tracer counts; about half of a connection's
 * changes (FIN_WAIT1 -> FIN_WAIT2, CLOSE_WAIT -> LAST_ACK, ...) are not,
 * and return before any read of the socket. */
static __always_inline bool counted(int oldstate, int newstate)
{
	switch (oldstate) {
	case TCP_CLOSE:
		return newstate == TCP_SYN_SENT;
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
		return newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE;
	case TCP_ESTABLISHED:
		return newstate == TCP_FIN_WAIT1 || newstate == TCP_CLOSE_WAIT || newstate == TCP_CLOSE;
	default:
		return false;
	}
}

/* The BTF-enabled raw tracepoint (kernel 5.5 on), preferred: its sk is a
 * kernel pointer the verifier knows, read with plain (relocated) loads. */
#define READ(...) ___arrow(__VA_ARGS__)
#define READ_INTO(dst, ...) __builtin_memcpy((dst), &___arrow(__VA_ARGS__), sizeof(*(dst)))
#define FN(name) name##_btf
#include "handlers.h"
#undef READ
#undef READ_INTO
#undef FN

/* The plain raw tracepoint, for kernels where tp_btf does not load: its sk
 * is a number, read through bpf_probe_read_kernel. */
#define READ(...) BPF_CORE_READ(__VA_ARGS__)
#define READ_INTO(dst, ...) BPF_CORE_READ_INTO((dst), __VA_ARGS__)
#define FN(name) name##_raw
#include "handlers.h"
#undef READ
#undef READ_INTO
#undef FN

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_btf, struct sock *sk, int oldstate, int newstate)
{
	return on_state_change_btf(sk, oldstate, newstate);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_raw, struct sock *sk, int oldstate, int newstate)
{
	return on_state_change_raw(sk, oldstate, newstate);
}
