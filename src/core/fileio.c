/* Input files opened safely, whole-file reads, read-only memory maps and atomic writes. */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a path that is not a regular file is, for the refusal. */
static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "is a named pipe";
    if (S_ISDIR(mode))
        return "is a directory";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "is a device";
    if (S_ISSOCK(mode))
        return "is a socket";
    return "is not a regular file";
}

static pare_status refuse_kind(const char *path, mode_t mode, pare_error *err)
{
    return pare_fail(err, PARE_EIO, "%s: %s; pare reads its inputs from regular files only", path, file_kind(mode));
}

pare_status pare_open_input(const char *path, int *fd_out, size_t *size, pare_error *err)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a named pipe for reading waits for a writer, forever if none comes. No
     * O_NOFOLLOW: model folders (the Hugging Face cache) are made of symbolic links, and the fuzz
     * targets read memfds through /proc/self/fd links. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR)
            return pare_fail(err, PARE_ECANCELED, "%s: interrupted while opening", path);
        return pare_fail(err, PARE_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pare_fail(err, PARE_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return refuse_kind(path, st.st_mode, err);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return pare_fail(err, PARE_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    *fd_out = fd;
    if (size)
        *size = (size_t)st.st_size;
    return PARE_OK;
}

pare_status pare_fopen_input(const char *path, FILE **fp, pare_error *err)
{
    int fd;
    *fp = NULL;
    pare_status rc = pare_open_input(path, &fd, NULL, err);
    if (rc)
        return rc;
    if (!(*fp = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return pare_fail(err, e == ENOMEM ? PARE_ENOMEM : PARE_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    return PARE_OK;
}

pare_status pare_check_input(const char *path, pare_error *err)
{
    int fd;
    pare_status rc = pare_open_input(path, &fd, NULL, err);
    if (!rc)
        close(fd);
    return rc;
}

pare_status pare_read_file(const char *path, char **data, size_t *len, pare_error *err)
{
    *data = NULL;
    *len = 0;
    int fd;
    size_t n;
    pare_status rc = pare_open_input(path, &fd, &n, err);
    if (rc)
        return rc;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return pare_fail(err, PARE_ENOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return pare_fail(err, PARE_EIO, "%s: read failed after %zu of %zu bytes: %s", path, got, n,
                             r < 0 ? strerror(e) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return PARE_OK;
}

pare_status pare_load_json(const char *path, size_t flags, json_t **root, pare_error *err)
{
    char *text;
    size_t len;
    *root = NULL;
    pare_status rc = pare_read_file(path, &text, &len, err);
    if (rc)
        return rc;
    json_error_t jerr;
    *root = json_loadb(text, len, flags, &jerr);
    free(text);
    if (!*root)
        return pare_fail(err, PARE_EFORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    return PARE_OK;
}

pare_status pare_map_file(const char *path, pare_map *map, pare_error *err)
{
    map->data = NULL;
    map->len = 0;
    int fd;
    size_t n;
    pare_status rc = pare_open_input(path, &fd, &n, err);
    if (rc)
        return rc;
    if (n == 0) {
        close(fd);
        return PARE_OK;
    }
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return pare_fail(err, PARE_EIO, "%s: cannot map: %s", path, strerror(errno));
    map->data = p;
    map->len = n;
    return PARE_OK;
}

void pare_map_drop_pages(const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, first = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = (a + len) & ~((uintptr_t)page - 1); /* whole pages only: neighbours keep theirs */
    if (page > 0 && end > first)
        madvise((void *)first, end - first, MADV_DONTNEED);
}

void pare_unmap(pare_map *map)
{
    if (map->data)
        munmap((void *)map->data, map->len);
    map->data = NULL;
    map->len = 0;
}

pare_status pare_atomic_open(pare_atomic_file *f, const char *path, pare_error *err)
{
    memset(f, 0, sizeof *f);
    if (strlen(path) >= sizeof f->path)
        return pare_fail(err, PARE_EINVAL, "%s: path too long", path);
    strcpy(f->path, path);
    /* a new file, never an existing one: a name planted in the folder (a symbolic link to a file
     * elsewhere, a stale temporary) is not written through; it gets another name */
    for (int attempt = 0;; attempt++) {
        if (attempt == 0)
            snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
        else
            snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        int fd = pare_create_new(f->tmp);
        if (fd < 0 && errno == EEXIST && attempt < 64)
            continue;
        if (fd < 0 || !(f->fp = fdopen(fd, "wb"))) {
            int e = errno;
            if (fd >= 0) {
                close(fd);
                unlink(f->tmp);
            }
            return pare_fail(err, PARE_EIO, "%s: cannot create: %s", f->tmp, strerror(e));
        }
        return PARE_OK;
    }
}

int pare_create_new(const char *path) { return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666); }

pare_status pare_atomic_commit(pare_atomic_file *f, pare_error *err)
{
    if (!f->fp)
        return pare_fail(err, PARE_EINVAL, "%s: not open", f->path);
    int bad = ferror(f->fp);
    if (fflush(f->fp) != 0)
        bad = 1;
    int e = errno;
    if (!bad && fsync(fileno(f->fp)) != 0) {
        bad = 1;
        e = errno;
    }
    if (fclose(f->fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    f->fp = NULL;
    if (bad) {
        unlink(f->tmp);
        return pare_fail(err, PARE_EIO, "%s: write failed: %s", f->path, strerror(e));
    }
    if (rename(f->tmp, f->path) != 0) {
        e = errno;
        unlink(f->tmp);
        return pare_fail(err, PARE_EIO, "%s: cannot rename into place: %s", f->path, strerror(e));
    }
    return PARE_OK;
}

void pare_atomic_abort(pare_atomic_file *f)
{
    if (f->fp) {
        fclose(f->fp);
        f->fp = NULL;
        unlink(f->tmp);
    }
}

pare_status pare_path_join(char *out, size_t cap, const char *dir, const char *name, pare_error *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return pare_fail(err, PARE_EINVAL, "%s/%s: path too long", dir, name);
    return PARE_OK;
}

int pare_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int pare_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Every lock file pare writes starts with this; a file without it is not pare's and is never
 * removed or overwritten. Earlier versions wrote the pid alone ("1234\n"), and every run folder they
 * made holds such a .pare-run.lock: that exact form counts as pare's too. */
static const char LOCK_MARKER[] = "pare lock, pid ";

/* Reads the start of an open lock file: 1 when it is pare's (pid gets the pid text), 0 when it
 * holds something else, -1 when it is empty (a lock just created whose marker is not written yet). */
static int read_lock_marker(int fd, char *pid, size_t cap)
{
    char buf[128];
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    pid[0] = 0;
    if (got <= 0)
        return got == 0 ? -1 : 0;
    buf[got] = 0;
    size_t digits = strspn(buf, "0123456789");
    if (digits && digits <= 20 && !strcmp(buf + digits, "\n")) { /* the pid alone: pare before the marker */
        snprintf(pid, cap, "%.*s", (int)digits, buf);
        return 1;
    }
    size_t ml = sizeof LOCK_MARKER - 1;
    if ((size_t)got < ml || memcmp(buf, LOCK_MARKER, ml))
        return 0;
    snprintf(pid, cap, "%.*s", (int)strcspn(buf + ml, "\n"), buf + ml);
    return 1;
}

int pare_lock_file_is_pare(const char *lock_path)
{
    int fd = open(lock_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    char pid[64];
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read_lock_marker(fd, pid, sizeof pid) == 1;
    close(fd);
    return ok;
}

static pare_status not_a_lock(pare_error *err, const char *lock_path, const char *what, const char *why)
{
    return pare_fail(err, PARE_EIO,
                     "%s: exists and is not a lock file of pare (%s); pare does not overwrite or remove it: move it "
                     "away or choose another output than %s",
                     lock_path, why, what);
}

pare_status pare_lock_path(pare_lock *lk, const char *lock_path, const char *what, pare_error *err)
{
    lk->fd = -1;
    if (strlen(lock_path) >= sizeof lk->path)
        return pare_fail(err, PARE_EINVAL, "%s: path too long", lock_path);
    char marker[64];
    int mlen = snprintf(marker, sizeof marker, "%s%ld\n", LOCK_MARKER, (long)getpid());
    for (int attempt = 0; attempt < 64; attempt++) {
        /* a new lock gets its marker before anything else, so a file without one is never pare's */
        int fd = pare_create_new(lock_path), created = fd >= 0;
        if (created) {
            if (write(fd, marker, (size_t)mlen) != mlen) {
                int e = errno;
                close(fd);
                unlink(lock_path);
                return pare_fail(err, PARE_EIO, "%s: cannot write the lock file: %s", lock_path, strerror(e));
            }
            close(fd);
        } else if (errno != EEXIST)
            return pare_fail(err, PARE_EIO, "%s: cannot create the lock file: %s", lock_path, strerror(errno));
        /* existing (or just created): lock it; O_NOFOLLOW, so a planted link is never opened */
        fd = open(lock_path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* released meanwhile */
            if (errno == ELOOP)
                return not_a_lock(err, lock_path, what, "a symbolic link");
            return pare_fail(err, PARE_EIO, "%s: cannot open the lock file: %s", lock_path, strerror(errno));
        }
        struct stat held, now;
        if (fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
            close(fd);
            return not_a_lock(err, lock_path, what, "not a regular file");
        }
        char pid[64];
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            int mine = read_lock_marker(fd, pid, sizeof pid);
            close(fd);
            if (e != EWOULDBLOCK)
                return pare_fail(err, PARE_EIO, "%s: cannot lock: %s", lock_path, strerror(e));
            if (mine == 0) /* locked, but not by pare's protocol: still not ours to take */
                return not_a_lock(err, lock_path, what, "it holds other content");
            return pare_fail(err, PARE_EIO,
                             "%s is in use by another pare process%s%s%s (lock %s); wait for it or choose another "
                             "output",
                             what, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", lock_path);
        }
        int mine = read_lock_marker(fd, pid, sizeof pid);
        if (mine <= 0) {
            close(fd);
            if (mine < 0 && attempt < 63) { /* another pare between creating it and writing its marker */
                usleep(2000);
                continue;
            }
            return not_a_lock(err, lock_path, what, mine < 0 ? "an empty file" : "it holds other content");
        }
        /* pare's marker and unlocked: ours, or left by a pare that ended (flock dies with the process) */
        if (lstat(lock_path, &now) == 0 && held.st_ino == now.st_ino && held.st_dev == now.st_dev) {
            if (ftruncate(fd, 0) != 0 || pwrite(fd, marker, (size_t)mlen, 0) != mlen) {
                /* the pid is only for the refusal message; the marker of the old holder stays valid */
            }
            lk->fd = fd;
            snprintf(lk->path, sizeof lk->path, "%s", lock_path);
            return PARE_OK;
        }
        close(fd); /* the holder removed this file as we locked it: lock the new one */
    }
    return pare_fail(err, PARE_EIO, "%s: the lock file keeps being replaced; is another pare process busy with %s?",
                     lock_path, what);
}

pare_status pare_lock_dir(pare_lock *lk, const char *dir, pare_error *err)
{
    char p[4200];
    lk->fd = -1;
    if (snprintf(p, sizeof p, "%s.lock", dir) >= (int)sizeof p)
        return pare_fail(err, PARE_EINVAL, "%s: path too long", dir);
    return pare_lock_path(lk, p, dir, err);
}

static void release(pare_lock *lk, int remove)
{
    if (!lk || lk->fd < 0)
        return;
    struct stat held, now;
    /* only the file this lock holds, never one put in its place */
    if (remove && fstat(lk->fd, &held) == 0 && lstat(lk->path, &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev)
        unlink(lk->path); /* while still locked: see pare_lock_path */
    close(lk->fd);
    lk->fd = -1;
}

void pare_unlock(pare_lock *lk) { release(lk, 1); }
void pare_unlock_keep(pare_lock *lk) { release(lk, 0); }

/* The canonical form of path: realpath of its longest existing prefix, then the remaining components,
 * which may not be "." or ".." (a name that does not exist yet cannot climb out). A component that
 * exists but cannot be resolved (a dangling symbolic link) fails: the file it would create lies
 * wherever the link points. */
int pare_resolve_path(const char *path, char *out)
{
    if (!path || !*path || strlen(path) >= PATH_MAX)
        return 0;
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    if (realpath(buf, out))
        return 1;
    struct stat st;
    if (errno != ENOENT || lstat(buf, &st) == 0)
        return 0;
    char *slash = strrchr(buf, '/');
    const char *name = slash ? slash + 1 : buf;
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    char parent[PATH_MAX];
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == buf)
        snprintf(parent, sizeof parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - buf), buf);
    char base[PATH_MAX];
    if (!pare_resolve_path(parent, base))
        return 0;
    size_t bl = strlen(base), nl = strlen(name);
    int sep = strcmp(base, "/") != 0;
    if (bl + (size_t)sep + nl >= PATH_MAX)
        return 0;
    memcpy(out, base, bl);
    if (sep)
        out[bl] = '/';
    memcpy(out + bl + sep, name, nl + 1);
    return 1;
}

int pare_path_under(const char *resolved, const char *root)
{
    size_t n = strlen(root);
    if (!strcmp(root, "/"))
        return 1;
    return !strncmp(resolved, root, n) && (resolved[n] == 0 || resolved[n] == '/');
}

pare_status pare_check_output_path(const char *path, const char *what, pare_error *err)
{
    char r[PATH_MAX], cwd[PATH_MAX];
    if (!path || !*path)
        return pare_fail(err, PARE_EINVAL, "%s: the output path is empty", what);
    if (!pare_resolve_path(path, r))
        return pare_fail(err, PARE_EINVAL,
                         "%s %s: cannot resolve the path (a dangling symbolic link, \".\" or \"..\" "
                         "after a missing folder, or too long)",
                         what, path);
    if (!strcmp(r, "/"))
        return pare_fail(err, PARE_EINVAL,
                         "%s %s: refusing to write into the root folder /; choose a folder of its own", what, path);
    if (getcwd(cwd, sizeof cwd) && pare_path_under(cwd, r))
        return pare_fail(err, PARE_EINVAL,
                         "%s %s: is the current folder or one above it (%s); choose a folder of its own", what, path, r);
    return PARE_OK;
}

pare_status pare_output_folder(const char *path, char *dir, size_t cap, const char *what, pare_error *err)
{
    if (!path || !*path || strlen(path) + 64 >= cap)
        return pare_fail(err, PARE_EINVAL, "%s: folder name '%s' is empty or too long", what, path ? path : "");
    snprintf(dir, cap, "%s", path);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    return pare_check_output_path(dir, what, err);
}

void pare_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

pare_status pare_copy_file(const char *src, const char *dst, pare_error *err)
{
    char *data = NULL;
    size_t len = 0;
    pare_status st = pare_read_file(src, &data, &len, err);
    if (st)
        return st;
    pare_atomic_file f;
    if (!(st = pare_atomic_open(&f, dst, err))) {
        if (len && fwrite(data, 1, len, f.fp) != len) {
            st = pare_fail(err, PARE_EIO, "%s: write failed: %s", dst, strerror(errno));
            pare_atomic_abort(&f);
        } else
            st = pare_atomic_commit(&f, err);
    }
    free(data);
    return st;
}

pare_status pare_write_json_atomic(const char *path, const json_t *j, size_t flags, pare_error *err)
{
    pare_atomic_file f;
    pare_status st = pare_atomic_open(&f, path, err);
    if (st)
        return st;
    if (json_dumpf(j, f.fp, flags) != 0 || fputc('\n', f.fp) == EOF) {
        int e = errno;
        pare_atomic_abort(&f);
        return pare_fail(err, PARE_EIO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return pare_atomic_commit(&f, err);
}

pare_status pare_remove_flat_dir(const char *dir, pare_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return pare_fail(err, PARE_EIO, "%s: cannot list the folder to remove it: %s", dir, strerror(errno));
    struct dirent *e;
    char p[4400];
    const char *kept = NULL; /* the first entry that could not be removed */
    int kept_errno = 0;
    char kept_name[256];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        int why = 0;
        if (lstat(p, &st) != 0)
            why = errno;
        else if (S_ISDIR(st.st_mode))
            why = EISDIR;
        else if (unlink(p) != 0)
            why = errno;
        if (why && !kept) {
            kept_errno = why;
            snprintf(kept_name, sizeof kept_name, "%s", e->d_name);
            kept = kept_name;
        }
    }
    closedir(d);
    if (kept)
        return pare_fail(err, PARE_EIO, "%s: cannot remove '%s' in it: %s", dir, kept, strerror(kept_errno));
    if (rmdir(dir) != 0)
        return pare_fail(err, PARE_EIO, "%s: cannot remove the folder: %s", dir, strerror(errno));
    return PARE_OK;
}
