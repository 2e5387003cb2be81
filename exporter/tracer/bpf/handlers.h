/* The tracer's handlers, included twice by tracer.bpf.c: once with direct
 * reads of the socket for the tp_btf program, once with bpf_probe_read_kernel
 * (BPF_CORE_READ) for the raw tracepoint program. READ(src, a, b, ...) reads
 * src->a->b..., READ_INTO(dst, src, a, ...) copies it into *dst, and FN(name)
 * names each function apart for each program. */

/* socket_cgroup returns the ID of the cgroup v2 the socket was created in
 * (what sock_diag reports as INET_DIAG_CGROUP_ID), or the current task's
 * where the kernel keeps no cgroup in sockets. */
static __always_inline __u64 FN(socket_cgroup)(struct sock *sk)
{
	if (bpf_core_field_exists(sk->sk_cgrp_data)) {
		__u64 id = READ(sk, sk_cgrp_data.cgroup, kn, id);
		if (id)
			return id;
	}
	return bpf_get_current_cgroup_id();
}

static __always_inline void FN(fill_addresses)(struct outbound_key *key, struct sock *sk)
{
	__u16 family = READ(sk, __sk_common.skc_family);
	if (family == AF_INET6) {
		READ_INTO(&key->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		READ_INTO(&key->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		key->saddr[10] = 0xff;
		key->saddr[11] = 0xff;
		key->daddr[10] = 0xff;
		key->daddr[11] = 0xff;
		READ_INTO((__u32 *)&key->saddr[12], sk, __sk_common.skc_rcv_saddr);
		READ_INTO((__u32 *)&key->daddr[12], sk, __sk_common.skc_daddr);
	}
	key->dport = __builtin_bswap16(READ(sk, __sk_common.skc_dport));
}

/* outbound_key_of keys a connection by its destination and its opener, as
 * recorded at connect(); a socket with no record keeps an empty comm, which
 * userspace reports as unknown. */
static __always_inline void FN(outbound_key_of)(struct outbound_key *key, struct sock *sk, __u32 netns, struct socket_info *info)
{
	FN(fill_addresses)(key, sk);
	key->netns = netns;
	if (info) {
		key->cgroup = info->cgroup;
		__builtin_memcpy(key->comm, info->comm, sizeof(key->comm));
	} else {
		key->cgroup = FN(socket_cgroup)(sk);
	}
}

/* local_port returns the socket's local port. It reads inet_sport, as the
 * tracepoint's own sport field does: the kernel releases the port, clearing
 * skc_num, before it sets CLOSE, but leaves inet_sport. */
static __always_inline __u16 FN(local_port)(struct sock *sk)
{
	/* Read through the helper in both programs: inet_sport lies past
	 * struct sock, where the verifier lets no direct load of a sock
	 * pointer reach. */
	return __builtin_bswap16(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline enum failure FN(failure_of)(struct sock *sk)
{
	/* connect() found no free source port: the kernel sets the socket
	 * to CLOSE before it ever holds one. */
	if (FN(local_port)(sk) == 0)
		return FAILURE_EADDRNOTAVAIL;
	switch (READ(sk, sk_err)) {
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

static __always_inline void FN(on_connect)(struct sock *sk, __u64 skaddr, __u32 netns)
{
	/* CLOSE -> SYN_SENT runs in connect(), in the connecting process. */
	struct socket_info info = {
		.cgroup = FN(socket_cgroup)(sk),
		.netns = netns,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.inode = READ(sk, sk_socket, file, f_inode, i_ino),
		.outbound = 1,
	};
	bpf_get_current_comm(&info.comm, sizeof(info.comm));
	bpf_map_update_elem(&sockets, &skaddr, &info, BPF_ANY);
}

static __always_inline void FN(on_connected)(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	struct outbound_key key = {};
	FN(outbound_key_of)(&key, sk, netns, info);
	struct outbound_counts *c = outbound_counts_of(&key);
	if (c)
		__sync_fetch_and_add(&c->opened, 1);
	if (info)
		info->established_ns = bpf_ktime_get_ns();
}

static __always_inline void FN(on_connect_failed)(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	struct outbound_key key = {};
	FN(outbound_key_of)(&key, sk, netns, info);
	enum failure failure = FN(failure_of)(sk);
	struct outbound_counts *c = outbound_counts_of(&key);
	if (c && failure < NUM_FAILURES)
		__sync_fetch_and_add(&c->failed[failure], 1);
	bpf_map_delete_elem(&sockets, &skaddr);
}

static __always_inline void FN(on_accepted)(struct sock *sk, __u64 skaddr, __u32 netns)
{
	struct inbound_key key = {
		.netns = netns,
		.port = FN(local_port)(sk),
	};
	struct inbound_counts *c = inbound_counts_of(&key);
	if (c)
		__sync_fetch_and_add(&c->accepted, 1);
	/* No cgroup: inbound counts are keyed by port alone. */
	struct socket_info info = {
		.established_ns = bpf_ktime_get_ns(),
		.netns = netns,
	};
	bpf_map_update_elem(&sockets, &skaddr, &info, BPF_ANY);
}

static __always_inline void FN(on_closed)(struct sock *sk, __u64 skaddr, __u32 netns, enum closer closer)
{
	struct socket_info *info = bpf_map_lookup_elem(&sockets, &skaddr);
	if (!info || !info->established_ns) {
		count_event(EVENT_UNTRACKED_CLOSE);
		return;
	}
	__u64 lifetime = bpf_ktime_get_ns() - info->established_ns;
	if (info->outbound) {
		struct outbound_key key = {};
		FN(outbound_key_of)(&key, sk, netns, info);
		struct outbound_counts *c = outbound_counts_of(&key);
		if (c && closer < NUM_CLOSERS) {
			__sync_fetch_and_add(&c->closed[closer], 1);
			__sync_fetch_and_add(&c->lifetime_ns, lifetime);
			__sync_fetch_and_add(&c->lifetimes, 1);
		}
	} else {
		struct inbound_key key = {
			.netns = netns,
			.port = FN(local_port)(sk),
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

static __always_inline int FN(on_state_change)(struct sock *sk, int oldstate, int newstate)
{
	if (!counted(oldstate, newstate))
		return 0;
	if (READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u32 netns = READ(sk, __sk_common.skc_net.net, ns.inum);
	if (target_netns && netns != target_netns)
		return 0;
	__u64 skaddr = (__u64)sk;

	switch (oldstate) {
	case TCP_CLOSE:
		if (newstate == TCP_SYN_SENT)
			FN(on_connect)(sk, skaddr, netns);
		break;
	case TCP_SYN_SENT:
		if (newstate == TCP_ESTABLISHED)
			FN(on_connected)(sk, skaddr, netns);
		else if (newstate == TCP_CLOSE)
			FN(on_connect_failed)(sk, skaddr, netns);
		break;
	case TCP_SYN_RECV:
		if (newstate == TCP_ESTABLISHED)
			FN(on_accepted)(sk, skaddr, netns);
		else if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&sockets, &skaddr);
		break;
	case TCP_ESTABLISHED:
		if (newstate == TCP_FIN_WAIT1)
			FN(on_closed)(sk, skaddr, netns, CLOSED_LOCAL);
		else if (newstate == TCP_CLOSE_WAIT)
			FN(on_closed)(sk, skaddr, netns, CLOSED_PEER);
		else if (newstate == TCP_CLOSE)
			FN(on_closed)(sk, skaddr, netns, CLOSED_RESET);
		break;
	}
	return 0;
}
