/*
 * C test of include/cloudsync.h against libcloudsync.so. Built and run by
 * tests/c_abi.rs:
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -pedantic -I include [-DCLOUDSYNC_TEST_HOOKS] \
 *       tests/c/test_capi.c -L target/debug -lcloudsync -lpthread -o test_capi
 *   LD_LIBRARY_PATH=target/debug ./test_capi ROOT.json CONFIG.json WORKDIR \
 *       CONFIG2.json OTHER_ROOT.json [AUTH_CONFIG.json TOKEN [SOURCES_ROOT.json]]
 *
 * ROOT.json / CONFIG.json: a root envelope and a config signed under it that
 * maps IN to region "in". CONFIG2.json: a config signed under ROOT.json that
 * maps IN to "in" and SG to "sg" (hosts never contacted). OTHER_ROOT.json: a
 * root of the same version as ROOT.json with other keys. AUTH_CONFIG.json
 * (optional): a config signed under ROOT.json that maps IN to a loopback tus
 * server requiring "Authorization: Bearer TOKEN" (the credential callback
 * checks run without it). SOURCES_ROOT.json (optional): a root v1 whose
 * sources list a loopback mirror (with its CA) that answers its first request
 * 500, then serves root/2.json and config.json (IN -> "in"). Exits 0 when every
 * check passes; prints the failed check otherwise. An alarm() ends a hung
 * run (exit by SIGALRM), so a hang cannot stall the test.
 */
#define _POSIX_C_SOURCE 200809L
#include "cloudsync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,  \
                    __LINE__, #cond, cs_last_error());                               \
            failures++;                                                              \
        }                                                                            \
    } while (0)

#define CHECK_STATUS(call, expected)                                                     \
    do {                                                                                 \
        cs_status st_ = (call);                                                          \
        if (st_ != (expected)) {                                                         \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); last error: %s\n", \
                    __FILE__, __LINE__, #call, (int)st_, cs_status_name(st_),             \
                    (int)(expected), cs_status_name(expected), cs_last_error());          \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

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

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* A failing call on another thread must not touch this thread's last error. */
static void *other_thread(void *arg) {
    (void)arg;
    cs_status st = cs_set_country(NULL, "IN");
    return (void *)(intptr_t)(st == CS_INVALID_ARGUMENT && strstr(cs_last_error(), "null") != NULL);
}

/* What the credential callback gives and saw. */
enum cred_mode { CRED_GOOD, CRED_NONE, CRED_WRONG, CRED_FAIL, CRED_OVERFLOW };
struct cred_state {
    const char *token;
    enum cred_mode mode;
    cs_agent *agent;
    pthread_t run_thread; /* the thread that called cs_run_once */
    int calls;
    int refresh[8];   /* refresh flag of each call */
    int off_thread;   /* calls on another thread than run_thread */
    int bad_request;  /* calls with an unexpected account, region, service or out_cap */
    int nested;       /* -1: call cs_run_once from the callback once; then its status */
};

static int credential_cb(void *user, const char *account, const char *region, const char *service,
                         int refresh, char *out, size_t out_cap, size_t *out_len) {
    struct cred_state *s = user;
    if (s->calls < 8) {
        s->refresh[s->calls] = refresh;
    }
    s->calls++;
    if (!pthread_equal(pthread_self(), s->run_thread)) {
        s->off_thread++;
    }
    if (strcmp(account, "alice") != 0 || strcmp(region, "in") != 0 ||
        strcmp(service, "backup") != 0 || out_cap != 8192) {
        s->bad_request++;
    }
    if (s->nested == -1) {
        cs_run_report r;
        s->nested = cs_run_once(s->agent, 1000, NULL, NULL, &r); /* must not deadlock */
    }
    switch (s->mode) {
    case CRED_NONE:
        return 1;
    case CRED_FAIL:
        return 7;
    case CRED_OVERFLOW:
        *out_len = out_cap + 1;
        return 0;
    default:
        break;
    }
    const char *t = s->mode == CRED_WRONG ? "wrong-token" : s->token;
    size_t n = strlen(t);
    if (n > out_cap) {
        return 2;
    }
    memcpy(out, t, n); /* no NUL needed */
    *out_len = n;
    return 0;
}

/* cs_run_once on a thread of its own, keeping that thread's last error. */
struct run_call {
    struct cred_state *cred;
    cs_run_report report;
    cs_status status;
    char error[512];
};

static void *run_thread(void *arg) {
    struct run_call *c = arg;
    c->cred->run_thread = pthread_self();
    c->status = cs_run_once(c->cred->agent, 30000, NULL, NULL, &c->report);
    snprintf(c->error, sizeof c->error, "%s", cs_last_error());
    return NULL;
}

static struct run_call run_elsewhere(struct cred_state *cred) {
    struct run_call c;
    memset(&c, 0, sizeof c);
    c.cred = cred;
    c.status = -1;
    pthread_t t;
    if (pthread_create(&t, NULL, run_thread, &c) != 0 || pthread_join(t, NULL) != 0) {
        perror("pthread");
        exit(2);
    }
    return c;
}

/* Uploads through the credential callback to a server that requires TOKEN. */
static void credential_checks(const uint8_t *root, size_t root_len, const char *dir,
                              const char *auth_config_path, const char *token) {
    size_t config_len = 0;
    uint8_t *config = read_file(auth_config_path, &config_len);
    char db[4096], f1[4096], f2[4096], f3[4096];
    snprintf(db, sizeof db, "%s/auth.db", dir);
    snprintf(f1, sizeof f1, "%s/auth-1.bin", dir);
    snprintf(f2, sizeof f2, "%s/auth-2.bin", dir);
    snprintf(f3, sizeof f3, "%s/auth-3.bin", dir);
    write_file(f1, "uploaded with the account's token\n");
    write_file(f2, "waits while the token is refused\n");
    write_file(f3, "never enqueued: signed out\n");
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }
    struct cred_state cred;
    memset(&cred, 0, sizeof cred);
    cred.token = token;
    cred.agent = agent;
    cred.nested = -1;
    CHECK_STATUS(cs_set_account(NULL, "alice", "IN"), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_credential_provider(NULL, credential_cb, &cred), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_install(agent, config, config_len), CS_OK);
    CHECK_STATUS(cs_set_credential_provider(agent, credential_cb, &cred), CS_OK);
    CHECK_STATUS(cs_set_account(agent, "", "IN"), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_account(agent, "alice", "IN"), CS_OK);
    char region[16];
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0);

    /* Signed in, with the token: asked once, on the run's thread, which may
     * call back into the agent (a nested run is CS_BUSY, no deadlock). */
    int64_t id = 0;
    CHECK_STATUS(cs_enqueue(agent, f1, "backup", 0, &id), CS_OK);
    struct run_call c = run_elsewhere(&cred);
    CHECK(c.status == CS_OK);
    CHECK(c.report.uploaded == 1 && c.report.failed == 0 && c.report.remaining == 0);
    CHECK(cred.calls == 1 && cred.refresh[0] == 0);
    CHECK(cred.off_thread == 0 && cred.bad_request == 0);
    CHECK(cred.nested == CS_BUSY);

    /* The callback has no token (1): unauthorized, nothing sent, item kept. */
    cs_queue_stats stats;
    CHECK_STATUS(cs_enqueue(agent, f2, "backup", 0, &id), CS_OK);
    cred.mode = CRED_NONE;
    cred.calls = 0;
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_UNAUTHORIZED);
    CHECK(strstr(c.error, "no credentials") != NULL);
    CHECK(cred.calls == 1);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1 && stats.done == 1 && stats.failed == 0 && stats.dead == 0);

    /* A wrong token, refused twice: the second call is a refresh. */
    cred.mode = CRED_WRONG;
    cred.calls = 0;
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_UNAUTHORIZED);
    CHECK(strstr(c.error, "HTTP 401") != NULL);
    CHECK(cred.calls == 2 && cred.refresh[0] == 0 && cred.refresh[1] == 1);
    CHECK(cred.off_thread == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1 && stats.failed == 0 && stats.dead == 0);

    /* A failing callback, and one that claims more than out_cap. */
    cred.mode = CRED_FAIL;
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_UNAUTHORIZED);
    CHECK(strstr(c.error, "credential provider failed: callback returned 7") != NULL);
    cred.mode = CRED_OVERFLOW;
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_UNAUTHORIZED);
    CHECK(strstr(c.error, "out_cap") != NULL);

    /* No callback at all. */
    CHECK_STATUS(cs_set_credential_provider(agent, NULL, NULL), CS_OK);
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_UNAUTHORIZED);
    CHECK(strstr(c.error, "no provider") != NULL);

    /* Signed out: runs and enqueues refused, the queue kept. */
    cred.mode = CRED_GOOD;
    cred.calls = 0;
    CHECK_STATUS(cs_set_credential_provider(agent, credential_cb, &cred), CS_OK);
    CHECK_STATUS(cs_set_account(agent, NULL, NULL), CS_OK);
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_NO_ACCOUNT);
    cs_run_report report;
    CHECK_STATUS(cs_run_once(agent, 1000, NULL, NULL, &report), CS_NO_ACCOUNT);
    CHECK_STATUS(cs_enqueue(agent, f3, "backup", 0, &id), CS_NO_ACCOUNT);
    CHECK(cred.calls == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1 && stats.done == 1);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0); /* country unchanged */

    /* Signed in again: the kept item goes out. */
    CHECK_STATUS(cs_set_account(agent, "alice", NULL), CS_OK);
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_OK);
    CHECK(c.report.uploaded == 1 && c.report.remaining == 0);
    CHECK(cred.calls == 1 && cred.refresh[0] == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 0 && stats.done == 2);
    CHECK(cred.off_thread == 0 && cred.bad_request == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);
    free(config);
}

/* cs_refresh_config against the mirror of SOURCES_ROOT.json (see the top). */
static void refresh_checks(const uint8_t *plain_root, size_t plain_root_len, const char *dir,
                           const char *sources_root_path) {
    size_t root_len = 0;
    uint8_t *root = read_file(sources_root_path, &root_len);
    char db[4096], plain_db[4096], region[16];
    snprintf(db, sizeof db, "%s/refresh.db", dir);
    snprintf(plain_db, sizeof plain_db, "%s/refresh-plain.db", dir);
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }
    CHECK_STATUS(cs_set_country(agent, "IN"), CS_OK);
    cs_refresh_report r;
    CHECK_STATUS(cs_refresh_config(agent, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_refresh_config(NULL, &r), CS_INVALID_ARGUMENT);

    /* The mirror's first answer is a 500: CS_NETWORK, *out untouched, nothing installed. */
    memset(&r, 0xab, sizeof r);
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_NETWORK);
    CHECK(strstr(cs_last_error(), "HTTP 500") != NULL);
    CHECK(r.roots_installed == 0xababababababababULL && r.config_version == 0xababababababababULL);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "") == 0); /* still no config */

    /* Then the rotation to root 2 and config 1, in one call. */
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_OK);
    CHECK(r.roots_installed == 1 && r.root_version == 2);
    CHECK(r.config_version == 1 && r.changed == 1);
    CHECK(strncmp(r.mirror, "127.0.0.9:", 10) == 0 && strlen(r.mirror) > 10);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0);

    /* Nothing new: unchanged. */
    memset(&r, 0xab, sizeof r);
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_OK);
    CHECK(r.roots_installed == 0 && r.root_version == 0 && r.config_version == 0 && r.changed == 0);
    CHECK(strncmp(r.mirror, "127.0.0.9:", 10) == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);

    /* A root without sources cannot refresh. */
    agent = NULL;
    CHECK_STATUS(cs_open(plain_db, plain_root, plain_root_len, &agent), CS_OK);
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_INVALID_ARGUMENT);
    CHECK(strstr(cs_last_error(), "sources") != NULL);
    CHECK_STATUS(cs_close(agent), CS_OK);
    free(root);
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s ROOT.json CONFIG.json WORKDIR CONFIG2.json OTHER_ROOT.json "
                        "[AUTH_CONFIG.json TOKEN [SOURCES_ROOT.json]]\n", argv[0]);
        return 2;
    }
    alarm(60); /* a hang ends the program (SIGALRM), never the test run */
    size_t root_len = 0, config_len = 0, config2_len = 0, other_root_len = 0;
    uint8_t *root = read_file(argv[1], &root_len);
    uint8_t *config = read_file(argv[2], &config_len);
    const char *dir = argv[3];
    uint8_t *config2 = read_file(argv[4], &config2_len);
    uint8_t *other_root = read_file(argv[5], &other_root_len);
    char db[4096], missing_db[4096], not_db[4096], file[4096];
    snprintf(db, sizeof db, "%s/c.db", dir);
    snprintf(missing_db, sizeof missing_db, "%s/no-such-dir/c.db", dir);
    snprintf(not_db, sizeof not_db, "%s/not-a-db", dir);
    snprintf(file, sizeof file, "%s/payload.bin", dir);

    /* Status codes and names. */
    CHECK(strcmp(cs_status_name(CS_OK), "ok") == 0);
    CHECK(strcmp(cs_status_name(CS_MALFORMED), "malformed") == 0);
    CHECK(strcmp(cs_status_name(CS_INTERNAL), "internal") == 0);
    CHECK(strcmp(cs_status_name(12345), "unknown") == 0);

    /* Open with garbage and with unusable paths: exact codes, *out cleared. */
    cs_agent *agent = (cs_agent *)&failures; /* poison: must be reset to NULL */
    const uint8_t garbage[] = "not an envelope";
    CHECK_STATUS(cs_open(db, garbage, sizeof garbage - 1, &agent), CS_MALFORMED);
    CHECK(agent == NULL);
    CHECK(strstr(cs_last_error(), "malformed") != NULL);
    CHECK_STATUS(cs_open(missing_db, root, root_len, &agent), CS_STORAGE_UNAVAILABLE);
    CHECK(agent == NULL);
    write_file(not_db, "this is not an SQLite database, it is just text\n"
                       "this is not an SQLite database, it is just text\n");
    CHECK_STATUS(cs_open(not_db, root, root_len, &agent), CS_NOT_A_DATABASE);

    /* NULL arguments. */
    CHECK_STATUS(cs_open(NULL, root, root_len, &agent), CS_INVALID_ARGUMENT);
    CHECK(strlen(cs_last_error()) > 0);
    CHECK_STATUS(cs_open(db, NULL, root_len, &agent), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_open(db, root, root_len, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_open("", root, root_len, &agent), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_install(NULL, config, config_len), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_country(NULL, "IN"), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_cancel(NULL), CS_INVALID_ARGUMENT);
    cs_queue_stats stats;
    CHECK_STATUS(cs_stats(NULL, &stats), CS_INVALID_ARGUMENT);
    int64_t id = 0;
    CHECK_STATUS(cs_enqueue(NULL, file, "backup", 0, &id), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_close(NULL), CS_OK);
    CHECK(strcmp(cs_last_error(), "") == 0); /* a success clears the message */

    /* A real agent. */
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    CHECK(agent != NULL);
    if (agent == NULL) {
        return 1;
    }
    CHECK_STATUS(cs_install(agent, NULL, 10), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_country(agent, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_stats(agent, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue(agent, NULL, "backup", 0, &id), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue(agent, file, NULL, 0, &id), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue(agent, file, "backup", 0, NULL), CS_INVALID_ARGUMENT);
    char region[16];
    CHECK_STATUS(cs_approved_region(agent, NULL, sizeof region), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_approved_region(agent, region, 0), CS_INVALID_ARGUMENT);
    cs_run_report report;
    CHECK_STATUS(cs_run_once(agent, 1000, NULL, NULL, NULL), CS_INVALID_ARGUMENT);
    uint64_t count = 99;
    CHECK_STATUS(cs_rehome(agent, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_discard_held(agent, NULL), CS_INVALID_ARGUMENT);

    /* Fail closed: no config, then no country. */
    CHECK_STATUS(cs_run_once(agent, 1000, NULL, NULL, &report), CS_NO_CONFIG);
    CHECK_STATUS(cs_install(agent, garbage, sizeof garbage - 1), CS_MALFORMED);
    CHECK_STATUS(cs_install(agent, config, config_len), CS_OK);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "") == 0);
    CHECK_STATUS(cs_run_once(agent, 1000, NULL, NULL, &report), CS_NO_REGION);
    CHECK_STATUS(cs_rehome(agent, &count), CS_NO_REGION);
    CHECK_STATUS(cs_set_country(agent, "FRA"), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_country(agent, "in"), CS_OK);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0);
    CHECK_STATUS(cs_approved_region(agent, region, 2), CS_INVALID_ARGUMENT); /* "in" needs 3 */
    CHECK(region[0] == '\0');

    /* An empty queue drains without touching the network. */
    memset(&report, 0xff, sizeof report);
    CHECK_STATUS(cs_run_once(agent, 5000, NULL, NULL, &report), CS_OK);
    CHECK(strcmp(report.region, "in") == 0);
    CHECK(report.stopped == CS_STOP_DRAINED);
    CHECK(report.uploaded == 0 && report.failed == 0 && report.remaining == 0);

    /* Enqueue and stats. */
    write_file(file, "hello, cloudsync\n");
    CHECK_STATUS(cs_enqueue(agent, file, "backup", 3, &id), CS_OK);
    CHECK(id > 0);
    int64_t id2 = 0;
    CHECK_STATUS(cs_enqueue(agent, "relative/path", "backup", 0, &id2), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue(agent, missing_db, "backup", 0, &id2), CS_SOURCE_IO);
    memset(&stats, 0xff, sizeof stats);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1);
    CHECK(stats.pending_bytes == strlen("hello, cloudsync\n"));
    CHECK(stats.uploading == 0 && stats.failed == 0 && stats.dead == 0 && stats.held == 0 && stats.done == 0);
    CHECK_STATUS(cs_discard_held(agent, &count), CS_OK);
    CHECK(count == 0);
    CHECK_STATUS(cs_cancel(agent), CS_OK);

    /* The last error is per thread. */
    CHECK_STATUS(cs_install(agent, garbage, sizeof garbage - 1), CS_MALFORMED);
    pthread_t t;
    void *ok = NULL;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(t, &ok) == 0);
    CHECK(ok == (void *)1);
    CHECK(strstr(cs_last_error(), "malformed") != NULL);

#ifdef CLOUDSYNC_TEST_HOOKS
    /* A panic inside the library arrives as a status code, and the process lives on. */
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(cs_test_panic(), CS_INTERNAL);
        CHECK(strstr(cs_last_error(), "panic") != NULL);
    }
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1);
#else
    fprintf(stderr, "note: built without CLOUDSYNC_TEST_HOOKS; panic check skipped\n");
#endif

    CHECK_STATUS(cs_close(agent), CS_OK);

    /* Reopen: the enqueued item survived. */
    agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1);
    CHECK_STATUS(cs_close(agent), CS_OK);

    /* Trust lives in the database (issue 10): two handles on one file share it. */
    char held_db[4096];
    snprintf(held_db, sizeof held_db, "%s/held.db", dir);
    cs_agent *h1 = NULL, *h2 = NULL;
    CHECK_STATUS(cs_open(held_db, root, root_len, &h1), CS_OK);
    CHECK_STATUS(cs_open(held_db, root, root_len, &h2), CS_OK);
    if (h1 == NULL || h2 == NULL) {
        return 1;
    }
    CHECK_STATUS(cs_install(h1, config2, config2_len), CS_OK);
    CHECK_STATUS(cs_set_country(h1, "IN"), CS_OK);
    CHECK_STATUS(cs_approved_region(h2, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0); /* h2 reads what h1 wrote */
    enum { N_HELD = 3 };
    for (int i = 0; i < N_HELD; i++) {
        char path[4096 + 32];
        snprintf(path, sizeof path, "%s/held-%d.bin", dir, i);
        write_file(path, "held until the account comes home\n");
        int64_t hid = 0;
        CHECK_STATUS(cs_enqueue(h1, path, "backup", 0, &hid), CS_OK);
        CHECK(hid > 0);
    }
    CHECK_STATUS(cs_stats(h1, &stats), CS_OK);
    CHECK(stats.pending == N_HELD && stats.held == 0);
    /* h2 moves the account: h1's items are held at once, before any run. */
    CHECK_STATUS(cs_set_country(h2, "SG"), CS_OK);
    memset(&stats, 0xff, sizeof stats);
    CHECK_STATUS(cs_stats(h1, &stats), CS_OK);
    CHECK(stats.held == N_HELD);
    CHECK(stats.pending == 0 && stats.uploading == 0 && stats.failed == 0);
    CHECK_STATUS(cs_approved_region(h1, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "sg") == 0);
    CHECK_STATUS(cs_stats(h2, &stats), CS_OK);
    CHECK(stats.held == N_HELD);
    /* And back, through the other handle: pending again for both. */
    CHECK_STATUS(cs_set_country(h1, "IN"), CS_OK);
    CHECK_STATUS(cs_stats(h2, &stats), CS_OK);
    CHECK(stats.held == 0 && stats.pending == N_HELD);
    CHECK_STATUS(cs_approved_region(h2, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0);
    /* Consent-bound rehome: the user agreed to "sg", but h2 moved the account
     * back to IN meanwhile: refused, nothing restamped. */
    CHECK_STATUS(cs_set_country(h2, "SG"), CS_OK);
    CHECK_STATUS(cs_set_country(h1, "IN"), CS_OK);
    count = 12345;
    CHECK_STATUS(cs_rehome_to(h2, "sg", &count), CS_RESIDENCY);
    CHECK(count == 12345);
    CHECK_STATUS(cs_rehome_to(h2, NULL, &count), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_rehome_to(h2, "in", NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_rehome_to(NULL, "in", &count), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_stats(h1, &stats), CS_OK);
    CHECK(stats.held == 0 && stats.pending == N_HELD);
    CHECK_STATUS(cs_set_country(h2, "SG"), CS_OK);
    CHECK_STATUS(cs_rehome_to(h1, "sg", &count), CS_OK);
    CHECK(count == N_HELD);
    CHECK_STATUS(cs_stats(h2, &stats), CS_OK);
    CHECK(stats.held == 0 && stats.pending == N_HELD);
    CHECK_STATUS(cs_close(h2), CS_OK);
    CHECK_STATUS(cs_close(h1), CS_OK);

    /* Roots at open, on a database that already trusts ROOT. */
    CHECK(CS_ROOT_MISMATCH == 19);
    CHECK(strcmp(cs_status_name(CS_ROOT_MISMATCH), "root_mismatch") == 0);
    const uint8_t junk[] = "junk";
    agent = (cs_agent *)&failures;
    CHECK_STATUS(cs_open(held_db, junk, sizeof junk - 1, &agent), CS_MALFORMED);
    CHECK(agent == NULL);
    CHECK(strstr(cs_last_error(), "malformed") != NULL);
    agent = (cs_agent *)&failures;
    CHECK_STATUS(cs_open(held_db, other_root, other_root_len, &agent), CS_ROOT_MISMATCH);
    CHECK(agent == NULL);
    CHECK(strlen(cs_last_error()) > 0);
    /* Neither attempt changed the database: ROOT still opens it, trust and queue intact. */
    agent = NULL;
    CHECK_STATUS(cs_open(held_db, root, root_len, &agent), CS_OK);
    if (agent != NULL) {
        CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
        CHECK(strcmp(region, "sg") == 0);
        CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
        CHECK(stats.pending == N_HELD && stats.held == 0);
        CHECK_STATUS(cs_close(agent), CS_OK);
    }

    if (argc >= 8) {
        credential_checks(root, root_len, dir, argv[6], argv[7]);
    } else {
        fprintf(stderr, "note: no AUTH_CONFIG.json; credential callback checks skipped\n");
    }
    if (argc == 9) {
        refresh_checks(root, root_len, dir, argv[8]);
    } else {
        fprintf(stderr, "note: no SOURCES_ROOT.json; cs_refresh_config checks skipped\n");
    }

    free(root);
    free(config);
    free(config2);
    free(other_root);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_capi: all checks passed\n");
    return 0;
}
