/*
 * Issue 22 point 2 through the C ABI, with another process holding the
 * queue's write lock. Built and run by crates/cli/tests/processes/queue_contention.rs, which
 * prepares DB (a config, country IN, one large item, a slow loopback server)
 * and takes the lock with the sqlite3 shell when this program asks:
 *
 *   ./test_contention DB ROOT.json WORKDIR
 *
 * 1. cs_run_with_events(4 s): at the first progress event it creates
 *    WORKDIR/progressed and waits for WORKDIR/locked (the other process now
 *    holds BEGIN IMMEDIATE); the run must return CS_OK, stopped TIME_UP,
 *    within 5 s of its start.
 * 2. A fresh cs_open, cs_stats and cs_get_config_info must answer within 1 s.
 * 3. cs_run_once(60 s) on that handle, blocked on the lock, cancelled from
 *    another thread: returns within 3 s of cs_cancel.
 *
 * Prints the measured times; exits 0 when every check passes. alarm() ends
 * a hung program.
 */
#define _POSIX_C_SOURCE 200809L
#include "cloudsync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        perror("read");
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static char progressed[4096], locked[4096];

/* At the first bytes: ask for the lock and wait until it is held. */
static int on_event(void *user, const cs_event *e) {
    int *asked = user;
    if (e->type == CS_EVENT_PROGRESS && e->sent > 0 && !*asked) {
        *asked = 1;
        FILE *f = fopen(progressed, "w");
        if (f) fclose(f);
        for (int i = 0; i < 2000 && access(locked, F_OK) != 0; i++) {
            struct timespec t = {0, 10 * 1000 * 1000};
            nanosleep(&t, NULL);
        }
    }
    return 0;
}

static void *cancel_later(void *agent) {
    struct timespec t = {0, 500 * 1000 * 1000};
    nanosleep(&t, NULL);
    double *at = malloc(sizeof *at);
    *at = now_ms();
    cs_cancel(agent);
    return at;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DB ROOT.json WORKDIR\n", argv[0]);
        return 2;
    }
    alarm(90);
    snprintf(progressed, sizeof progressed, "%s/progressed", argv[3]);
    snprintf(locked, sizeof locked, "%s/locked", argv[3]);
    size_t root_len;
    uint8_t *root = read_file(argv[2], &root_len);

    /* 1. A run mid-item when the lock is taken returns on time. */
    cs_agent *a = NULL;
    CHECK(cs_open(argv[1], root, root_len, &a) == CS_OK);
    cs_run_report rep;
    memset(&rep, 0, sizeof rep);
    int asked = 0;
    double t0 = now_ms();
    cs_status st = cs_run_with_events(a, 4000, on_event, &asked, &rep);
    double took = now_ms() - t0;
    printf("run(4000 ms) under the lock returned after %.0f ms: status %d stopped %d\n", took,
           (int)st, (int)rep.stopped);
    CHECK(asked);
    CHECK(st == CS_OK);
    CHECK(rep.stopped == CS_STOP_TIME_UP);
    CHECK(took <= 5000.0);

    /* 2. Reads on a fresh handle answer at once. */
    cs_agent *b = NULL;
    cs_queue_stats qs;
    cs_config_info ci;
    t0 = now_ms();
    CHECK(cs_open(argv[1], root, root_len, &b) == CS_OK);
    CHECK(cs_stats(b, &qs) == CS_OK);
    CHECK(cs_get_config_info(b, &ci) == CS_OK);
    took = now_ms() - t0;
    printf("open + stats + config info under the lock: %.1f ms\n", took);
    CHECK(took < 1000.0);
    CHECK(qs.pending + qs.uploading == 1);
    CHECK(ci.installed_config_version == 1);

    /* 3. cs_cancel ends a run blocked on the lock. */
    pthread_t th;
    CHECK(pthread_create(&th, NULL, cancel_later, b) == 0);
    st = cs_run_once(b, 60000, NULL, NULL, &rep);
    double returned = now_ms();
    void *at = NULL;
    pthread_join(th, &at);
    took = returned - *(double *)at;
    printf("run blocked on the lock returned %.0f ms after cs_cancel: status %d\n", took, (int)st);
    CHECK(st == CS_BUSY || (st == CS_OK && rep.stopped == CS_STOP_CANCELLED));
    CHECK(took <= 3000.0);
    free(at);

    CHECK(cs_close(b) == CS_OK);
    CHECK(cs_close(a) == CS_OK);
    free(root);
    if (atomic_load(&failures)) {
        fprintf(stderr, "%d check(s) failed\n", atomic_load(&failures));
        return 1;
    }
    printf("ok\n");
    return 0;
}
