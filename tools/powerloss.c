/*
 * Power-loss shim for `serialgate crash-loop --power-loss-shim`: preloaded into the
 * server (LD_PRELOAD), it records what each fsync/fdatasync made durable, so that after a
 * kill -9 the crash loop can cut every file back to its last synced length, as a power
 * failure would leave it.
 *
 * Each line of the log named by SERIALGATE_SYNC_LOG is one of:
 *   S <size> <path>        the file was synced at this size
 *   R <old path>\t<new>   a rename (the synced size moves with the file)
 *   L <old path>\t<new>   a hard link
 * The size is recorded just before the real call, so a kill during the call counts the
 * data as synced: the shim can only keep too much, never cut acknowledged data.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_fd = -1;

static void log_line(const char *line, size_t len) {
    if (log_fd < 0) {
        const char *path = getenv("SERIALGATE_SYNC_LOG");
        if (!path) return;
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log_fd < 0) return;
    }
    /* O_APPEND writes of one line are not interleaved between threads. */
    ssize_t ignored = write(log_fd, line, len);
    (void)ignored;
}

static void record_sync(int fd) {
    char link[64], path[PATH_MAX], line[PATH_MAX + 64];
    struct stat st;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    path[n] = 0;
    int len = snprintf(line, sizeof line, "S %lld %s\n", (long long)st.st_size, path);
    if (len > 0 && (size_t)len < sizeof line) log_line(line, (size_t)len);
}

static void record_move(char kind, const char *from, const char *to) {
    char a[PATH_MAX], b[2 * PATH_MAX], line[3 * PATH_MAX + 8];
    if (!realpath(from, a)) return;
    /* The target may not exist yet: resolve its directory. */
    char dir[PATH_MAX];
    strncpy(dir, to, sizeof dir - 1);
    dir[sizeof dir - 1] = 0;
    char *slash = strrchr(dir, '/');
    const char *base = to;
    if (slash) { *slash = 0; base = slash + 1; } else { strcpy(dir, "."); }
    char rdir[PATH_MAX];
    if (!realpath(dir, rdir)) return;
    snprintf(b, sizeof b, "%s/%s", rdir, base);
    int len = snprintf(line, sizeof line, "%c %s\t%s\n", kind, a, b);
    if (len > 0 && (size_t)len < sizeof line) log_line(line, (size_t)len);
}

typedef int (*fd_fn)(int);
typedef int (*path2_fn)(const char *, const char *);

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

int fsync(int fd) {
    static fd_fn next;
    if (!next) next = (fd_fn)real("fsync");
    record_sync(fd);
    return next(fd);
}

int fdatasync(int fd) {
    static fd_fn next;
    if (!next) next = (fd_fn)real("fdatasync");
    record_sync(fd);
    return next(fd);
}

int rename(const char *from, const char *to) {
    static path2_fn next;
    if (!next) next = (path2_fn)real("rename");
    record_move('R', from, to);
    return next(from, to);
}

int link(const char *from, const char *to) {
    static path2_fn next;
    if (!next) next = (path2_fn)real("link");
    record_move('L', from, to);
    return next(from, to);
}
