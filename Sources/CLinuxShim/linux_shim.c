#include "linux_shim.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* libdispatch (under Swift's tasks) calls setpriority(PRIO_PROCESS, 0, n) on
 * every worker thread it starts, to imitate a quality-of-service class: n = -4 for its own
 * manager thread, -2 for user-initiated work, 0 for default work, 2 and 10 for utility and
 * background. mirror-agent never raises its own CPU priority: a request for a nice value of 0 or
 * below leaves the thread at the nice value it inherited from the process (what the admin or the
 * unit set), without a system call. Higher values go to the kernel. Without this, the service
 * (no CAP_SYS_NICE, setpriority outside its system call filter) logs "Failed to set thread
 * priority for worker thread: pqc=... errno=1" for each such thread. This definition takes the
 * place of libc's for the whole executable (libdispatch is linked in statically). */
int setpriority(__priority_which_t which, id_t who, int prio) {
    if (which == PRIO_PROCESS && who == 0 && prio <= 0) return 0;
    return (int)syscall(SYS_setpriority, which, who, prio);
}

int msa_signalfd_open(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int msa_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    return n == sizeof info ? (int)info.ssi_signo : 0;
}

int msa_signalfd_read_value(int fd, int32_t *value) {
    struct signalfd_siginfo info;
    *value = 0;
    ssize_t n = read(fd, &info, sizeof info);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    if (n != sizeof info) return 0;
    if (info.ssi_code == SI_QUEUE) *value = info.ssi_int;
    return (int)info.ssi_signo;
}

int msa_timerfd_open(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int msa_timerfd_arm(int fd, uint64_t after_ns, uint64_t interval_ns) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = (time_t)(after_ns / 1000000000ULL);
    spec.it_value.tv_nsec = (long)(after_ns % 1000000000ULL);
    spec.it_interval.tv_sec = (time_t)(interval_ns / 1000000000ULL);
    spec.it_interval.tv_nsec = (long)(interval_ns % 1000000000ULL);
    return timerfd_settime(fd, 0, &spec, NULL) < 0 ? -errno : 0;
}

uint64_t msa_timerfd_read(int fd) {
    uint64_t count = 0;
    return read(fd, &count, sizeof count) == sizeof count ? count : 0;
}

int msa_inotify_read(int fd, struct msa_inotify_event *events, int capacity) {
    char buffer[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    int count = 0;
    for (char *p = buffer; p < buffer + n && count < capacity;) {
        struct inotify_event *e = (struct inotify_event *)p;
        events[count].wd = e->wd;
        events[count].mask = e->mask;
        size_t len = e->len ? strnlen(e->name, e->len) : 0;
        if (len > 255) len = 255;
        memcpy(events[count].name, e->name, len);
        events[count].name[len] = 0;
        count++;
        p += sizeof(struct inotify_event) + e->len;
    }
    return count;
}

int msa_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) == 0 ? 0 : -errno;
}
