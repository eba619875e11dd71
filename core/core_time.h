/*
 * core_time.h — the monotonic clock the core's deadlines are measured on: now in ns/ms, an absolute
 * deadline for pthread_cond_timedwait, and condition variables that wait on that clock (so a wall-clock
 * step never stretches or cuts a wait).
 */
#ifndef HIENODE_CORE_TIME_H
#define HIENODE_CORE_TIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t hie_mono_ns(void);
int64_t hie_mono_ms(void);

/* *ts = now + ms (ms >= 0) on CLOCK_MONOTONIC. */
void hie_deadline_after(struct timespec *ts, int ms);

/* Milliseconds from now until the CLOCK_MONOTONIC deadline (negative once it has passed). */
long hie_ms_until(const struct timespec *deadline);

/* pthread_cond_init for a condition variable whose timed waits use CLOCK_MONOTONIC; the pthread result. */
int hie_cond_init_monotonic(pthread_cond_t *cv);

#endif
