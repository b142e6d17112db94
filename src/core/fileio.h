/* Whole-file reads, read-only memory maps and atomic writes (temporary name, then rename). */
#ifndef PARE_FILEIO_H
#define PARE_FILEIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include "error.h"

/* Reads a whole file into a NUL-terminated heap buffer (*len excludes the NUL). */
pare_status pare_read_file(const char *path, char **data, size_t *len, pare_error *err);

typedef struct {
    const unsigned char *data;
    size_t len;
} pare_map;

/* Maps a file read-only; an empty file gives data == NULL, len == 0. */
pare_status pare_map_file(const char *path, pare_map *map, pare_error *err);
void pare_unmap(pare_map *map);

/* Atomic output: pare_atomic_open writes to "<path>.tmp.<pid>"; commit flushes, fsyncs and renames
 * over path; abort removes the temporary. A failed commit leaves path untouched. */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4160];
} pare_atomic_file;

pare_status pare_atomic_open(pare_atomic_file *f, const char *path, pare_error *err);
pare_status pare_atomic_commit(pare_atomic_file *f, pare_error *err);
void pare_atomic_abort(pare_atomic_file *f);

/* Copies a whole file to dst through pare_atomic_open: dst is either the complete copy or untouched. */
pare_status pare_copy_file(const char *src, const char *dst, pare_error *err);

/* Writes j (json_dumps flags, e.g. JSON_INDENT(2) | JSON_PRESERVE_ORDER) and a newline to path through
 * pare_atomic_open: path is either the complete text or untouched. */
pare_status pare_write_json_atomic(const char *path, const json_t *j, size_t flags, pare_error *err);

/* Removes a folder that holds only files and links (an export, a checkpoint, a model folder pare
 * made), then the folder itself. A subfolder is left in place and makes it fail: never a recursive
 * delete of something pare did not write. */
pare_status pare_remove_flat_dir(const char *dir, pare_error *err);

/* Output locks: a second pare process writing the same output is refused rather than interleaving
 * with the first. An exclusive flock on a lock file, taken without waiting; the file holds the pid
 * for the message. pare_unlock removes the file while still holding the lock, and a locker that
 * finds its file unlinked or replaced retries, so removing it cannot let two processes in. The
 * kernel drops the lock when the process ends, however it ends. */
typedef struct {
    int fd;
    char path[4200];
} pare_lock;

/* Locks lock_path (created if needed). what names the output in the refusal, which is PARE_EIO:
 * "WHAT is in use by another pare process (pid N); wait for it or choose another output". */
pare_status pare_lock_path(pare_lock *lk, const char *lock_path, const char *what, pare_error *err);
/* The lock of an output folder that is replaced as a whole (an export): "<dir>.lock" beside it. */
pare_status pare_lock_dir(pare_lock *lk, const char *dir, pare_error *err);
/* Releases and removes the lock file (a zeroed or failed lock is ignored). */
void pare_unlock(pare_lock *lk);

/* Joins dir and name into out (size cap); fails if it does not fit. */
pare_status pare_path_join(char *out, size_t cap, const char *dir, const char *name, pare_error *err);
int pare_file_exists(const char *path);
int pare_is_dir(const char *path);

#endif
