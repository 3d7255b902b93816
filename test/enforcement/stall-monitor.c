/*
 * The enforcement tier's stall monitor, run INSIDE the VM at SCHED_FIFO (see stall-monitor.ts,
 * which builds it on the host with `cc` and starts it). It sleeps to absolute deadlines PERIOD
 * apart and prints every wake-up at least LATE late as "<CLOCK_MONOTONIC ns due> <ns late>".
 * It is C, not node: on the guest's 125 MIPS instruction clock a node timer loop waking every
 * 10 ms cost so much that, at real-time priority, it starved the lab (the API never started in
 * 400 guest seconds).
 *
 *   stall-monitor <period ns> <late ns>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t ns_of(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec; }

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <period ns> <late ns>\n", argv[0]);
		return 2;
	}
	const int64_t period = atoll(argv[1]), late_ns = atoll(argv[2]);
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	int64_t due = ns_of(&t) + period;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		struct timespec d = { .tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL) != 0)
			; /* EINTR: sleep on to the same deadline */
		clock_gettime(CLOCK_MONOTONIC, &t);
		const int64_t woke = ns_of(&t), late = woke - due;
		if (late >= late_ns)
			printf("%lld %lld\n", (long long)due, (long long)late);
		/* The next deadline from now when late: one stall is one line, not a train of late ticks. */
		due = (late >= late_ns ? woke : due) + period;
	}
}
