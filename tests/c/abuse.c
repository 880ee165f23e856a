/*
 * The C ABI against bad input (issue 24): NULLs everywhere, invalid UTF-8,
 * oversized lengths, zero-length buffers, calls after cs_close, double
 * close, made-up handles (small integers among them), cs_open's `*out` on
 * every failure, cs_cancel racing cs_close from a thread, a close during a
 * run (from its own callback and from another thread: the run is
 * cancelled), callbacks that call back in and fail, and many threads on one
 * handle, closed while they all make calls. Every call must return its exact status code and nothing may
 * crash: crates/cli/tests/processes/c_abuse.rs builds this with
 * -fsanitize=address,undefined and fails on any ASan/UBSan/LSan report.
 *
 *   abuse DIR ROOT.json CONFIG.json
 *
 * ROOT and CONFIG: a loopback world whose region "in" requires a bearer
 * token (TOKEN below) from the credential callback. Prints "abuse: N calls"
 * and "all checks passed".
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define TOKEN "c-abuse-token-77"

static atomic_long calls;

/* `call` returns exactly `expected`, and its message contains `msg` ("" for any). */
#define EXPECT(call, expected, msg)                                                         \
    do {                                                                                    \
        atomic_fetch_add(&calls, 1);                                                        \
        cs_status st_ = (call);                                                             \
        if (st_ != (expected) || strstr(cs_last_error(), (msg)) == NULL) {                  \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s) with \"%s\"; "    \
                            "last error: %s\n",                                             \
                    __FILE__, __LINE__, #call, (int)st_, cs_status_name(st_), (int)(expected), \
                    cs_status_name(expected), (msg), cs_last_error());                      \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#define BAD(call, msg) EXPECT(call, CS_INVALID_ARGUMENT, msg)
#define OK(call) EXPECT(call, CS_OK, "")

/* cs_open fails with `msg` and leaves NULL in `*out`, which held a
 * non-NULL value before, whichever argument it refused. */
#define BAD_OPEN(db, r, rlen, msg)                          \
    do {                                                    \
        cs_agent *out_ = (cs_agent *)(uintptr_t)1;          \
        BAD(cs_open((db), (r), (rlen), &out_), (msg));      \
        CHECK(out_ == NULL);                                \
    } while (0)

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Every entry point with a NULL (or zero) agent handle, or a made-up one. */
static void bad_handles(cs_agent *h, const char *msg) {
    cs_queue_stats stats;
    cs_config_info ci;
    cs_item item;
    cs_audit_record rec;
    cs_run_report rep;
    cs_refresh_report rr;
    char buf[64];
    int64_t id;
    int32_t code;
    uint32_t days;
    uint64_t n64;
    size_t n;
    const char *paths[] = {"/x"};
    BAD(cs_set_country(h, "IN"), msg);
    BAD(cs_set_account(h, "a", NULL), msg);
    BAD(cs_account_state(h, &code), msg);
    BAD(cs_install(h, (const uint8_t *)"x", 1), msg);
    BAD(cs_refresh_config(h, &rr), msg);
    BAD(cs_get_config_info(h, &ci), msg);
    BAD(cs_approved_region(h, buf, sizeof buf), msg);
    BAD(cs_config_region(h, 0, buf, sizeof buf), msg);
    BAD(cs_enqueue(h, "/x", "backup", 0, &id), msg);
    BAD(cs_enqueue_all(h, paths, 1, "backup", 0, &id), msg);
    BAD(cs_get_item(h, 1, &item), msg);
    BAD(cs_item_path(h, 1, buf, sizeof buf), msg);
    BAD(cs_list_items(h, -1, 0, &item, 1, &n), msg);
    BAD(cs_retry_dead(h, &n64), msg);
    BAD(cs_remove(h, 1), msg);
    BAD(cs_audit(h, 0, &rec, 1, &n), msg);
    BAD(cs_audit_retention_days(h, &days), msg);
    BAD(cs_set_audit_retention_days(h, 30, &n64), msg);
    BAD(cs_prune_audit(h, &n64), msg);
    BAD(cs_set_credential_provider(h, NULL, NULL), msg);
    BAD(cs_run_once(h, 10, NULL, NULL, &rep), msg);
    BAD(cs_run_with_events(h, 10, NULL, NULL, &rep), msg);
    BAD(cs_cancel(h), msg);
    BAD(cs_stats(h, &stats), msg);
    BAD(cs_rehome(h, &n64), msg);
    BAD(cs_rehome_to(h, "in", &n64), msg);
    BAD(cs_discard_held(h, &n64), msg);
}

/* Every pointer argument NULL in turn, on a live handle. */
static void null_arguments(cs_agent *a, const uint8_t *root, size_t root_len) {
    cs_item item;
    cs_audit_record rec;
    char buf[64];
    int64_t id;
    uint64_t n64;
    size_t n;
    const char *paths[] = {"/x", NULL};
    BAD_OPEN(NULL, root, root_len, "db_path is null");
    BAD_OPEN("x.db", NULL, root_len, "root is null");
    BAD_OPEN(NULL, NULL, root_len, "db_path is null");
    BAD(cs_open("x.db", root, root_len, NULL), "out is null");
    BAD(cs_set_country(a, NULL), "iso2 is null");
    BAD(cs_account_state(a, NULL), "out is null");
    BAD(cs_install(a, NULL, 3), "envelope is null");
    BAD(cs_refresh_config(a, NULL), "out is null");
    BAD(cs_get_config_info(a, NULL), "out is null");
    BAD(cs_approved_region(a, NULL, 64), "buf is null");
    BAD(cs_config_region(a, 0, NULL, 64), "buf is null");
    BAD(cs_enqueue(a, NULL, "backup", 0, &id), "path is null");
    BAD(cs_enqueue(a, "/x", NULL, 0, &id), "service is null");
    BAD(cs_enqueue(a, "/x", "backup", 0, NULL), "out_id is null");
    BAD(cs_enqueue_all(a, NULL, 1, "backup", 0, &id), "paths is null");
    BAD(cs_enqueue_all(a, paths, 2, "backup", 0, (int64_t[2]){0}), "a path is null");
    BAD(cs_enqueue_all(a, paths, 1, NULL, 0, &id), "service is null");
    BAD(cs_enqueue_all(a, paths, 1, "backup", 0, NULL), "out_ids is null");
    BAD(cs_get_item(a, 1, NULL), "out is null");
    BAD(cs_item_path(a, 1, NULL, 64), "buf is null");
    BAD(cs_list_items(a, -1, 0, NULL, 1, &n), "out is null");
    BAD(cs_list_items(a, -1, 0, &item, 1, NULL), "out_len is null");
    BAD(cs_retry_dead(a, NULL), "out_count is null");
    BAD(cs_audit(a, 0, NULL, 1, &n), "out is null");
    BAD(cs_audit(a, 0, &rec, 1, NULL), "out_len is null");
    BAD(cs_audit_retention_days(a, NULL), "out_days is null");
    BAD(cs_set_audit_retention_days(a, 30, NULL), "out_pruned is null");
    BAD(cs_prune_audit(a, NULL), "out_pruned is null");
    BAD(cs_run_once(a, 10, NULL, NULL, NULL), "out is null");
    BAD(cs_run_with_events(a, 10, NULL, NULL, NULL), "out is null");
    BAD(cs_stats(a, NULL), "out is null");
    BAD(cs_rehome(a, NULL), "out_count is null");
    BAD(cs_rehome_to(a, NULL, &n64), "region is null");
    BAD(cs_rehome_to(a, "in", NULL), "out_count is null");
    BAD(cs_discard_held(a, NULL), "out_count is null");
    (void)buf;
}

/* Invalid UTF-8, oversized lengths, zero-length and short buffers. */
static void bad_values(cs_agent *a, const char *dir, const uint8_t *root, size_t root_len) {
    cs_item item;
    char buf[64];
    char path[4096];
    int64_t id = 0;
    uint64_t n64;
    size_t n = 7;
    const char *bad_paths[] = {"/ok", "/\xc3\x28"};
    BAD_OPEN("\xff.db", root, root_len, "db_path is not valid UTF-8");
    BAD_OPEN("", root, root_len, "db_path is empty");
    BAD_OPEN("x.db", root, SIZE_MAX, "root is too long");
    BAD_OPEN("x.db", root, (size_t)PTRDIFF_MAX + 1, "root is too long");
    BAD(cs_set_country(a, "I\xe2\x82"), "iso2 is not valid UTF-8");
    BAD(cs_set_account(a, "\xed\xa0\x80", NULL), "account is not valid UTF-8"); /* a surrogate */
    BAD(cs_set_account(a, NULL, "IN"), "");
    BAD(cs_enqueue(a, "/\xc0\xaf", "backup", 0, &id), "path is not valid UTF-8");
    BAD(cs_enqueue(a, "/x", "back\xfe", 0, &id), "service is not valid UTF-8");
    BAD(cs_enqueue(a, "relative", "backup", 0, &id), "");
    BAD(cs_enqueue_all(a, bad_paths, 2, "backup", 0, (int64_t[2]){0}),
        "a path is not valid UTF-8");
    BAD(cs_enqueue_all(a, bad_paths, SIZE_MAX, "backup", 0, &id), "paths is too long");
    BAD(cs_rehome_to(a, "\x80", &n64), "region is not valid UTF-8");
    BAD(cs_install(a, (const uint8_t *)"x", SIZE_MAX), "envelope is too long");
    BAD(cs_install(a, (const uint8_t *)"x", (size_t)PTRDIFF_MAX + 1), "envelope is too long");
    EXPECT(cs_install(a, (const uint8_t *)"", 0), CS_MALFORMED, "");
    BAD(cs_list_items(a, -1, 0, &item, SIZE_MAX, &n), "out is too long");
    BAD(cs_list_items(a, 99, 0, &item, 1, &n), "unknown state");
    BAD(cs_list_items(a, -1, -1, &item, 1, &n), "after_id is negative");
    OK(cs_list_items(a, -1, 0, &item, 0, &n));
    CHECK(n == 0);
    BAD(cs_audit(a, 0, (cs_audit_record *)buf, SIZE_MAX / 2, &n), "out is too long");
    BAD(cs_approved_region(a, buf, 0), "buffer length is 0");
    BAD(cs_approved_region(a, buf, SIZE_MAX), "buf is too long");
    BAD(cs_item_path(a, 1, buf, 0), "buffer length is 0");
    BAD(cs_config_region(a, SIZE_MAX, buf, 0), "buffer length is 0");
    BAD(cs_set_audit_retention_days(a, 0, &n64), "");
    BAD(cs_set_audit_retention_days(a, UINT32_MAX, &n64), "");
    EXPECT(cs_get_item(a, -1, &item), CS_NOT_FOUND, "");
    EXPECT(cs_remove(a, INT64_MAX), CS_NOT_FOUND, "");
    /* None of the refused calls above queued, moved or lost anything. */
    cs_queue_stats untouched;
    OK(cs_stats(a, &untouched));
    CHECK(untouched.pending + untouched.uploading + untouched.failed + untouched.dead +
              untouched.held ==
          0);
    /* A short buffer fails and holds "". */
    snprintf(path, sizeof path, "%s/short.bin", dir);
    FILE *f = fopen(path, "wb");
    fputs("data", f);
    fclose(f);
    OK(cs_enqueue(a, path, "backup", 0, &id));
    memset(buf, 'x', sizeof buf);
    BAD(cs_item_path(a, id, buf, 4), "buffer too small");
    CHECK(buf[0] == '\0');
    OK(cs_item_path(a, id, path, sizeof path));
    OK(cs_remove(a, id));
    /* An empty batch is no work, not an error. */
    OK(cs_enqueue_all(a, bad_paths, 0, "backup", 0, &id));
    /* Unknown codes have the name "unknown", never NULL. */
    CHECK(strcmp(cs_state_name(INT32_MIN), "unknown") == 0);
    CHECK(strcmp(cs_status_name(-1), "unknown") == 0);
    CHECK(strcmp(cs_event_kind_name(INT32_MAX), "unknown") == 0);
    CHECK(strcmp(cs_stop_reason_name(-1), "unknown") == 0);
}

/* Successful calls each thread makes before the handle may be closed, and
 * the threads that made them (or gave up): the close comes while every
 * thread is busy on the live handle, not before the first call. */
#define CALLS_BEFORE_CLOSE 50
static atomic_int ready;

/* One thread's count of successful calls; at CALLS_BEFORE_CLOSE it says so. */
static void made_call(int *n) {
    if (++*n == CALLS_BEFORE_CLOSE) {
        atomic_fetch_add(&ready, 1);
    }
}

/* A thread that returns early still counts as ready: the close must come. */
static void leaving(int n) {
    if (n < CALLS_BEFORE_CLOSE) {
        atomic_fetch_add(&ready, 1);
    }
}

/* cs_cancel in a loop on another thread while this one closes the handle. */
static void *cancel_loop(void *arg) {
    cs_agent *a = arg;
    int n = 0;
    for (;;) {
        atomic_fetch_add(&calls, 1);
        cs_status st = cs_cancel(a);
        if (st == CS_INVALID_ARGUMENT) {
            CHECK(strcmp(cs_last_error(), "invalid argument: agent handle is closed") == 0);
            CHECK(n >= CALLS_BEFORE_CLOSE);
            leaving(n);
            return NULL;
        }
        CHECK(st == CS_OK);
        made_call(&n);
    }
}

/* Readers on a shared handle; the handle is closed under them. */
static void *reader_loop(void *arg) {
    cs_agent *a = arg;
    int n = 0;
    for (int i = 0; i < 100000; i++) {
        cs_queue_stats stats;
        cs_config_info ci;
        atomic_fetch_add(&calls, 2);
        cs_status s1 = cs_stats(a, &stats);
        cs_status s2 = cs_get_config_info(a, &ci);
        if (s1 == CS_INVALID_ARGUMENT || s2 == CS_INVALID_ARGUMENT) {
            CHECK(strstr(cs_last_error(), "agent handle is closed") != NULL);
            CHECK(n >= CALLS_BEFORE_CLOSE);
            leaving(n);
            return NULL;
        }
        CHECK(s1 == CS_OK && s2 == CS_OK);
        made_call(&n);
    }
    leaving(n);
    return NULL;
}

static void threads(const char *dir, const uint8_t *root, size_t root_len) {
    char db[4096];
    snprintf(db, sizeof db, "%s/threads.db", dir);
    for (int round = 0; round < 20; round++) {
        cs_agent *a = NULL;
        OK(cs_open(db, root, root_len, &a));
        pthread_t t[9];
        atomic_store(&ready, 0);
        pthread_create(&t[0], NULL, cancel_loop, a);
        for (int i = 1; i < 9; i++) {
            pthread_create(&t[i], NULL, reader_loop, a);
        }
        /* Every thread has made CALLS_BEFORE_CLOSE successful calls (or left). */
        while (atomic_load(&ready) < 9) {
            sched_yield();
        }
        OK(cs_close(a));
        for (int i = 0; i < 9; i++) {
            pthread_join(t[i], NULL);
        }
        BAD(cs_close(a), "agent handle is closed");
    }
}

struct cb_state {
    cs_agent *agent;
    int fail_token; /* the credential callback fails with 7 */
    int close_in_event;
    int closed; /* the event callback closed `agent` */
    int events;
};

static int credential_cb(void *user, const char *account, const char *region,
                         const char *service, int refresh, char *out, size_t out_cap,
                         size_t *out_len) {
    struct cb_state *s = user;
    cs_run_report rep;
    cs_queue_stats stats;
    (void)account, (void)region, (void)service, (void)refresh;
    /* Calls back in: a nested run is busy, a read works, a bad call fails;
     * once the handle is closed (mid-run), every call says so. */
    if (s->closed) {
        BAD(cs_run_once(s->agent, 10, NULL, NULL, &rep), "agent handle is closed");
        BAD(cs_stats(s->agent, &stats), "agent handle is closed");
    } else {
        EXPECT(cs_run_once(s->agent, 10, NULL, NULL, &rep), CS_BUSY, "");
        OK(cs_stats(s->agent, &stats));
        BAD(cs_stats(s->agent, NULL), "out is null");
    }
    if (s->fail_token) {
        return 7;
    }
    CHECK(out_cap >= strlen(TOKEN));
    memcpy(out, TOKEN, strlen(TOKEN));
    *out_len = strlen(TOKEN);
    return 0;
}

static int event_cb(void *user, const cs_event *e) {
    struct cb_state *s = user;
    cs_queue_stats stats;
    cs_item item;
    s->events++;
    if (e->type == CS_EVENT_STARTED && s->close_in_event) {
        /* Closing the handle of the run in progress: the run is cancelled
         * (it returns when this callback does), the handle is gone for
         * every new call. */
        OK(cs_get_item(s->agent, e->item_id, &item));
        CHECK(item.state_code == CS_STATE_UPLOADING);
        OK(cs_close(s->agent));
        s->closed = 1;
        BAD(cs_stats(s->agent, &stats), "agent handle is closed");
        BAD(cs_close(s->agent), "agent handle is closed");
        return 0;
    }
    if (!s->close_in_event) {
        EXPECT(cs_run_with_events(s->agent, 10, NULL, NULL, &(cs_run_report){0}), CS_BUSY, "");
        EXPECT(cs_get_item(s->agent, -7, &item), CS_NOT_FOUND, "");
        return 1; /* cancel */
    }
    return 0;
}

static void callbacks(const char *dir, const uint8_t *root, size_t root_len,
                      const uint8_t *config, size_t config_len) {
    char db[4096], file[4096];
    snprintf(db, sizeof db, "%s/callbacks.db", dir);
    snprintf(file, sizeof file, "%s/payload.bin", dir);
    FILE *f = fopen(file, "wb");
    for (int i = 0; i < 4096; i++) {
        fputc(i & 0xff, f);
    }
    fclose(f);
    struct cb_state s = {0};
    cs_run_report rep;
    int64_t id;
    OK(cs_open(db, root, root_len, &s.agent));
    OK(cs_install(s.agent, config, config_len));
    OK(cs_set_account(s.agent, "alice", "IN"));
    OK(cs_enqueue(s.agent, file, "backup", 0, &id));
    OK(cs_set_credential_provider(s.agent, credential_cb, &s));

    /* 1. The credential callback fails (after calling back in). */
    s.fail_token = 1;
    EXPECT(cs_run_once(s.agent, 20000, NULL, NULL, &rep), CS_UNAUTHORIZED, "callback returned 7");

    /* 2. The event callback calls back in and cancels. */
    s.fail_token = 0;
    OK(cs_run_with_events(s.agent, 20000, event_cb, &s, &rep));
    CHECK(rep.stopped == CS_STOP_CANCELLED && s.events >= 1);

    /* 3. The event callback closes the handle mid-run: the run is
     * cancelled, as by cs_cancel, and returns normally. */
    s.close_in_event = 1;
    s.events = 0;
    OK(cs_run_with_events(s.agent, 20000, event_cb, &s, &rep));
    CHECK(rep.stopped == CS_STOP_CANCELLED);
    BAD(cs_run_once(s.agent, 10, NULL, NULL, &rep), "agent handle is closed");
}

/* A run in progress on one thread while another closes its handle. */
struct close_run {
    cs_agent *agent;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started; /* the run's first item started */
    int closed;  /* the main thread closed the handle */
    int done;    /* the run returned */
    cs_status st;
    cs_run_report rep;
};

static void set_flag(struct close_run *c, int *flag) {
    pthread_mutex_lock(&c->mu);
    *flag = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits at most `secs` seconds for `*flag`; returns whether it is set. */
static int wait_flag(struct close_run *c, int *flag, int secs) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += secs;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!*flag && rc == 0) {
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    }
    int set = *flag;
    pthread_mutex_unlock(&c->mu);
    return set;
}

static int token_cb(void *user, const char *account, const char *region, const char *service,
                    int refresh, char *out, size_t out_cap, size_t *out_len) {
    (void)user, (void)account, (void)region, (void)service, (void)refresh;
    CHECK(out_cap >= strlen(TOKEN));
    memcpy(out, TOKEN, strlen(TOKEN));
    *out_len = strlen(TOKEN);
    return 0;
}

/* Holds the run at its first item until the handle is closed. */
static int close_run_event(void *user, const cs_event *e) {
    struct close_run *c = user;
    if (e->type == CS_EVENT_STARTED && !c->started) {
        set_flag(c, &c->started);
        CHECK(wait_flag(c, &c->closed, 30));
    }
    return 0;
}

static void *close_run_thread(void *arg) {
    struct close_run *c = arg;
    atomic_fetch_add(&calls, 1);
    c->st = cs_run_with_events(c->agent, 60000, close_run_event, c, &c->rep);
    set_flag(c, &c->done);
    return NULL;
}

/* cs_close cancels a run in progress on another thread: with two items
 * queued, the run returns CS_STOP_CANCELLED soon after the close instead of
 * going on to the second (a bounded wait, not a timing assertion: a run
 * that was not cancelled would also return, DRAINED). */
static void close_during_run(const char *dir, const uint8_t *root, size_t root_len,
                             const uint8_t *config, size_t config_len) {
    char db[4096], file[4096];
    snprintf(db, sizeof db, "%s/close_run.db", dir);
    struct close_run c = {0};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    OK(cs_open(db, root, root_len, &c.agent));
    OK(cs_install(c.agent, config, config_len));
    OK(cs_set_account(c.agent, "bob", "IN"));
    OK(cs_set_credential_provider(c.agent, token_cb, NULL));
    for (int i = 0; i < 2; i++) {
        int64_t id;
        snprintf(file, sizeof file, "%s/close_run_%d.bin", dir, i);
        FILE *f = fopen(file, "wb");
        fputs("some bytes", f);
        fclose(f);
        OK(cs_enqueue(c.agent, file, "backup", 0, &id));
    }
    pthread_t t;
    pthread_create(&t, NULL, close_run_thread, &c);
    CHECK(wait_flag(&c, &c.started, 30));
    OK(cs_close(c.agent));
    set_flag(&c, &c.closed);
    CHECK(wait_flag(&c, &c.done, 2));
    pthread_join(t, NULL);
    CHECK(c.st == CS_OK);
    CHECK(c.rep.stopped == CS_STOP_CANCELLED);
    BAD(cs_close(c.agent), "agent handle is closed");
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR ROOT.json CONFIG.json\n", argv[0]);
        return 2;
    }
    size_t root_len, config_len;
    uint8_t *root = read_file(argv[2], &root_len);
    uint8_t *config = read_file(argv[3], &config_len);
    char db[4096];
    snprintf(db, sizeof db, "%s/abuse.db", argv[1]);

    bad_handles(NULL, "agent handle is null");
    bad_handles((cs_agent *)(uintptr_t)0x7fffffff, "agent handle is closed"); /* never issued */
    bad_handles((cs_agent *)(uintptr_t)-1, "agent handle is closed");

    cs_agent *a = NULL;
    OK(cs_open(db, root, root_len, &a));
    /* Ids are never small integers nor near -1 (ffi::next_id), so made-up
     * small handles are refused while an agent is open. */
    CHECK((uintptr_t)a >= 0x10000 && (uintptr_t)a < 0x7fff0000);
    for (uintptr_t k = 1; k <= 3; k++) {
        bad_handles((cs_agent *)k, "agent handle is closed");
    }
    null_arguments(a, root, root_len);
    bad_values(a, argv[1], root, root_len);
    OK(cs_close(a));
    bad_handles(a, "agent handle is closed");
    BAD(cs_close(a), "agent handle is closed");
    OK(cs_close(NULL));

    threads(argv[1], root, root_len);
    callbacks(argv[1], root, root_len, config, config_len);
    close_during_run(argv[1], root, root_len, config, config_len);

    free(root);
    free(config);
    printf("abuse: %ld calls\n", (long)atomic_load(&calls));
    if (atomic_load(&failures)) {
        fprintf(stderr, "%d check(s) failed\n", atomic_load(&failures));
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
