/* The C baseline's BPF side: the same kernel work as the agent's bind probes
 * (ebpf/probes/src/bind.rs), written the plain libbpf way. sys_enter_bind copies the caller's
 * sockaddr (112 bytes, falling back to 28 then 16 when the longer read faults) into an LRU hash
 * keyed by pid_tgid; sys_exit_bind pairs it with the result, reserves a 168-byte record in the
 * ring buffer, fills it straight from the map value and submits it; a failed reserve is
 * counted per CPU. Syscall arguments are read straight from the tracepoint context at the
 * syscall tracepoints' fixed layout (the verifier allows no computed context offsets; the
 * loader checks that layout against tracefs and refuses to run if it differs).
 *
 * `wake_mode` selects the notification policy measured by the bench: the kernel's default, or
 * "batched" (no wake-up unless the ring holds `wake_bytes` or `wake_ns` passed since the last
 * wake-up; `last_wake_ns` is shared with user space, which uses it to know when it may sleep
 * without a timeout). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "bind.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile __u32 wake_mode = WAKE_DEFAULT;
const volatile __u64 wake_bytes = 1 << 30;
const volatile __u64 wake_ns = 50000000;

/* CLOCK_MONOTONIC of the last forced wake-up (WAKE_BATCHED). */
__u64 last_wake_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* set by the loader */
} c_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending_bind);
} c_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} c_drops SEC(".maps");

/* syscalls:sys_enter_* / sys_exit_*: 8 bytes of common fields, __syscall_nr, then 64-bit words. */
struct sys_enter_ctx {
	__u64 common;
	__s32 nr;
	__s32 pad;
	__u64 args[6];
};

struct sys_exit_ctx {
	__u64 common;
	__s32 nr;
	__s32 pad;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_bind")
int c_bind_enter(struct sys_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending_bind p = {};
	const void *uaddr;

	p.fd = (__s32)ctx->args[0];
	uaddr = (const void *)ctx->args[1];
	p.addrlen = (__u32)ctx->args[2];
	if (bpf_probe_read_user(p.addr, SOCKADDR_LEN, uaddr)) {
		__builtin_memset(p.addr, 0, SOCKADDR_LEN);
		if (bpf_probe_read_user(p.addr, 28, uaddr)) {
			__builtin_memset(p.addr, 0, SOCKADDR_LEN);
			if (bpf_probe_read_user(p.addr, 16, uaddr))
				p.flags |= FLAG_ADDR_UNREADABLE;
		}
	}
	bpf_map_update_elem(&c_pending, &id, &p, BPF_ANY);
	return 0;
}

static __always_inline __u64 wake_flag(__u64 now)
{
	if (wake_mode != WAKE_BATCHED)
		return 0;
	if (now - last_wake_ns >= wake_ns ||
	    bpf_ringbuf_query(&c_events, BPF_RB_AVAIL_DATA) >= wake_bytes) {
		last_wake_ns = now;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int c_bind_exit(struct sys_exit_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending_bind *p = bpf_map_lookup_elem(&c_pending, &id);
	struct bind_event *e;
	__u64 now;

	if (!p)
		return 0;
	e = bpf_ringbuf_reserve(&c_events, sizeof(*e), 0);
	if (!e) {
		__u32 slot = DROP_BIND;
		__u64 *n = bpf_map_lookup_elem(&c_drops, &slot);

		if (n)
			*n += 1;
		bpf_map_delete_elem(&c_pending, &id);
		return 0;
	}
	now = bpf_ktime_get_ns();
	e->header.kind = KIND_BIND;
	e->header.flags = p->flags;
	e->header.ts_ns = now;
	e->header.pid = (__u32)id;
	e->header.tgid = id >> 32;
	bpf_get_current_comm(e->header.comm, COMM_LEN);
	e->ret = (__s32)ctx->ret;
	e->fd = p->fd;
	e->addrlen = p->addrlen;
	e->pad = 0;
	__builtin_memcpy(e->addr, p->addr, SOCKADDR_LEN);
	bpf_ringbuf_submit(e, wake_flag(now));
	bpf_map_delete_elem(&c_pending, &id);
	return 0;
}
