#ifndef CWORKERS_SHIMS_H
#define CWORKERS_SHIMS_H

#include <pthread.h>
#include <sys/types.h>

/// The number of CPUs in this thread's affinity mask (CPU_COUNT is a macro Swift cannot call),
/// or 0 when it cannot be read.
int cworkers_affinity_cpu_count(void);

/// The calling thread's kernel thread id.
pid_t cworkers_gettid(void);

/// Names the calling thread (at most 15 bytes are kept by the kernel). Returns 0 or an errno.
int cworkers_set_thread_name(const char *name);

/// Initialises `cond` to time out against CLOCK_MONOTONIC. Returns 0 or an errno.
int cworkers_cond_init_monotonic(pthread_cond_t *cond);

/// Waits on `cond` for at most `nanoseconds` (CLOCK_MONOTONIC). Returns 0, ETIMEDOUT or an errno.
int cworkers_cond_timedwait_ns(pthread_cond_t *cond, pthread_mutex_t *mutex, long long nanoseconds);

/// A spin-loop hint to the CPU (PAUSE on x86, YIELD on ARM).
void cworkers_cpu_relax(void);

#endif
