#define _GNU_SOURCE
#include "CWorkersShims.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

int cworkers_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return 0;
    }
    return CPU_COUNT(&set);
}

pid_t cworkers_gettid(void) {
    return (pid_t)syscall(SYS_gettid);
}

int cworkers_set_thread_name(const char *name) {
    char buffer[16];
    strncpy(buffer, name, sizeof(buffer) - 1);
    buffer[sizeof(buffer) - 1] = '\0';
    return pthread_setname_np(pthread_self(), buffer);
}

int cworkers_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0) return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int cworkers_cond_timedwait_ns(pthread_cond_t *cond, pthread_mutex_t *mutex, long long nanoseconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (nanoseconds < 0) nanoseconds = 0;
    long long total = (long long)deadline.tv_nsec + nanoseconds % 1000000000LL;
    deadline.tv_sec += (time_t)(nanoseconds / 1000000000LL) + (time_t)(total / 1000000000LL);
    deadline.tv_nsec = (long)(total % 1000000000LL);
    return pthread_cond_timedwait(cond, mutex, &deadline);
}

void cworkers_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>

/// posix_spawn with `sources[i]` as the child's fd `targets[i]` (a source of -1 is inherited), every
/// fd from `close_from` up closed, a new process group, an empty signal mask and default
/// dispositions. The sources get fresh numbers of at least `close_from` first, so moving them to
/// their targets in the child can never overwrite one with another. Returns the pid, or -errno.
static pid_t spawn_with_fds(const char *path, char *const argv[], char *const envp[],
                            const int *sources, const int *targets, int count, int close_from) {
    int high[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
    if (count > 8) return -EINVAL;
    for (int i = 0; i < count; i++) {
        if (sources[i] < 0) continue;
        high[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, close_from);
        if (high[i] < 0) {
            int saved = errno;
            for (int j = 0; j < i; j++) if (high[j] >= 0) close(high[j]);
            return -saved;
        }
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc == 0) {
        rc = posix_spawnattr_init(&attr);
        if (rc != 0) posix_spawn_file_actions_destroy(&actions);
    }
    if (rc != 0) {
        for (int i = 0; i < count; i++) if (high[i] >= 0) close(high[i]);
        return -rc;
    }
    for (int i = 0; i < count; i++) if (high[i] >= 0) posix_spawn_file_actions_adddup2(&actions, high[i], targets[i]);
    posix_spawn_file_actions_addclosefrom_np(&actions, close_from);

    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid = 0;
    rc = posix_spawn(&pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    for (int i = 0; i < count; i++) if (high[i] >= 0) close(high[i]);
    return rc == 0 ? pid : -rc;
}

pid_t cworkers_spawn_worker(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd) {
    const int sources[2] = { in_fd, out_fd };
    const int targets[2] = { 3, 4 };
    return spawn_with_fds(path, argv, envp, sources, targets, 2, 5);
}

int cworkers_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0) == 0 ? 0 : -errno;
}

void cworkers_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}

#include <fcntl.h>

int cworkers_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

#include <sys/wait.h>

int cworkers_wait_exited_keep_zombie(pid_t pid) {
    siginfo_t info;
    for (;;) {
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

/// The signals this process ignores (SIGPIPE always): a child must not inherit them ignored.
/// Read once; a spawn then resets only these, not all 64 dispositions (caught ones reset at exec).
static sigset_t ignored_signals;
static pthread_once_t ignored_signals_once = PTHREAD_ONCE_INIT;

static void learn_ignored_signals(void) {
    sigemptyset(&ignored_signals);
    for (int s = 1; s < NSIG; s++) {
        struct sigaction current;
        if (sigaction(s, NULL, &current) == 0 && current.sa_handler == SIG_IGN) sigaddset(&ignored_signals, s);
    }
    sigaddset(&ignored_signals, SIGPIPE);
}

enum child_group { same_group, own_group, own_session, own_group_tethered };

/// A spawn by vfork, for `workers run`'s jobs and `--semaphore`'s commands: no stack to map and
/// unmap (glibc's posix_spawn maps one per call) and no descriptor shuffling in the parent.
///
/// `sources[i]` becomes the child's fd `i` (-1: fd `i` as it is) for `i` below `count`; every
/// descriptor from `count` up is closed. The child shares our memory until it execs, so it only
/// makes system calls: default dispositions for the ignored signals, its process group or
/// session, the working directory and niceness asked for (`directory` NULL and `niceness` 0:
/// unchanged), the sources moved above `count` first (so none overwrites another, and dup2 clears
/// close-on-exec even where a source already has its target's number), close_range, an empty
/// signal mask, execve. All signals stay blocked in our thread meanwhile, so no handler of ours
/// runs in the child. An exec failure comes back through `failure` (shared memory); under
/// ThreadSanitizer, whose vfork is a fork, it shows as the child exiting 127 instead.
static pid_t vfork_exec(const char *path, char *const argv[], char *const envp[], const int *sources, int count,
                        const char *directory, int niceness, enum child_group group) {
    if (count > 8) return -EINVAL;
    pthread_once(&ignored_signals_once, learn_ignored_signals);
    sigset_t all, saved, empty;
    sigfillset(&all);
    sigemptyset(&empty);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    volatile int failure = 0;
    pid_t pid = vfork();
    if (pid == 0) {
        struct sigaction standard;
        memset(&standard, 0, sizeof(standard));
        standard.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) {
            if (sigismember(&ignored_signals, s) == 1) (void)sigaction(s, &standard, NULL);
        }
        if ((group == own_group || group == own_group_tethered) && setpgid(0, 0) != 0) { failure = errno; _exit(127); }
        // Ended (SIGTERM) when the thread that started it ends: a link's ssh never outlives us.
        if (group == own_group_tethered && prctl(PR_SET_PDEATHSIG, (unsigned long)SIGTERM, 0, 0, 0) != 0) { failure = errno; _exit(127); }
        if (group == own_session && setsid() < 0) { failure = errno; _exit(127); }
        if (directory != NULL && chdir(directory) != 0) { failure = errno; _exit(127); }
        if (niceness != 0) (void)nice(niceness);  // as nice(1): a refusal still runs the job
        int high[8];
        for (int i = 0; i < count; i++) {
            high[i] = sources[i] >= 0 ? fcntl(sources[i], F_DUPFD, count) : -1;
            if (sources[i] >= 0 && high[i] < 0) { failure = errno; _exit(127); }
        }
        for (int i = 0; i < count; i++) {
            if (high[i] >= 0 && dup2(high[i], i) < 0) { failure = errno; _exit(127); }
        }
#ifdef SYS_close_range
        (void)syscall(SYS_close_range, (unsigned)count, ~0U, 0U);  // what is not close-on-exec (ours all are)
#endif
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(path, argv, envp);
        failure = errno;
        _exit(127);
    }
    int spawn_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) return -spawn_errno;
    if (failure != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -failure;
    }
    return pid;
}

pid_t cworkers_spawn_job(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd, int stderr_fd,
                         const char *directory, int niceness, int own_group_flag) {
    const int sources[3] = { stdin_fd, stdout_fd, stderr_fd };
    return vfork_exec(path, argv, envp, sources, 3, directory, niceness,
                      own_group_flag == 2 ? own_group_tethered : own_group_flag ? own_group : same_group);
}

int cworkers_pidfd_open(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return -errno;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

int cworkers_anonymous_file(const char *directory) {
    int fd = open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[4096];
    int written = snprintf(path, sizeof(path), "%s/workers-run-XXXXXX", directory);
    if (written < 0 || written >= (int)sizeof(path)) return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) return -errno;
    unlink(path);
    return fd;
}

static int signal_pipe_fd = -1;

static void forward_signal(int signal) {
    int saved = errno;
    unsigned char byte = (unsigned char)signal;
    if (signal_pipe_fd >= 0) (void)!write(signal_pipe_fd, &byte, 1);
    errno = saved;
}

/// Installs `handler` for `count` signals and unblocks them in this thread. Returns 0 or -errno.
static int handle_signals(const int *signals, int count, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigset_t wanted;
    sigemptyset(&wanted);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -errno;
        sigaddset(&wanted, signals[i]);
    }
    // A process can start with these blocked (its parent's thread had them blocked, as Swift's
    // and Dispatch's worker threads do, and posix_spawn keeps the mask); this thread must get them.
    return pthread_sigmask(SIG_UNBLOCK, &wanted, NULL) == 0 ? 0 : -errno;
}

int cworkers_signals_to_pipe(int fd) {
    signal_pipe_fd = fd;
    const int signals[3] = { SIGINT, SIGTERM, SIGHUP };
    return handle_signals(signals, 3, forward_signal);
}

int cworkers_memory_file(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

pid_t cworkers_spawn_detached(const char *path, char *const argv[], char *const envp[], int held_fd) {
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) return -errno;
    const int sources[4] = { null_fd, -1, -1, held_fd };
    pid_t pid = vfork_exec(path, argv, envp, sources, held_fd >= 0 ? 4 : 3, NULL, 0, own_session);
    close(null_fd);
    return pid;
}

#include <sys/eventfd.h>

int cworkers_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int cworkers_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -errno;
    return 0;
}

static int drain_event_fd = -1;
static volatile sig_atomic_t drain_signal = 0;

static void note_drain_signal(int signal) {
    int saved = errno;
    drain_signal = signal;
    uint64_t one = 1;
    if (drain_event_fd >= 0) (void)!write(drain_event_fd, &one, sizeof(one));
    errno = saved;
}

int cworkers_drain_signals_to_eventfd(int fd) {
    drain_event_fd = fd;
    const int signals[3] = { SIGTERM, SIGUSR1, SIGINT };
    return handle_signals(signals, 3, note_drain_signal);
}

int cworkers_take_drain_signal(void) {
    int signal = drain_signal;
    drain_signal = 0;
    return signal;
}
