#define _GNU_SOURCE
#include "writeback_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int msa_start_writeback(int fd) {
    return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0 ? -errno : 0;
}

int msa_syncfs(int fd) {
    return syncfs(fd) < 0 ? -errno : 0;
}
