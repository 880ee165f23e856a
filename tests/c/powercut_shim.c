/*
 * An LD_PRELOAD shim for crates/cli/tests/processes/power_cut.rs: a power-cut recorder.
 *
 * For one SQLite database (CS_PC_DB, an absolute path) and its WAL, it keeps
 * in CS_PC_DIR a copy of each file as it was when its last fsync/fdatasync
 * returned: what a power cut leaves on storage if every write since that sync
 * is lost (the page cache is gone; the -shm is rebuilt from the WAL). With
 * CS_PC_CUT=N it cuts the power just before the N-th sync of either file
 * (counted from 1): the process is SIGKILLed inside the sync call, so that
 * sync never happens and no byte goes out to the network after it. Every sync
 * is logged to CS_PC_DIR/syncs.log as "<n> <file> <bytes>".
 *
 * A sync is copied after the real call returns, under a lock: SQLite is
 * blocked in the call meanwhile, so the copy is exactly the synced content.
 * A SIGKILL from outside while a copy is being written leaves the previous
 * copy in place (the copy is renamed into place), as if the power went just
 * before that sync returned.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long syncs = 0;

/* "db" or "wal" if fd is the database or its WAL (path set), else 0. */
static const char *watched(int fd, char *path, size_t cap) {
    const char *db = getenv("CS_PC_DB");
    if (!db || !getenv("CS_PC_DIR")) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t len = strlen(db);
    if (strncmp(path, db, len) != 0) return 0;
    if (path[len] != 0 && strcmp(path + len, "-wal") != 0) return 0;
    return path[len] == 0 ? "db" : "wal";
}

static void log_sync(long n, const char *which, long long bytes) {
    char p[4096], line[128];
    snprintf(p, sizeof p, "%s/syncs.log", getenv("CS_PC_DIR"));
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    int k = snprintf(line, sizeof line, "%ld %s %lld\n", n, which, bytes);
    if (write(fd, line, (size_t)k) < 0) { /* best effort */ }
    close(fd);
}

/* Copies `path` to CS_PC_DIR/<basename of the file>, atomically. */
static long long copy_out(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char dst[8192], tmp[8200];
    snprintf(dst, sizeof dst, "%s/%s", getenv("CS_PC_DIR"), base);
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    static char buf[1 << 16];
    long long total = 0;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            total = -1;
            break;
        }
        total += n;
    }
    close(in);
    close(out);
    if (total >= 0) rename(tmp, dst);
    return total;
}

static int around(int fd, int (*real)(int)) {
    char path[4096];
    const char *which = watched(fd, path, sizeof path);
    if (!which) return real(fd);
    pthread_mutex_lock(&lock);
    long n = ++syncs;
    const char *cut = getenv("CS_PC_CUT");
    if (cut && atol(cut) == n) {
        log_sync(n, "cut", 0);
        kill(getpid(), SIGKILL); /* the power goes before this sync */
        for (;;) pause();
    }
    int r = real(fd);
    if (r == 0) log_sync(n, which, copy_out(path));
    pthread_mutex_unlock(&lock);
    return r;
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return around(fd, real);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return around(fd, real);
}
