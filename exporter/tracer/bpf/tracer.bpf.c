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

/* socket_cgroup returns the ID of the cgroup v2 the socket was created in
 * (what sock_diag reports as INET_DIAG_CGROUP_ID), or the current task's
 * where the kernel keeps no cgroup in sockets. */
static __always_inline __u64 socket_cgroup(struct sock *sk)
{
	if (bpf_core_field_exists(sk->sk_cgrp_data)) {
		__u64 id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
		if (id)
			return id;
	}
	return bpf_get_current_cgroup_id();
}

static __always_inline void fill_addresses(struct outbound_key *key, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&key->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&key->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		key->saddr[10] = 0xff;
		key->saddr[11] = 0xff;
		key->daddr[10] = 0xff;
		key->daddr[11] = 0xff;
		BPF_CORE_READ_INTO((__u32 *)&key->saddr[12], sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)&key->daddr[12], sk, __sk_common.skc_daddr);
	}
	key->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
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

/* outbound_key_of keys a connection by its destination and its opener, as
 * recorded at connect(); a socket with no record keeps an empty comm, which
 * userspace reports as unknown. */
static __always_inline void outbound_key_of(struct outbound_key *key, struct sock *sk, __u32 netns, struct socket_info *info)
{
	fill_addresses(key, sk);
	key->netns = netns;
	if (info) {
		key->cgroup = info->cgroup;
		__builtin_memcpy(key->comm, info->comm, sizeof(key->comm));
	} else {
		key->cgroup = socket_cgroup(sk);
	}
}

/* local_port returns the socket's local port. It reads inet_sport, as the
 * tracepoint's own sport field does: the kernel releases the port, clearing
 * skc_num, before it sets CLOSE, but leaves inet_sport. */
static __always_inline __u16 local_port(struct sock *sk)
{
	return __builtin_bswap16(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline enum failure failure_of(struct sock *sk)
{
	/* connect() found no free source port: the kernel sets the socket
	 * to CLOSE before it ever holds one. */
	if (local_port(sk) == 0)
		return FAILURE_EADDRNOTAVAIL;
	switch (BPF_CORE_READ(sk, sk_err)) {
	case ECONNREFUSED:
		return FAILURE_ECONNREFUSED;
	case ETIMEDOUT:
		return FAILURE_ETIMEDOUT;
	case ENETUNREACH:
		return FAILURE_ENETUNREACH;
	case EHOSTUNREACH:
		return FAILURE_EHOSTUNREACH;
	default:
		return FAILURE_OTHER;
	}
}

static __always_inline void on_connect(struct sock *sk, __u64 skaddr, __u32 netns)
{
	/* CLOSE -> SYN_SENT runs in connect(), in the connecting process. */
	struct socket_info info = {
		.cgroup = socket_cgroup(sk),
		.netns = netns,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino),
		.outbound = 1,
	};
	bpf_get_current_comm(&info.comm, sizeof(info.comm));
	bpf_map_update_elem(&sockets, &skaddr, &info, BPF_ANY);
}

static __always_inline void on_connected(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	struct outbound_key key = {};
	outbound_key_of(&key, sk, netns, info);
	struct outbound_counts *c = outbound_counts_of(&key);
	if (c)
		__sync_fetch_and_add(&c->opened, 1);
	if (info)
		info->established_ns = bpf_ktime_get_ns();
}

static __always_inline void on_connect_failed(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	struct outbound_key key = {};
	outbound_key_of(&key, sk, netns, info);
	enum failure failure = failure_of(sk);
	struct outbound_counts *c = outbound_counts_of(&key);
	if (c && failure < NUM_FAILURES)
		__sync_fetch_and_add(&c->failed[failure], 1);
	bpf_map_delete_elem(&sockets, &skaddr);
}

static __always_inline void on_accepted(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct inbound_key key = {
		.netns = netns,
		.port = local_port(sk),
	};
	struct inbound_counts *c = inbound_counts_of(&key);
	if (c)
		__sync_fetch_and_add(&c->accepted, 1);
	struct socket_info info = {
		.established_ns = bpf_ktime_get_ns(),
		.cgroup = socket_cgroup(sk),
		.netns = netns,
	};
	bpf_map_update_elem(&sockets, &skaddr, &info, BPF_ANY);
}

static __always_inline void on_closed(struct sock *sk, __u64 skaddr, __u32 netns, enum closer closer)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	if (!info || !info->established_ns) {
		count_event(EVENT_UNTRACKED_CLOSE);
		return;
	}
	__u64 lifetime = bpf_ktime_get_ns() - info->established_ns;
	if (info->outbound) {
		struct outbound_key key = {};
		outbound_key_of(&key, sk, netns, info);
		struct outbound_counts *c = outbound_counts_of(&key);
		if (c && closer < NUM_CLOSERS) {
			__sync_fetch_and_add(&c->closed[closer], 1);
			__sync_fetch_and_add(&c->lifetime_ns, lifetime);
			__sync_fetch_and_add(&c->lifetimes, 1);
		}
	} else {
		struct inbound_key key = {
			.netns = netns,
			.port = local_port(sk),
		};
		struct inbound_counts *c = inbound_counts_of(&key);
		if (c && closer < NUM_CLOSERS) {
			__sync_fetch_and_add(&c->closed[closer], 1);
			__sync_fetch_and_add(&c->lifetime_ns, lifetime);
			__sync_fetch_and_add(&c->lifetimes, 1);
		}
	}
	bpf_map_delete_elem(&sockets, &skaddr);
}

static __always_inline int on_state_change(struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (target_netns && netns != target_netns)
		return 0;
	__u64 skaddr = (__u64)sk;

	switch (oldstate) {
	case TCP_CLOSE:
		if (newstate == TCP_SYN_SENT)
			on_connect(sk, skaddr, netns);
		break;
	case TCP_SYN_SENT:
		if (newstate == TCP_ESTABLISHED)
			on_connected(sk, skaddr, netns);
		else if (newstate == TCP_CLOSE)
			on_connect_failed(sk, skaddr, netns);
		break;
	case TCP_SYN_RECV:
		if (newstate == TCP_ESTABLISHED)
			on_accepted(sk, skaddr, netns);
		else if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&sockets, &skaddr);
		break;
	case TCP_ESTABLISHED:
		if (newstate == TCP_FIN_WAIT1)
			on_closed(sk, skaddr, netns, CLOSED_LOCAL);
		else if (newstate == TCP_CLOSE_WAIT)
			on_closed(sk, skaddr, netns, CLOSED_PEER);
		else if (newstate == TCP_CLOSE)
			on_closed(sk, skaddr, netns, CLOSED_RESET);
		break;
	}
	return 0;
}

/* The BTF-enabled raw tracepoint (kernel 5.5 on), preferred. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_btf, struct sock *sk, int oldstate, int newstate)
{
	return on_state_change(sk, oldstate, newstate);
}

/* The plain raw tracepoint, for kernels where tp_btf does not load. */
SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_raw, struct sock *sk, int oldstate, int newstate)
{
	return on_state_change(sk, oldstate, newstate);
}
