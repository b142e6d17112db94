/* Whole-file reads, read-only memory maps and atomic writes. */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens a regular file read-only; *size gets its length. */
static pare_status open_regular(const char *path, int *fd_out, size_t *size, pare_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pare_fail(err, PARE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pare_fail(err, PARE_EIO, "%s: not a regular file", path);
    }
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return PARE_OK;
}

pare_status pare_read_file(const char *path, char **data, size_t *len, pare_error *err)
{
    *data = NULL;
    *len = 0;
    int fd;
    size_t n;
    pare_status rc = open_regular(path, &fd, &n, err);
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

pare_status pare_map_file(const char *path, pare_map *map, pare_error *err)
{
    map->data = NULL;
    map->len = 0;
    int fd;
    size_t n;
    pare_status rc = open_regular(path, &fd, &n, err);
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
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp)
        return pare_fail(err, PARE_EIO, "%s: cannot create: %s", f->tmp, strerror(errno));
    return PARE_OK;
}

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
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int pare_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

pare_status pare_lock_path(pare_lock *lk, const char *lock_path, const char *what, pare_error *err)
{
    lk->fd = -1;
    if (strlen(lock_path) >= sizeof lk->path)
        return pare_fail(err, PARE_EINVAL, "%s: path too long", lock_path);
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            return pare_fail(err, PARE_EIO, "%s: cannot create the lock file: %s", lock_path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t got = e == EWOULDBLOCK ? read(fd, pid, sizeof pid - 1) : -1;
            close(fd);
            if (e != EWOULDBLOCK)
                return pare_fail(err, PARE_EIO, "%s: cannot lock: %s", lock_path, strerror(e));
            pid[got > 0 ? got : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            return pare_fail(err, PARE_EIO,
                             "%s is in use by another pare process%s%s%s (lock %s); wait for it or choose another output",
                             what, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", lock_path);
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(lock_path, &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n) {
                /* the pid is only for the refusal message */
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

void pare_unlock(pare_lock *lk)
{
    if (!lk || lk->fd < 0)
        return;
    unlink(lk->path); /* while still locked: see pare_lock_path */
    close(lk->fd);
    lk->fd = -1;
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
