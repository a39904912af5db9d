#ifndef MIRROR_AGENT_SYSTEMD_SHIM_H
#define MIRROR_AGENT_SYSTEMD_SHIM_H

// The few libsystemd calls Swift cannot make itself (sd-bus's variadic calls) or that read
// better as one C function: start a unit job and wait for its JobRemoved signal, read unit
// properties, send and search journal entries. Every function returns 0 or a negative errno;
// strings it hands out are malloc'ed and freed by the caller with free().

#include <stdint.h>
#include <systemd/sd-bus.h>

/// Opens the system bus. Returns 0 or a negative errno.
int msa_bus_open(sd_bus **bus);

/// Calls Manager.<method>(unit, mode) (RestartUnit, ReloadUnit, ReloadOrRestartUnit, ...) and
/// waits up to timeout_usec for the job's JobRemoved signal. On success *result is the job's
/// result ("done", "failed", "timeout", "canceled", "dependency", "skipped").
int msa_unit_job(sd_bus *bus, const char *method, const char *unit, const char *mode,
                 uint64_t timeout_usec, char **result, char **error_message);

/// A string property of a unit (loading the unit if needed), e.g. ActiveState on
/// org.freedesktop.systemd1.Unit.
int msa_unit_property_string(sd_bus *bus, const char *unit, const char *interface,
                             const char *property, char **value, char **error_message);

/// An unsigned property: type 'u' (MainPID), 't' (timestamps) or 'b' (CanReload).
int msa_unit_property_u64(sd_bus *bus, const char *unit, const char *interface,
                          const char *property, char type, uint64_t *value, char **error_message);

/// Sends one journal entry from "FIELD=value" strings.
int msa_journal_send(const char *const *fields, int count);

/// Searches the journal of `unit` from `since_usec` (CLOCK_REALTIME) for a MESSAGE containing
/// one of `needles`. Returns the index of the needle found, -1 if none, or a negative errno
/// below -1 (as -1000 - errno) when the journal cannot be read.
int msa_journal_find(const char *unit, uint64_t since_usec, const char *const *needles, int count);

#endif
