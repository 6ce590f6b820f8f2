/* The bench's load: bind() calls at a steady rate (or flat out) from one thread, each on a
 * fresh UDP socket (socket, bind 127.0.0.1:0, close), like a service starting; with MODE
 * `rebind`, bind() again and again on one bound socket (each fails with EINVAL, which the
 * probes record like any other bind: a cheaper call, so the consumers see higher rates). Paces in 1 ms
 * steps with clock_nanosleep; stops by itself after COUNT calls. Prints
 * `calls N failed F secs S rate R cpu_ns_per_call C` (C: this process's user+system time per loop,
 * which includes what the attached probes cost it).
 *
 *   bindgen COUNT [RATE_PER_S [fresh|rebind]]    (RATE 0 or absent: as fast as possible) */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	unsigned long count, rate, done = 0, failed = 0;
	int rebind, one = -1;
	struct timespec next;
	double t0, c0, secs;

	if (argc < 2) {
		fprintf(stderr, "usage: bindgen COUNT [RATE_PER_S [fresh|rebind]]\n");
		return 2;
	}
	count = strtoul(argv[1], NULL, 0);
	rate = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
	rebind = argc > 3 && !strcmp(argv[3], "rebind");
	if (rebind) {
		one = socket(AF_INET, SOCK_DGRAM, 0);
		if (one < 0 || bind(one, (struct sockaddr *)&a, sizeof(a))) {
			perror("bindgen: socket");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	t0 = now_s();
	c0 = cpu_s();
	while (done < count) {
		/* One 1 ms step's worth of calls, then sleep to the step's end. */
		unsigned long step = rate ? (rate + 999) / 1000 : count;

		for (unsigned long i = 0; i < step && done < count; i++, done++) {
			if (rebind) {
				bind(one, (struct sockaddr *)&a, sizeof(a)); /* EINVAL: already bound */
				continue;
			}
			int s = socket(AF_INET, SOCK_DGRAM, 0);

			if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)))
				failed++;
			if (s >= 0)
				close(s);
		}
		if (rate) {
			next.tv_nsec += 1000000;
			if (next.tv_nsec >= 1000000000) {
				next.tv_nsec -= 1000000000;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
	}
	secs = now_s() - t0;
	printf("calls %lu failed %lu secs %.3f rate %.0f cpu_ns_per_call %.0f\n", done, failed, secs,
	       done / secs, (cpu_s() - c0) * 1e9 / done);
	return 0;
}
