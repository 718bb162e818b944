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


/// Spawns `path` with `argv`/`envp` in a new process group, signal mask cleared and default
/// dispositions restored, with `in_fd` as its fd 3 and `out_fd` as its fd 4 (everything else
/// above 2 closed). Uses posix_spawn (vfork-like, safe from a multi-threaded parent).
/// Returns the pid, or -errno.
pid_t cworkers_spawn_worker(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd);

/// Arms PR_SET_PDEATHSIG with `signal` (prctl is variadic). Returns 0 or -errno.
int cworkers_set_parent_death_signal(int signal);

/// Ignores SIGPIPE in this process, so a write to a dead peer is EPIPE, not death.
void cworkers_ignore_sigpipe(void);

/// pipe2(fds, O_CLOEXEC). Returns 0 or -errno.
int cworkers_pipe_cloexec(int fds[2]);

/// Waits until process `pid` has exited, without reaping it (waitid with WNOWAIT), so its pid and
/// process group id stay reserved. Returns 0 or -errno.
int cworkers_wait_exited_keep_zombie(pid_t pid);

/// Spawns `path` with `argv`/`envp` for `workers run`: fds 0, 1 and 2 from `stdin_fd`,
/// `stdout_fd` and `stderr_fd` (-1: inherit), in a new process group (unless `own_group` is 0; 2:
/// a new group, and SIGTERM to the child when the calling thread ends),
/// with the signal mask cleared and default dispositions, in `directory` (NULL: ours) with its
/// niceness raised by `niceness`. Uses vfork (see shims.c). Returns the pid, or -errno.
pid_t cworkers_spawn_job(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd, int stderr_fd,
                         const char *directory, int niceness, int own_group);

/// pidfd_open(pid, 0) (a raw syscall). Returns the descriptor (close-on-exec), or -errno.
int cworkers_pidfd_open(pid_t pid);

/// An unnamed temporary file in `directory` (O_TMPFILE, falling back to mkstemp + unlink),
/// close-on-exec. Returns the descriptor, or -errno.
int cworkers_anonymous_file(const char *directory);

/// Makes SIGINT, SIGTERM and SIGHUP write their number as one byte to `fd` (a non-blocking pipe)
/// instead of ending the process. Returns 0 or -errno.
int cworkers_signals_to_pipe(int fd);

/// Makes SIGTERM, SIGUSR1 and SIGINT note their number and add 1 to eventfd `fd`, instead of
/// ending the process (a node agent drains on them). Returns 0 or -errno.
int cworkers_drain_signals_to_eventfd(int fd);

/// The last signal noted by cworkers_drain_signals_to_eventfd (0: none since the last call).
int cworkers_take_drain_signal(void);

/// An anonymous file in memory (memfd_create, close-on-exec): cheaper than a file on disk for
/// small job outputs, swappable like tmpfs. Returns the descriptor, or -errno.
int cworkers_memory_file(const char *name);

/// Starts `path` detached, for `workers run --semaphore`: a session of its own, stdin from
/// /dev/null, stdout and stderr ours, and `held_fd` (a semaphore slot's lock, or -1) as its fd 3,
/// so the slot stays taken exactly as long as the job's process lives. Uses vfork. Returns the
/// pid (not to be waited for: the job outlives us), or -errno.
pid_t cworkers_spawn_detached(const char *path, char *const argv[], char *const envp[], int held_fd);

/// A non-blocking, close-on-exec eventfd (a counter a thread blocked in poll can be woken by).
/// Returns the descriptor, or -errno.
int cworkers_eventfd(void);

/// Sets O_NONBLOCK on `fd`. Returns 0 or -errno.
int cworkers_set_nonblocking(int fd);

#endif
