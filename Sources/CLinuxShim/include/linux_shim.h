#ifndef MIRROR_AGENT_LINUX_SHIM_H
#define MIRROR_AGENT_LINUX_SHIM_H

// Linux event sources for the daemon's one poll loop: inotify for desired-state and managed
// files, signalfd for SIGHUP/SIGTERM, timerfd for debounce and the watchdog.

#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

/// Blocks SIGHUP, SIGTERM and SIGINT and returns a signalfd that reads them (or -errno).
int msa_signalfd_open(void);
/// Reads one signal number from the signalfd (0 if none, -errno on error).
int msa_signalfd_read(int fd);
/// As msa_signalfd_read, and stores in `*value` the integer a sigqueue(3) sender attached to the
/// signal (0 for a plain kill(2)).
int msa_signalfd_read_value(int fd, int32_t *value);

/// A monotonic one-shot (interval 0) or periodic timer; returns the fd or -errno.
int msa_timerfd_open(void);
/// Arms the timer to fire after `after_ns` and then every `interval_ns` (0: once). 0 disarms.
int msa_timerfd_arm(int fd, uint64_t after_ns, uint64_t interval_ns);
/// Consumes a timer's expirations; returns how many (0 if none).
uint64_t msa_timerfd_read(int fd);

/// One inotify event unpacked from the read buffer.
struct msa_inotify_event {
    int wd;
    uint32_t mask;
    char name[256];
};

/// Reads what is pending on an inotify fd into `events` (at most `capacity`); returns the count
/// or -errno (0 when nothing is pending).
int msa_inotify_read(int fd, struct msa_inotify_event *events, int capacity);

/// Names the calling thread (at most 15 bytes show; prctl PR_SET_NAME); 0 or -errno.
int msa_set_thread_name(const char *name);

#endif
