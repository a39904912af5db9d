#ifndef MIRROR_AGENT_WRITEBACK_SHIM_H
#define MIRROR_AGENT_WRITEBACK_SHIM_H

// Batched durability for the atomic writer (sync_file_range is a GNU extension the Swift
// importer does not see).

/// Starts writeback of all of `fd`'s dirty pages without waiting (sync_file_range with
/// SYNC_FILE_RANGE_WRITE); 0 or -errno. Only a hint: durability still comes from fsync.
int msa_start_writeback(int fd);

/// syncfs(2) on the filesystem holding `fd`: commits its journal and flushes the disk cache
/// once; 0 or -errno (writeback errors are reported since Linux 5.8).
int msa_syncfs(int fd);

#endif
