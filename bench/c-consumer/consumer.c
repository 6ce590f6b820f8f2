/* The C baseline's user space: loads bind.bpf.o through its bpftool skeleton, sizes the ring
 * buffer, checks the tracepoint layout the programs assume against tracefs, attaches both
 * programs and counts records with ring_buffer__poll until SIGINT/SIGTERM; then drains once
 * more and prints `records N ours U bad B drops D polls P` (ours: records from the `bindgen`
 * load generator). With --wake batched it sleeps without a timeout only when no wake-up was
 * forced in the last --wake-ns (see bind.bpf.c), so nothing submitted without a wake-up waits
 * longer than that.
 *
 *   consumer [--ring BYTES] [--wake default|batched] [--wake-ns NS] [--wake-bytes BYTES]
 *
 * Prints `ready` on stdout once attached. No third-party code; libbpf is Debian's libbpf-dev. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "bind.h"
#include "bind.skel.h"

static volatile sig_atomic_t stopping;
static unsigned long long records, ours, bad, polls;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int on_record(void *ctx, void *data, size_t len)
{
	const struct bind_event *e = data;

	(void)ctx;
	if (len < sizeof(*e) || e->header.kind != KIND_BIND)
		bad++;
	else
		records++;
	if (!strncmp(e->header.comm, "bindgen", COMM_LEN))
		ours++;
	return 0;
}

/* Offset of field `name` in tracepoint `event`'s format file, or -1. */
static long field_offset(const char *event, const char *name)
{
	static const char *roots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
	char path[256], line[512], want[64];
	long off = -1;
	FILE *f = NULL;

	for (size_t i = 0; i < 2 && !f; i++) {
		snprintf(path, sizeof(path), "%s/events/syscalls/%s/format", roots[i], event);
		f = fopen(path, "r");
	}
	if (!f)
		return -1;
	snprintf(want, sizeof(want), " %s;", name);
	while (fgets(line, sizeof(line), f)) {
		char *o = strstr(line, "offset:");
		if (strstr(line, "field:") && strstr(line, want) && o) {
			off = strtol(o + 7, NULL, 10);
			break;
		}
	}
	fclose(f);
	return off;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: consumer [--ring BYTES] [--wake default|batched] "
			"[--wake-ns NS] [--wake-bytes BYTES]\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long ring = 65536;
	unsigned long long wake_ns = 50000000ull, wake_bytes = 0;
	int batched = 0, err;
	struct bind_bpf *skel;
	struct ring_buffer *rb;
	long o[4];

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--ring"))
			ring = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--wake"))
			batched = !strcmp(argv[++i], "batched");
		else if (!strcmp(argv[i], "--wake-ns"))
			wake_ns = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--wake-bytes"))
			wake_bytes = strtoull(argv[++i], NULL, 0);
		else
			return usage();
	}
	if (!wake_bytes)
		wake_bytes = ring / 4;
	o[0] = field_offset("sys_enter_bind", "fd");
	o[1] = field_offset("sys_enter_bind", "umyaddr");
	o[2] = field_offset("sys_enter_bind", "addrlen");
	o[3] = field_offset("sys_exit_bind", "ret");
	if (o[0] != 16 || o[1] != 24 || o[2] != 32 || o[3] != 16) {
		fprintf(stderr, "consumer: bind tracepoint layout is not fd@16 umyaddr@24 addrlen@32 "
				"ret@16 (tracefs says %ld %ld %ld %ld)\n", o[0], o[1], o[2], o[3]);
		return 1;
	}

	skel = bind_bpf__open();
	if (!skel) {
		fprintf(stderr, "consumer: open: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->wake_mode = batched ? WAKE_BATCHED : WAKE_DEFAULT;
	skel->rodata->wake_ns = wake_ns;
	skel->rodata->wake_bytes = wake_bytes;
	bpf_map__set_max_entries(skel->maps.c_events, ring);
	err = bind_bpf__load(skel);
	if (!err)
		err = bind_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "consumer: load/attach: %s\n", strerror(-err));
		bind_bpf__destroy(skel);
		return 1;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.c_events), on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "consumer: ring_buffer__new: %s\n", strerror(errno));
		bind_bpf__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready\n");
	fflush(stdout);

	while (!stopping) {
		int timeout = -1;

		if (batched) {
			/* Read the last forced wake-up before draining: a record submitted after
			 * this drain without a wake-up implies a newer wake-up, which epoll keeps. */
			__u64 last = skel->bss->last_wake_ns, now = mono_ns();

			ring_buffer__consume(rb);
			if (now - last < wake_ns)
				timeout = (int)((last + wake_ns - now) / 1000000) + 1;
		}
		polls++;
		err = ring_buffer__poll(rb, timeout);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "consumer: poll: %s\n", strerror(-err));
			break;
		}
	}
	ring_buffer__consume(rb);

	unsigned long long drops = 0;
	int ncpu = libbpf_num_possible_cpus();
	__u64 *per_cpu = calloc(ncpu > 0 ? ncpu : 1, sizeof(__u64));
	__u32 slot = DROP_BIND;

	if (per_cpu && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.c_drops), &slot, per_cpu))
		for (int i = 0; i < ncpu; i++)
			drops += per_cpu[i];
	free(per_cpu);
	printf("records %llu ours %llu bad %llu drops %llu polls %llu\n", records, ours, bad, drops,
	       polls);
	ring_buffer__free(rb);
	bind_bpf__destroy(skel);
	return 0;
}
