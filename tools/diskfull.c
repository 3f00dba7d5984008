/*
 * A full disk on demand, for serialgate's I/O-error tests: an LD_PRELOAD shim that fails
 * every write to a regular file with ENOSPC while the file named by SERIALGATE_DISK_FULL
 * exists, and lets everything else (sockets, pipes, reads) through. Creating the file
 * fills the disk; removing it frees space again.
 *
 * A failing device the same way: while the file named by SERIALGATE_SYNC_FAILS exists,
 * every fsync and fdatasync of a regular file fails with EIO (writes still succeed, into
 * the page cache).
 *
 *   gcc -shared -fPIC -O2 -o diskfull.so tools/diskfull.c -ldl
 *   SERIALGATE_DISK_FULL=/tmp/full LD_PRELOAD=./diskfull.so serialgate serve ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Whether the flag file named by the variable `flag_var` exists and `fd` is a regular file. */
static int faulty(const char *flag_var, int fd) {
    const char *flag = getenv(flag_var);
    struct stat st;
    if (flag == NULL || access(flag, F_OK) != 0) return 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    return 1;
}

static int disk_full(int fd) { return faulty("SERIALGATE_DISK_FULL", fd); }

#define REAL(name) static __typeof__(name) *real; if (!real) real = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    REAL(writev);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t off) {
    REAL(pwritev);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, count, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int count, off_t off) {
    REAL(pwritev64);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, count, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int count, off_t off, int flags) {
    REAL(pwritev2);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, count, off, flags);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len) {
    REAL(fallocate64);
    if (disk_full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(posix_fallocate);
    if (disk_full(fd)) return ENOSPC;
    return real(fd, off, len);
}

int fsync(int fd) {
    REAL(fsync);
    if (faulty("SERIALGATE_SYNC_FAILS", fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (faulty("SERIALGATE_SYNC_FAILS", fd)) { errno = EIO; return -1; }
    return real(fd);
}
