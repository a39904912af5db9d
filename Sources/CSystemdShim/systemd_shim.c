#include "systemd_shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

static uint64_t now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

static void set_error(char **out, const sd_bus_error *error, int r, const char *what) {
    if (!out) return;
    const char *text = (error && error->message) ? error->message : strerror(-r);
    size_t n = strlen(what) + strlen(text) + 3;
    *out = malloc(n);
    if (*out) snprintf(*out, n, "%s: %s", what, text);
}

// The system bus when there is one; else, as root, systemd's own private socket, the way
// systemctl does it: a minimal Debian (debootstrap --variant=minbase + systemd-sysv) has no
// D-Bus daemon, and one installed by apt is not started until the next boot (dbus.socket is
// static, so deb-systemd-invoke leaves it alone).
int msa_bus_open(sd_bus **bus) {
    int r = sd_bus_open_system(bus);
    if (r >= 0 || geteuid() != 0) return r;
    int system_error = r;
    sd_bus *direct = NULL;
    if ((r = sd_bus_new(&direct)) < 0) return system_error;
    if ((r = sd_bus_set_address(direct, "unix:path=/run/systemd/private")) < 0 || (r = sd_bus_start(direct)) < 0) {
        sd_bus_unref(direct);
        return system_error;
    }
    *bus = direct;
    return 0;
}

// On the private socket there is no bus daemon, so messages carry no sender name to match.
static const char *systemd_sender(sd_bus *bus) {
    return sd_bus_is_bus_client(bus) > 0 ? "org.freedesktop.systemd1" : NULL;
}

struct job_wait {
    const char *job_path;
    char *result;
    int done;
};

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    (void)ret_error;
    struct job_wait *wait = userdata;
    uint32_t id;
    const char *path = NULL, *unit = NULL, *result = NULL;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0) return 0;
    if (wait->job_path && path && strcmp(path, wait->job_path) == 0) {
        wait->result = strdup(result ? result : "");
        wait->done = 1;
    }
    return 0;
}

int msa_unit_job(sd_bus *bus, const char *method, const char *unit, const char *mode,
                 uint64_t timeout_usec, char **result, char **error_message) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    sd_bus_slot *slot = NULL;
    struct job_wait wait = {0};
    char *job = NULL;
    int r;

    // Subscribe and match first, then call: the job may finish before the call returns.
    r = sd_bus_match_signal(bus, &slot, systemd_sender(bus), "/org/freedesktop/systemd1",
                            "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, &wait);
    if (r < 0) { set_error(error_message, NULL, r, "cannot watch JobRemoved"); goto out; }
    r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "Subscribe", &error, NULL, "");
    sd_bus_error_free(&error);  // already subscribed is fine
    r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", method, &error, &reply, "ss", unit, mode);
    if (r < 0) { set_error(error_message, &error, r, method); goto out; }
    const char *path = NULL;
    r = sd_bus_message_read(reply, "o", &path);
    if (r < 0) { set_error(error_message, NULL, r, "cannot read the job path"); goto out; }
    job = strdup(path);
    wait.job_path = job;

    uint64_t deadline = now_usec() + timeout_usec;
    while (!wait.done) {
        r = sd_bus_process(bus, NULL);
        if (r < 0) { set_error(error_message, NULL, r, "D-Bus connection failed"); goto out; }
        if (r > 0) continue;
        uint64_t now = now_usec();
        if (now >= deadline) { r = -ETIMEDOUT; set_error(error_message, NULL, r, "waiting for the job"); goto out; }
        r = sd_bus_wait(bus, deadline - now);
        if (r < 0 && r != -EINTR) { set_error(error_message, NULL, r, "waiting on D-Bus"); goto out; }
    }
    *result = wait.result;
    wait.result = NULL;
    r = 0;
out:
    free(wait.result);
    free(job);
    sd_bus_slot_unref(slot);
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    return r;
}

static int unit_path(sd_bus *bus, const char *unit, char **path, char **error_message) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    const char *p = NULL;
    // LoadUnit returns the object path even for a unit that is not loaded yet.
    int r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "LoadUnit", &error, &reply, "s", unit);
    if (r < 0) { set_error(error_message, &error, r, "LoadUnit"); goto out; }
    r = sd_bus_message_read(reply, "o", &p);
    if (r < 0) { set_error(error_message, NULL, r, "LoadUnit reply"); goto out; }
    *path = strdup(p);
    r = 0;
out:
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    return r;
}

int msa_unit_property_string(sd_bus *bus, const char *unit, const char *interface,
                             const char *property, char **value, char **error_message) {
    char *path = NULL;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = unit_path(bus, unit, &path, error_message);
    if (r < 0) return r;
    r = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, interface, property, &error, value);
    if (r < 0) set_error(error_message, &error, r, property);
    sd_bus_error_free(&error);
    free(path);
    return r < 0 ? r : 0;
}

int msa_unit_property_u64(sd_bus *bus, const char *unit, const char *interface,
                          const char *property, char type, uint64_t *value, char **error_message) {
    char *path = NULL;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = unit_path(bus, unit, &path, error_message);
    if (r < 0) return r;
    if (type == 'u') {
        uint32_t v = 0;
        r = sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", path, interface, property, &error, 'u', &v);
        *value = v;
    } else if (type == 'b') {
        int v = 0;
        r = sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", path, interface, property, &error, 'b', &v);
        *value = (uint64_t)v;
    } else {
        r = sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", path, interface, property, &error, 't', value);
    }
    if (r < 0) set_error(error_message, &error, r, property);
    sd_bus_error_free(&error);
    free(path);
    return r < 0 ? r : 0;
}

int msa_journal_send(const char *const *fields, int count) {
    struct iovec iov[64];
    if (count > 64) count = 64;
    for (int i = 0; i < count; i++) {
        iov[i].iov_base = (void *)fields[i];
        iov[i].iov_len = strlen(fields[i]);
    }
    return sd_journal_sendv(iov, count);
}

int msa_journal_find(const char *unit, uint64_t since_usec, const char *const *needles, int count) {
    sd_journal *j = NULL;
    int r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0) return -1000 + r;
    char match[512];
    snprintf(match, sizeof match, "_SYSTEMD_UNIT=%s", unit);
    int found = -1;
    if ((r = sd_journal_add_match(j, match, 0)) < 0) { found = -1000 + r; goto out; }
    if ((r = sd_journal_seek_realtime_usec(j, since_usec)) < 0) { found = -1000 + r; goto out; }
    while (found < 0 && sd_journal_next(j) > 0) {
        const void *data = NULL;
        size_t length = 0;
        if (sd_journal_get_data(j, "MESSAGE", &data, &length) < 0) continue;
        for (int i = 0; i < count && found < 0; i++) {
            size_t n = strlen(needles[i]);
            const char *text = data;
            for (size_t k = 0; n <= length && k + n <= length; k++) {
                if (memcmp(text + k, needles[i], n) == 0) { found = i; break; }
            }
        }
    }
out:
    sd_journal_close(j);
    return found;
}
