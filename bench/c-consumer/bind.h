/* Records and settings shared by the C baseline's BPF programs (bind.bpf.c) and its user-space
 * consumer (consumer.c). The record is laid out byte for byte like the agent's BindEvent
 * (ebpf/common/src/records.rs): a 40-byte header, then ret/fd/addrlen/pad and 112 bytes of
 * sockaddr: 168 bytes in all, so both ring buffers carry the same bytes per event. */
#ifndef BENCH_BIND_H
#define BENCH_BIND_H

#define COMM_LEN 16
#define SOCKADDR_LEN 112
#define KIND_BIND 1
#define FLAG_ADDR_UNREADABLE (1u << 1)
#define DROP_SLOTS 3
#define DROP_BIND 0

/* Wake-up policies (rodata `wake_mode`). */
#define WAKE_DEFAULT 0 /* bpf_ringbuf_submit(.., 0): the kernel wakes when the reader caught up */
#define WAKE_BATCHED 1 /* no wake-up unless the ring passed `wake_bytes` or `wake_ns` went by */

struct event_header {
	__u32 kind;
	__u32 flags;
	__u64 ts_ns;
	__u32 pid;
	__u32 tgid;
	char comm[COMM_LEN];
};

struct bind_event {
	struct event_header header;
	__s32 ret;
	__s32 fd;
	__u32 addrlen;
	__u32 pad;
	__u8 addr[SOCKADDR_LEN];
};

struct pending_bind {
	__s32 fd;
	__u32 addrlen;
	__u32 flags;
	__u32 pad;
	__u8 addr[SOCKADDR_LEN];
};

_Static_assert(sizeof(struct event_header) == 40, "header layout");
_Static_assert(sizeof(struct bind_event) == 168, "record layout");
_Static_assert(sizeof(struct pending_bind) == 128, "pending layout");

#endif
