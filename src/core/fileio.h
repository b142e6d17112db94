/* Input files opened safely, whole-file reads, read-only memory maps and atomic writes (temporary
 * name, then rename). */
#ifndef PARE_FILEIO_H
#define PARE_FILEIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include "error.h"

/* Every input pare reads from a path goes through pare_open_input (the functions below use it).
 * It never blocks: the open is non-blocking, because opening a named pipe waits for a writer,
 * forever if none comes. Anything but a regular file is then refused, naming the path and what it
 * is ("PATH: is a named pipe; pare reads its inputs from regular files only", "is a directory",
 * "is a device"), and the descriptor is made blocking again. Symbolic links are followed. *size
 * (when not NULL) gets the file's length; the descriptor is close-on-exec. */
pare_status pare_open_input(const char *path, int *fd, size_t *size, pare_error *err);
/* pare_open_input as a stdio stream (binary reads). */
pare_status pare_fopen_input(const char *path, FILE **fp, pare_error *err);
/* Whether pare_open_input accepts path, for readers that must open it by name themselves (Lua's
 * loadfile); the file is opened and closed, never read. */
pare_status pare_check_input(const char *path, pare_error *err);

/* Reads a whole file into a NUL-terminated heap buffer (*len excludes the NUL). */
pare_status pare_read_file(const char *path, char **data, size_t *len, pare_error *err);

/* Parses a JSON file read with pare_read_file (jansson's flags); *root is a json_t the caller
 * releases. Errors: pare_read_file's, or "PATH: invalid JSON at line N: WHAT". */
struct json_t;
pare_status pare_load_json(const char *path, size_t flags, struct json_t **root, pare_error *err);

typedef struct {
    const unsigned char *data;
    size_t len;
} pare_map;

/* Maps a file read-only; an empty file gives data == NULL, len == 0. */
pare_status pare_map_file(const char *path, pare_map *map, pare_error *err);
void pare_unmap(pare_map *map);
/* Drops the pages of [p, p + len) (inside a pare_map) from this process's resident set; they are
 * read again from the file (or the page cache) when next touched. What a streamed read does after
 * converting a block, so that the mapped files do not add up in memory. */
void pare_map_drop_pages(const void *p, size_t len);

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

/* Flushes a folder's entries (the files just written into it) to disk before it is renamed into
 * place, so a crash after the rename cannot leave a folder with missing files. Best effort: a
 * file system that cannot sync a folder changes nothing for the caller. */
void pare_fsync_dir(const char *dir);

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
 * with the first. An exclusive flock on a lock file, taken without waiting. The file is created new
 * (O_EXCL, never through a symbolic link) and starts with pare's marker and the pid; an existing
 * file is only taken over when it carries the marker and nobody holds its flock (a lock left by a
 * pare that ended: the kernel drops the flock however a process ends). Anything else at that name
 * (a user's file, a link, a fifo) is refused with a message naming it and is never written or
 * removed. pare_unlock removes the file while still holding the lock, and a locker that finds its
 * file unlinked or replaced retries, so removing it cannot let two processes in. */
typedef struct {
    int fd;
    char path[4200];
} pare_lock;

/* Locks lock_path. what names the output in the refusal, which is PARE_EIO: "WHAT is in use by
 * another pare process (pid N); wait for it or choose another output", or "LOCK: ..., not a lock
 * file of pare". */
pare_status pare_lock_path(pare_lock *lk, const char *lock_path, const char *what, pare_error *err);
/* The lock of an output folder that is replaced as a whole (an export): "<dir>.lock" beside it. */
pare_status pare_lock_dir(pare_lock *lk, const char *dir, pare_error *err);
/* Releases and removes the lock file (a zeroed or failed lock is ignored). */
void pare_unlock(pare_lock *lk);
/* Releases the lock and leaves its file (with pare's marker) in place: it marks a folder as pare's. */
void pare_unlock_keep(pare_lock *lk);
/* Non-zero when lock_path is a regular file carrying pare's lock marker (held or not). */
int pare_lock_file_is_pare(const char *lock_path);

/* Creates path as a new file for writing (O_EXCL, never through a symbolic link); -1 with errno. */
int pare_create_new(const char *path);

/* Resolves path into out (PATH_MAX bytes): realpath of the longest existing prefix, then the names
 * that do not exist yet (no "." or ".." among them). 0 when it cannot, e.g. through a dangling link. */
int pare_resolve_path(const char *path, char *out);
/* Non-zero when the resolved path is root or lies under it. */
int pare_path_under(const char *resolved, const char *root);
/* The one check of every output path (--out of every command, exports, recipe runs): refuses an
 * empty path, one that cannot be resolved, the root folder, and the current folder or one above it.
 * what names the option in the message ("--out"). */
pare_status pare_check_output_path(const char *path, const char *what, pare_error *err);
/* The output folder a whole-folder writer (export, init) builds beside and renames into place: path
 * copied into dir (cap bytes, with room left for a ".tmp-*" suffix), trailing slashes dropped ("out/"
 * must give the sibling "out.tmp-*", not a folder inside out), then pare_check_output_path. */
pare_status pare_output_folder(const char *path, char *dir, size_t cap, const char *what, pare_error *err);

/* Joins dir and name into out (size cap); fails if it does not fit. */
pare_status pare_path_join(char *out, size_t cap, const char *dir, const char *name, pare_error *err);
/* Whether path names something other than a folder. Not only regular files: a named pipe called
 * tokenizer.json is found, and then refused by name when opened, rather than passed over in silence. */
int pare_file_exists(const char *path);
int pare_is_dir(const char *path);

#endif
