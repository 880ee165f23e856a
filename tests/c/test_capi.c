/*
 * C test of include/cloudsync.h against libcloudsync.so. Built and run by
 * crates/cli/tests/processes/c_abi.rs:
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
 * 500, then serves root/2.json and config.json (IN -> "in").
 *
 * Environment (each optional; its checks are skipped without it):
 *   CS_TEST_PKG_VERSION    the crate version cs_version() must return;
 *   CS_TEST_WORLD_ROOT, CS_TEST_WORLD_CONFIG
 *                          a root and a config (IN -> "in", SG -> "sg", with
 *                          the servers' CA in ca_certs) of loopback tus servers
 *                          whose "in" answers its first POST 503 with
 *                          Retry-After: 600 (items, events, audit, retry_dead);
 *   CS_TEST_DEVSERVER_ROOT, CS_TEST_DEVSERVER_CONFIG
 *                          the root.json and config.json a running
 *                          `cloudsync dev-server --regions in` wrote (its
 *                          config carries its CA): with nothing else, plain
 *                          cs_open + cs_install, the upload must succeed.
 *
 * Exits 0 when every check passes; prints the failed check otherwise. An
 * alarm() ends a hung run (exit by SIGALRM), so a hang cannot stall the test.
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

/* A file of `size` bytes whose content depends on `seed` (no two files alike). */
static void write_bytes(const char *path, size_t size, unsigned seed) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    for (size_t i = 0; i < size; i++) {
        if (fputc((int)((i * 31u + seed * 7919u + i / 4096u) & 0xff), f) == EOF) {
            perror(path);
            exit(2);
        }
    }
    if (fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    char db[4096], f1[4096], f2[4096], f3[4096], f4[4096];
    snprintf(db, sizeof db, "%s/auth.db", dir);
    snprintf(f1, sizeof f1, "%s/auth-1.bin", dir);
    snprintf(f2, sizeof f2, "%s/auth-2.bin", dir);
    snprintf(f3, sizeof f3, "%s/auth-3.bin", dir);
    snprintf(f4, sizeof f4, "%s/auth-4.bin", dir);
    write_file(f1, "uploaded with the account's token\n");
    write_file(f2, "waits while the token is refused\n");
    write_file(f3, "never enqueued: signed out\n");
    write_file(f4, "bob's, never sent: bob has no country\n");
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
    /* The nested call failed, the run succeeded: no last error (issue 24). */
    CHECK(c.error[0] == '\0');

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
    /* A country belongs to an account: none is in force while signed out,
     * and none can be set. */
    cs_config_info ci;
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(region[0] == '\0');
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.country[0] == '\0' && ci.approved_region[0] == '\0');
    CHECK_STATUS(cs_set_country(agent, "SG"), CS_NO_ACCOUNT);
    CHECK_STATUS(cs_set_account(agent, NULL, "SG"), CS_INVALID_ARGUMENT);

    /* Bob, with a NULL country: not alice's country, no region, nothing sent
     * (the callback is never asked); his item waits, alice's is held. */
    CHECK_STATUS(cs_set_account(agent, "bob", NULL), CS_OK);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.country[0] == '\0' && ci.approved_region[0] == '\0');
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(region[0] == '\0');
    CHECK_STATUS(cs_enqueue(agent, f4, "backup", 0, &id), CS_OK);
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_NO_REGION);
    CHECK(cred.calls == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 1 && stats.held == 1 && stats.done == 1);

    /* Alice again, NULL country: hers (IN) comes back and the kept item goes
     * out; bob's stays held. */
    CHECK_STATUS(cs_set_account(agent, "alice", NULL), CS_OK);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(strcmp(ci.country, "IN") == 0 && strcmp(ci.approved_region, "in") == 0);
    c = run_elsewhere(&cred);
    CHECK(c.status == CS_OK);
    CHECK(c.report.uploaded == 1 && c.report.remaining == 0 && c.report.held == 1);
    CHECK(cred.calls == 1 && cred.refresh[0] == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 0 && stats.held == 1 && stats.done == 2);
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
    CHECK(r.roots_installed == 0xababababababababULL && r.installed_config_version == (int64_t)0xababababababababULL);
    CHECK(r.root_in_force == 0xababababababababULL && r.config_error == (int32_t)0xabababab);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "") == 0); /* still no config */

    /* Then the rotation to root 2 and config 1, in one call. */
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_OK);
    CHECK(r.roots_installed == 1 && r.root_version == 2);
    CHECK(r.installed_config_version == 1 && r.changed == 1);
    CHECK(strncmp(r.mirror, "127.0.0.9:", 10) == 0 && strlen(r.mirror) > 10);
    CHECK(r.root_in_force == 2 && r.config_error == CS_OK && r.more_roots == 0);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "in") == 0);

    /* Nothing new: unchanged. */
    memset(&r, 0xab, sizeof r);
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_OK);
    CHECK(r.roots_installed == 0 && r.root_version == 0 && r.installed_config_version == -1 && r.changed == 0);
    CHECK(strncmp(r.mirror, "127.0.0.9:", 10) == 0);
    /* root_version says what was installed (none); root_in_force what is in force. */
    CHECK(r.root_in_force == 2 && r.config_error == CS_OK && r.more_roots == 0);
    cs_config_info ci;
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.root_version == r.root_in_force && ci.anchored == 1 && strcmp(ci.trust_reset, "") == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);

    /* A root without sources cannot refresh. */
    agent = NULL;
    CHECK_STATUS(cs_open(plain_db, plain_root, plain_root_len, &agent), CS_OK);
    CHECK_STATUS(cs_refresh_config(agent, &r), CS_INVALID_ARGUMENT);
    CHECK(strstr(cs_last_error(), "sources") != NULL);
    CHECK_STATUS(cs_close(agent), CS_OK);
    free(root);
}

/* Items, batch enqueue and config info on a queue that never uploads. */
static void queue_checks(const uint8_t *root, size_t root_len, const uint8_t *config,
                         size_t config_len, const char *dir) {
    char db[4096], f[3][4096], missing[4096], buf[4096];
    snprintf(db, sizeof db, "%s/queue.db", dir);
    snprintf(missing, sizeof missing, "%s/no-such-file.bin", dir);
    for (int i = 0; i < 3; i++) {
        snprintf(f[i], sizeof f[i], "%s/queue-%d.bin", dir, i);
        write_bytes(f[i], 100 + (size_t)i, (unsigned)i);
    }
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }

    /* Config info before and after a config. */
    cs_config_info ci;
    CHECK_STATUS(cs_get_config_info(NULL, &ci), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_get_config_info(agent, NULL), CS_INVALID_ARGUMENT);
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.root_version == 1 && ci.installed_config_version == -1 && ci.region_count == 0);
    CHECK(ci.expired == 0 && ci.expires_at_ms == -1);
    CHECK(strcmp(ci.approved_region, "") == 0 && strcmp(ci.country, "") == 0);
    CHECK(ci.refresh_due_at_ms == -1);
    {
        char region[64] = "x";
        CHECK_STATUS(cs_config_region(agent, 0, region, sizeof region), CS_NO_CONFIG);
        CHECK(region[0] == '\0');
    }
    CHECK(ci.anchored == 1 && strcmp(ci.trust_reset, "") == 0); /* a new file: the root passed */
    /* Without a config nothing is known about services: any is accepted. */
    int64_t id = 0;
    CHECK_STATUS(cs_enqueue(agent, f[0], "photos", 0, &id), CS_OK);
    CHECK_STATUS(cs_remove(agent, id), CS_OK);
    CHECK_STATUS(cs_install(agent, config, config_len), CS_OK);
    CHECK_STATUS(cs_set_country(agent, "in"), CS_OK);
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.root_version == 1 && ci.installed_config_version == 1 && ci.region_count == 1);
    CHECK(ci.expired == 0 && ci.expires_at_ms == INT64_C(4070908800000)); /* 2099-01-01 */
    CHECK(strcmp(ci.approved_region, "in") == 0 && strcmp(ci.country, "IN") == 0);
    CHECK(ci.refresh_due_at_ms == -1); /* the root lists no sources */
    {
        char region[64];
        char tiny[2];
        CHECK_STATUS(cs_config_region(agent, 0, region, sizeof region), CS_OK);
        CHECK(strcmp(region, "in") == 0);
        CHECK_STATUS(cs_config_region(agent, 1, region, sizeof region), CS_NOT_FOUND);
        CHECK_STATUS(cs_config_region(agent, 0, tiny, sizeof tiny), CS_INVALID_ARGUMENT);
        CHECK_STATUS(cs_config_region(agent, 0, NULL, 64), CS_INVALID_ARGUMENT);
        CHECK(strcmp(cs_last_error(), "invalid argument: buf is null") == 0);
    }

    /* A service the config does not offer is refused at enqueue. */
    CHECK_STATUS(cs_enqueue(agent, f[0], "photos", 0, &id), CS_INVALID_ARGUMENT);
    CHECK(strstr(cs_last_error(), "service not offered") != NULL);

    /* Batch enqueue: all or none. */
    const char *good[3] = {f[0], f[1], f[2]};
    const char *with_missing[2] = {f[0], missing};
    const char *with_relative[2] = {f[0], "relative/path"};
    const char *with_null[2] = {f[0], NULL};
    int64_t ids[3] = {-7, -7, -7};
    CHECK_STATUS(cs_enqueue_all(NULL, good, 3, "backup", 5, ids), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, NULL, 3, "backup", 5, ids), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, good, 3, NULL, 5, ids), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, good, 3, "backup", 5, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, with_missing, 2, "backup", 5, ids), CS_SOURCE_IO);
    CHECK_STATUS(cs_enqueue_all(agent, with_relative, 2, "backup", 5, ids), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, with_null, 2, "backup", 5, ids), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_enqueue_all(agent, good, 3, "photos", 5, ids), CS_INVALID_ARGUMENT);
    CHECK(ids[0] == -7 && ids[1] == -7 && ids[2] == -7); /* written only on success */
    cs_queue_stats stats;
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 0 && stats.next_due_at_ms == -1); /* nothing stored */
    CHECK_STATUS(cs_enqueue_all(agent, good, 0, "backup", 5, ids), CS_OK);
    int64_t before = now_ms();
    CHECK_STATUS(cs_enqueue_all(agent, good, 3, "backup", 5, ids), CS_OK);
    CHECK(ids[0] > 0 && ids[1] > ids[0] && ids[2] > ids[1]);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == 3 && stats.pending_bytes == 303);
    CHECK(stats.next_due_at_ms > 0 && stats.next_due_at_ms <= now_ms()); /* due now */

    /* One item. */
    cs_item item;
    CHECK_STATUS(cs_get_item(NULL, ids[1], &item), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_get_item(agent, ids[1], NULL), CS_INVALID_ARGUMENT);
    memset(&item, 0xab, sizeof item);
    CHECK_STATUS(cs_get_item(agent, ids[1], &item), CS_OK);
    CHECK(item.id == ids[1] && item.size == 101 && item.confirmed_offset == 0);
    CHECK(item.priority == 5 && item.attempts == 0 && item.last_error_status == CS_OK);
    CHECK(item.next_attempt_at_ms >= before - 1000 && item.next_attempt_at_ms <= now_ms());
    CHECK(item.state_code == CS_STATE_PENDING && strcmp(item.service, "backup") == 0);
    CHECK(strcmp(item.region, "in") == 0 && strcmp(item.account, "") == 0);
    CHECK(item.held_reason_code == -1 && strcmp(item.last_error, "") == 0);
    CHECK(strcmp(item.last_error_kind, "") == 0);
    CHECK_STATUS(cs_get_item(agent, 999999, &item), CS_NOT_FOUND);
    CHECK(strlen(cs_last_error()) > 0);
    CHECK_STATUS(cs_item_path(agent, ids[1], buf, sizeof buf), CS_OK);
    CHECK(strcmp(buf, f[1]) == 0);
    CHECK_STATUS(cs_item_path(agent, ids[1], buf, 4), CS_INVALID_ARGUMENT);
    CHECK(buf[0] == '\0');
    CHECK_STATUS(cs_item_path(agent, ids[1], NULL, 4), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_item_path(agent, 999999, buf, sizeof buf), CS_NOT_FOUND);

    /* Listing, by id, filtered and paged. */
    cs_item items[4];
    size_t n = 99;
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 4, &n), CS_OK);
    CHECK(n == 3 && items[0].id == ids[0] && items[1].id == ids[1] && items[2].id == ids[2]);
    CHECK(items[2].size == 102 && items[2].state_code == CS_STATE_PENDING);
    CHECK_STATUS(cs_list_items(agent, -1, ids[0], items, 4, &n), CS_OK);
    CHECK(n == 2 && items[0].id == ids[1]);
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 1, &n), CS_OK);
    CHECK(n == 1 && items[0].id == ids[0]);
    CHECK_STATUS(cs_list_items(agent, CS_STATE_PENDING, 0, items, 4, &n), CS_OK);
    CHECK(n == 3);
    CHECK_STATUS(cs_list_items(agent, CS_STATE_DEAD, 0, items, 4, &n), CS_OK);
    CHECK(n == 0);
    CHECK_STATUS(cs_list_items(agent, CS_STATE_DONE, 0, items, 4, &n), CS_OK);
    CHECK(n == 0); /* finished items are in the audit trail */
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 0, &n), CS_OK);
    CHECK(n == 0);
    CHECK_STATUS(cs_list_items(agent, 12345, 0, items, 4, &n), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_list_items(agent, -1, 0, NULL, 4, &n), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 4, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_list_items(NULL, -1, 0, items, 4, &n), CS_INVALID_ARGUMENT);

    /* retry_dead with nothing dead, remove, audit of nothing. */
    uint64_t count = 99;
    CHECK_STATUS(cs_retry_dead(agent, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_retry_dead(NULL, &count), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_retry_dead(agent, &count), CS_OK);
    CHECK(count == 0);
    CHECK_STATUS(cs_remove(NULL, ids[2]), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_remove(agent, ids[2]), CS_OK);
    CHECK_STATUS(cs_remove(agent, ids[2]), CS_NOT_FOUND);
    CHECK_STATUS(cs_get_item(agent, ids[2], &item), CS_NOT_FOUND);
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 4, &n), CS_OK);
    CHECK(n == 2);
    cs_audit_record recs[2];
    CHECK_STATUS(cs_audit(agent, 0, recs, 2, &n), CS_OK);
    CHECK(n == 0);
    CHECK_STATUS(cs_audit(agent, 0, NULL, 2, &n), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_audit(agent, 0, recs, 2, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_audit(NULL, 0, recs, 2, &n), CS_INVALID_ARGUMENT);
    cs_run_report report;
    CHECK_STATUS(cs_run_with_events(NULL, 1000, NULL, NULL, &report), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_run_with_events(agent, 1000, NULL, NULL, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_close(agent), CS_OK);
}

/* Paging by key: cs_list_items and cs_audit read one page of cap items after
 * after_id; the last id of a page gives the next, every item once, in order. */
static void paging_checks(const uint8_t *root, size_t root_len, const char *dir) {
    enum { N = 23, CAP = 4 };
    char db[4096], f[N][4096];
    const char *paths[N];
    snprintf(db, sizeof db, "%s/paging.db", dir);
    for (int i = 0; i < N; i++) {
        snprintf(f[i], sizeof f[i], "%s/page-%02d.bin", dir, i);
        write_bytes(f[i], 1 + (size_t)i, (unsigned)i + 50u);
        paths[i] = f[i];
    }
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }
    int64_t ids[N];
    CHECK_STATUS(cs_enqueue_all(agent, paths, N, "backup", 0, ids), CS_OK);
    CHECK_STATUS(cs_remove(agent, ids[5]), CS_OK); /* a gap in the ids */
    for (int filtered = 0; filtered < 2; filtered++) {
        cs_item page[CAP];
        size_t n = 0, seen = 0, pages = 0;
        int64_t after = 0;
        int in_order = 1;
        do {
            CHECK_STATUS(cs_list_items(agent, filtered ? CS_STATE_PENDING : -1, after, page, CAP, &n),
                         CS_OK);
            pages++;
            for (size_t k = 0; k < n; k++) {
                size_t want = seen < 5 ? seen : seen + 1; /* ids[5] was removed */
                in_order &= want < N && page[k].id == ids[want] && page[k].id > after;
                seen++;
            }
            if (n > 0) {
                after = page[n - 1].id;
            }
        } while (n == CAP && pages < 100);
        CHECK(in_order && seen == N - 1);
        CHECK(pages == (N - 1) / CAP + 1); /* 5 full pages and a short one */
    }
    cs_item one;
    size_t n = 99;
    CHECK_STATUS(cs_list_items(agent, -1, ids[4], &one, 1, &n), CS_OK);
    CHECK(n == 1 && one.id == ids[6]);
    CHECK_STATUS(cs_list_items(agent, CS_STATE_DEAD, 0, &one, 1, &n), CS_OK);
    CHECK(n == 0);
    CHECK_STATUS(cs_list_items(agent, -1, INT64_MAX, &one, 1, &n), CS_OK);
    CHECK(n == 0);
    n = 99;
    CHECK_STATUS(cs_list_items(agent, -1, -1, &one, 1, &n), CS_INVALID_ARGUMENT);
    CHECK(strcmp(cs_last_error(), "invalid argument: after_id is negative") == 0);
    CHECK(n == 99); /* untouched on failure */
    CHECK_STATUS(cs_list_items(agent, CS_STATE_HELD, INT64_MIN, &one, 1, &n), CS_INVALID_ARGUMENT);
    cs_audit_record rec;
    CHECK_STATUS(cs_audit(agent, -1, &rec, 1, &n), CS_INVALID_ARGUMENT);
    CHECK(strcmp(cs_last_error(), "invalid argument: after_id is negative") == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);
}

/* What cs_run_with_events delivered, and what the callback does. */
enum { MAX_EVENTS = 512 };
struct events {
    cs_event e[MAX_EVENTS];
    int n;
    pthread_t thread;     /* the thread that runs */
    int off_thread;       /* callbacks on another thread */
    int cancel_at_start;  /* non-zero: return 1 at the first STARTED */
    cs_agent *agent;      /* move_on_progress: cs_set_country(agent, "SG") at the first PROGRESS */
    int move_on_progress;
    cs_status moved;      /* its status (-1: not called) */
};

static int on_event(void *user, const cs_event *e) {
    struct events *s = user;
    if (!pthread_equal(pthread_self(), s->thread)) {
        s->off_thread++;
    }
    if (s->n < MAX_EVENTS) {
        s->e[s->n] = *e;
    }
    s->n++;
    if (e->type == CS_EVENT_PROGRESS && s->move_on_progress && s->moved == -1) {
        s->moved = cs_set_country(s->agent, "SG"); /* no lock held: may call back in */
    }
    return s->cancel_at_start && e->type == CS_EVENT_STARTED;
}

static void events_reset(struct events *s, cs_agent *agent) {
    memset(s, 0, sizeof *s);
    s->thread = pthread_self();
    s->agent = agent;
    s->moved = -1;
}

/* Checks item id's events: STARTED with its size, PROGRESS with sent rising
 * and reaching total at most once, then exactly one event of type `last`
 * and nothing after it. Returns that last event (NULL if missing). */
static const cs_event *item_events(const struct events *s, int64_t id, uint64_t size, int last,
                                   int line) {
    int started = 0, ok = 1, full = 0;
    int64_t prev = -1;
    const cs_event *end = NULL;
    for (int i = 0; i < s->n && i < MAX_EVENTS; i++) {
        const cs_event *e = &s->e[i];
        if (e->item_id != id) {
            continue;
        }
        if (!started) {
            ok &= e->type == CS_EVENT_STARTED && e->total == size;
            started = 1;
        } else if (end != NULL) {
            ok = 0; /* anything after the completion */
        } else if (e->type == CS_EVENT_PROGRESS) {
            ok &= (int64_t)e->sent > prev && e->total == size && e->sent <= size;
            full += e->sent == size;
            prev = (int64_t)e->sent;
        } else {
            ok &= e->type == last;
            end = e;
        }
    }
    ok &= s->n <= MAX_EVENTS && started && end != NULL && full <= 1;
    if (last == CS_EVENT_DONE) {
        ok &= full == 1 && end != NULL && end->sent == size && end->total == size;
    }
    if (!ok) {
        fprintf(stderr, "%s:%d: events of item %lld wrong:\n", __FILE__, line, (long long)id);
        for (int i = 0; i < s->n && i < MAX_EVENTS; i++) {
            fprintf(stderr, "  type %d item %lld sent %llu total %llu status %d dead %d next %lld\n",
                    s->e[i].type, (long long)s->e[i].item_id, (unsigned long long)s->e[i].sent,
                    (unsigned long long)s->e[i].total, s->e[i].status, s->e[i].dead,
                    (long long)s->e[i].next_attempt_at_ms);
        }
        failures++;
    }
    return end;
}

/* Items, events, audit and retry_dead against real loopback tus servers. */
static void world_checks(const char *dir, const char *root_path, const char *config_path) {
    size_t root_len = 0, config_len = 0;
    uint8_t *root = read_file(root_path, &root_len);
    uint8_t *config = read_file(config_path, &config_len);
    char db[4096], a[4096], b[4096], b_away[4096], c[4096], d[4096], e[4096];
    snprintf(db, sizeof db, "%s/world.db", dir);
    snprintf(a, sizeof a, "%s/world-a.bin", dir);
    snprintf(b, sizeof b, "%s/world-b.bin", dir);
    snprintf(b_away, sizeof b_away, "%s/world-b.away", dir);
    snprintf(c, sizeof c, "%s/world-c.bin", dir);
    snprintf(d, sizeof d, "%s/world-d.bin", dir);
    snprintf(e, sizeof e, "%s/world-e.bin", dir);
    const uint64_t a_size = 1000, b_size = 2000, c_size = 3 * 1024 * 1024 + 5, d_size = 4000,
                   e_size = 16 * 1024 * 1024;
    write_bytes(a, a_size, 11);
    write_bytes(b, b_size, 12);
    write_bytes(c, c_size, 13);
    write_bytes(d, d_size, 14);
    write_bytes(e, e_size, 15);
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }
    CHECK_STATUS(cs_install(agent, config, config_len), CS_OK);
    CHECK_STATUS(cs_set_account(agent, "alice", "IN"), CS_OK);
    cs_config_info ci;
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.installed_config_version == 1 && ci.region_count == 2 && ci.expired == 0);
    CHECK(strcmp(ci.approved_region, "in") == 0 && strcmp(ci.country, "IN") == 0);
    CHECK(ci.expires_at_ms > now_ms());

    /* 1. A failed attempt (the server answers the first POST 503, Retry-After:
     * 600): its kind and when it is due again, in the event, the item, the
     * report and the stats. */
    int64_t id_a = 0;
    CHECK_STATUS(cs_enqueue(agent, a, "backup", 0, &id_a), CS_OK);
    static struct events ev;
    events_reset(&ev, agent);
    cs_run_report report;
    int64_t before = now_ms();
    CHECK_STATUS(cs_run_with_events(agent, 30000, on_event, &ev, &report), CS_OK);
    CHECK(report.failed == 1 && report.uploaded == 0 && report.dead == 0);
    CHECK(report.stopped == CS_STOP_DRAINED && report.remaining == 1);
    CHECK(report.next_due_at_ms >= before + 599000 && report.next_due_at_ms <= now_ms() + 700000);
    const cs_event *end = item_events(&ev, id_a, a_size, CS_EVENT_FAILED, __LINE__);
    CHECK(end != NULL && end->status == CS_NETWORK && end->dead == 0);
    CHECK(end != NULL && end->next_attempt_at_ms == report.next_due_at_ms);
    CHECK(ev.off_thread == 0);
    cs_item item;
    CHECK_STATUS(cs_get_item(agent, id_a, &item), CS_OK);
    CHECK(item.state_code == CS_STATE_FAILED && item.attempts == 1);
    CHECK(strcmp(item.last_error_kind, "network") == 0 && item.last_error_status == CS_NETWORK);
    CHECK(strcmp(item.last_error, "network: POST: HTTP 503") == 0);
    CHECK(item.next_attempt_at_ms == report.next_due_at_ms);
    CHECK(strcmp(item.region, "in") == 0 && strlen(item.account) == 16);
    cs_queue_stats stats;
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.failed == 1 && stats.next_due_at_ms == report.next_due_at_ms);
    cs_item items[4];
    size_t n = 0;
    CHECK_STATUS(cs_list_items(agent, CS_STATE_FAILED, 0, items, 4, &n), CS_OK);
    CHECK(n == 1 && items[0].id == id_a && items[0].attempts == 1);
    /* Removed: gone, and nothing waits any more. */
    CHECK_STATUS(cs_remove(agent, id_a), CS_OK);
    CHECK_STATUS(cs_get_item(agent, id_a, &item), CS_NOT_FOUND);
    CHECK_STATUS(cs_remove(agent, id_a), CS_NOT_FOUND);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.failed == 0 && stats.next_due_at_ms == -1);

    /* 2. One item goes dead (its file is gone), the other is done; each
     * completion is reported once. */
    const char *bc[2] = {b, c};
    int64_t ids[2] = {0, 0};
    CHECK_STATUS(cs_enqueue_all(agent, bc, 2, "backup", 0, ids), CS_OK);
    CHECK(rename(b, b_away) == 0);
    events_reset(&ev, agent);
    before = now_ms();
    CHECK_STATUS(cs_run_with_events(agent, 30000, on_event, &ev, &report), CS_OK);
    CHECK(report.uploaded == 1 && report.bytes == c_size && report.failed == 1);
    CHECK(report.dead == 1 && report.remaining == 0 && report.next_due_at_ms == -1);
    end = item_events(&ev, ids[0], b_size, CS_EVENT_FAILED, __LINE__);
    CHECK(end != NULL && end->status == CS_SOURCE_IO && end->dead == 1);
    CHECK(end != NULL && end->next_attempt_at_ms == -1);
    end = item_events(&ev, ids[1], c_size, CS_EVENT_DONE, __LINE__);
    CHECK(end != NULL && end->status == CS_OK);
    CHECK_STATUS(cs_get_item(agent, ids[0], &item), CS_OK);
    CHECK(item.state_code == CS_STATE_DEAD && item.attempts == 1);
    CHECK(strcmp(item.last_error_kind, "source_io") == 0 && item.last_error_status == CS_SOURCE_IO);
    CHECK_STATUS(cs_get_item(agent, ids[1], &item), CS_NOT_FOUND); /* done: left the queue */
    CHECK_STATUS(cs_list_items(agent, -1, 0, items, 4, &n), CS_OK);
    CHECK(n == 1 && items[0].id == ids[0] && items[0].state_code == CS_STATE_DEAD);
    cs_audit_record recs[4];
    CHECK_STATUS(cs_audit(agent, 0, recs, 4, &n), CS_OK);
    CHECK(n == 1);
    CHECK(recs[0].id > 0 && recs[0].item_id == ids[1] && recs[0].bytes == c_size);
    CHECK(recs[0].sent_bytes == (int64_t)c_size);
    CHECK(recs[0].finished_at_ms >= before && recs[0].finished_at_ms <= now_ms());
    CHECK(strcmp(recs[0].service, "backup") == 0 && strcmp(recs[0].region, "in") == 0);
    CHECK(strncmp(recs[0].host, "127.0.0.2:", 10) == 0 && strcmp(recs[0].peer_ip, "127.0.0.2") == 0);
    CHECK(strlen(recs[0].sha256) == 64 && strspn(recs[0].sha256, "0123456789abcdef") == 64);

    /* 3. The file is back: retry_dead revives the item and it goes out. */
    CHECK(rename(b_away, b) == 0);
    uint64_t count = 0;
    CHECK_STATUS(cs_retry_dead(agent, &count), CS_OK);
    CHECK(count == 1);
    CHECK_STATUS(cs_get_item(agent, ids[0], &item), CS_OK);
    CHECK(item.state_code == CS_STATE_PENDING);
    CHECK_STATUS(cs_run_once(agent, 30000, NULL, NULL, &report), CS_OK);
    CHECK(report.uploaded == 1 && report.failed == 0 && report.next_due_at_ms == -1);
    CHECK_STATUS(cs_audit(agent, recs[0].id, recs + 1, 3, &n), CS_OK);
    CHECK(n == 1 && recs[1].item_id == ids[0] && recs[1].id > recs[0].id);
    CHECK(recs[1].bytes == b_size);
    CHECK_STATUS(cs_audit(agent, 0, recs, 1, &n), CS_OK);
    CHECK(n == 1 && recs[0].item_id == ids[1]); /* cap 1: the oldest */
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.done == 2 && stats.pending == 0 && stats.dead == 0 && stats.next_due_at_ms == -1);

    /* 4. A callback that returns non-zero cancels the run. */
    int64_t id_d = 0;
    CHECK_STATUS(cs_enqueue(agent, d, "backup", 0, &id_d), CS_OK);
    events_reset(&ev, agent);
    ev.cancel_at_start = 1;
    CHECK_STATUS(cs_run_with_events(agent, 30000, on_event, &ev, &report), CS_OK);
    CHECK(report.stopped == CS_STOP_CANCELLED && report.uploaded == 0);
    CHECK(ev.n >= 1 && ev.e[0].type == CS_EVENT_STARTED && ev.e[0].item_id == id_d);
    for (int i = 0; i < ev.n && i < MAX_EVENTS; i++) {
        CHECK(ev.e[i].type != CS_EVENT_DONE);
    }
    CHECK_STATUS(cs_get_item(agent, id_d, &item), CS_OK); /* still queued */
    CHECK_STATUS(cs_run_with_events(agent, 30000, NULL, NULL, &report), CS_OK);
    CHECK(report.uploaded == 1 && report.stopped == CS_STOP_DRAINED);

    /* 5. The region changes in flight (from the callback, through the same
     * handle): the item is reported held, and waits with its reason. */
    int64_t id_e = 0;
    CHECK_STATUS(cs_enqueue(agent, e, "backup", 0, &id_e), CS_OK);
    events_reset(&ev, agent);
    ev.move_on_progress = 1;
    CHECK_STATUS(cs_run_with_events(agent, 30000, on_event, &ev, &report), CS_OK);
    CHECK(ev.moved == CS_OK);
    CHECK(report.stopped == CS_STOP_REGION_CHANGED && report.uploaded == 0);
    item_events(&ev, id_e, e_size, CS_EVENT_HELD, __LINE__);
    CHECK_STATUS(cs_get_item(agent, id_e, &item), CS_OK);
    CHECK(item.state_code == CS_STATE_HELD && item.held_reason_code == CS_HELD_REGION);
    CHECK(strcmp(item.region, "in") == 0);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(strcmp(ci.approved_region, "sg") == 0 && strcmp(ci.country, "SG") == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);
    free(root);
    free(config);
}

/* The files `cloudsync dev-server` writes are all C needs: plain cs_open and
 * cs_install, no test hook. */
static void devserver_checks(const char *dir, const char *root_path, const char *config_path) {
    size_t root_len = 0, config_len = 0;
    uint8_t *root = read_file(root_path, &root_len);
    uint8_t *config = read_file(config_path, &config_len);
    char db[4096], file[4096];
    snprintf(db, sizeof db, "%s/devserver.db", dir);
    snprintf(file, sizeof file, "%s/devserver.bin", dir);
    write_bytes(file, 5000, 21);
    cs_agent *agent = NULL;
    CHECK_STATUS(cs_open(db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        exit(1);
    }
    CHECK_STATUS(cs_install(agent, config, config_len), CS_OK);
    CHECK_STATUS(cs_set_country(agent, "IN"), CS_OK);
    int64_t id = 0;
    CHECK_STATUS(cs_enqueue(agent, file, "backup", 0, &id), CS_OK);
    cs_run_report report;
    CHECK_STATUS(cs_run_once(agent, 30000, NULL, NULL, &report), CS_OK);
    cs_item item;
    CHECK(report.uploaded == 1 && report.failed == 0 && report.remaining == 0);
    CHECK_STATUS(cs_get_item(agent, id, &item), CS_NOT_FOUND);
    cs_audit_record rec;
    size_t n = 0;
    CHECK_STATUS(cs_audit(agent, 0, &rec, 1, &n), CS_OK);
    CHECK(n == 1 && rec.item_id == id && rec.bytes == 5000);
    CHECK_STATUS(cs_close(agent), CS_OK);
    free(root);
    free(config);
}

/* The audit retention (issue 16): one setting in the database, shared by
 * handles; out-of-range values are refused with nothing changed. */
static void retention_checks(const uint8_t *root, size_t root_len, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/retention.db", dir);
    cs_agent *a = NULL, *b = NULL;
    CHECK_STATUS(cs_open(path, root, root_len, &a), CS_OK);
    CHECK_STATUS(cs_open(path, root, root_len, &b), CS_OK);
    if (a == NULL || b == NULL) {
        return;
    }
    uint32_t days = 0;
    uint64_t pruned = 12345;
    CHECK_STATUS(cs_audit_retention_days(b, &days), CS_OK);
    CHECK(days == 400);
    CHECK_STATUS(cs_set_audit_retention_days(a, 0, &pruned), CS_INVALID_ARGUMENT);
    CHECK(strstr(cs_last_error(), "1..=36500 days") != NULL);
    CHECK_STATUS(cs_set_audit_retention_days(a, 36501, &pruned), CS_INVALID_ARGUMENT);
    CHECK(pruned == 12345);
    CHECK_STATUS(cs_audit_retention_days(b, &days), CS_OK);
    CHECK(days == 400);
    CHECK_STATUS(cs_set_audit_retention_days(a, 30, &pruned), CS_OK);
    CHECK(pruned == 0);
    CHECK_STATUS(cs_audit_retention_days(b, &days), CS_OK);
    CHECK(days == 30);
    CHECK_STATUS(cs_prune_audit(b, &pruned), CS_OK);
    CHECK(pruned == 0);
    CHECK_STATUS(cs_audit_retention_days(b, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_set_audit_retention_days(a, 30, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_prune_audit(a, NULL), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_prune_audit(NULL, &pruned), CS_INVALID_ARGUMENT);
    CHECK_STATUS(cs_close(b), CS_OK);
    CHECK_STATUS(cs_close(a), CS_OK);
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

    /* The version: the header's, the crate's. */
    CHECK(strcmp(cs_version(), CLOUDSYNC_VERSION) == 0);
    const char *pkg_version = getenv("CS_TEST_PKG_VERSION");
    if (pkg_version != NULL) {
        CHECK(strcmp(cs_version(), pkg_version) == 0);
    }
    CHECK(cs_version() == cs_version()); /* static */

    /* Status codes and names. */
    CHECK(strcmp(cs_status_name(CS_OK), "ok") == 0);
    CHECK(strcmp(cs_status_name(CS_MALFORMED), "malformed") == 0);
    CHECK(strcmp(cs_status_name(CS_INTERNAL), "internal") == 0);
    CHECK(strcmp(cs_status_name(12345), "unknown") == 0);
    CHECK(strcmp(cs_state_name(CS_STATE_HELD), "held") == 0);
    CHECK(strcmp(cs_state_name(-1), "unknown") == 0);
    CHECK(strcmp(cs_held_reason_name(CS_HELD_ACCOUNT), "account") == 0);
    CHECK(strcmp(cs_held_reason_name(-1), "unknown") == 0);
    CHECK(strcmp(cs_stop_reason_name(CS_STOP_TIME_UP), "time_up") == 0);
    CHECK(strcmp(cs_event_kind_name(CS_EVENT_FAILED), "failed") == 0);
    CHECK(strcmp(cs_account_state_name(CS_ACCOUNT_SIGNED_OUT), "signed_out") == 0);
    CHECK(strcmp(cs_account_state_name(99), "unknown") == 0);

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
    CHECK(report.next_due_at_ms == -1);

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
    CHECK(stats.next_due_at_ms > 0); /* due now */
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
    /* A closed handle is refused, not used (tests/c/abuse.c tries more). */
    CHECK_STATUS(cs_stats(agent, &stats), CS_INVALID_ARGUMENT);
    CHECK(strcmp(cs_last_error(), "invalid argument: agent handle is closed") == 0);
    CHECK_STATUS(cs_close(agent), CS_INVALID_ARGUMENT);

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

    /* Roots at open, on a database that already trusts ROOT. The root passed to
     * cs_open is the anchor of every trust decision: junk is refused, but another
     * root of the stored version (a planted or tampered database) no longer fails
     * with CS_ROOT_MISMATCH: it is put in force over the stored trust, the config
     * it does not sign is dropped, trust_reset says why, and the queue is kept.
     * CS_ROOT_MISMATCH now means "not anchored yet" (a newer stored root whose
     * chain is unverified). */
    CHECK(CS_ROOT_MISMATCH == 19);
    CHECK(strcmp(cs_status_name(CS_ROOT_MISMATCH), "root_mismatch") == 0);
    static const char reset_why[] = "the stored root differs from the firmware root";
    const uint8_t junk[] = "junk";
    agent = (cs_agent *)&failures;
    CHECK_STATUS(cs_open(held_db, junk, sizeof junk - 1, &agent), CS_MALFORMED);
    CHECK(agent == NULL);
    CHECK(strstr(cs_last_error(), "malformed") != NULL);
    /* Junk changed nothing: ROOT opens the file without a reset, trust and queue intact. */
    cs_config_info ci;
    agent = NULL;
    CHECK_STATUS(cs_open(held_db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        return 1;
    }
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.anchored == 1 && strcmp(ci.trust_reset, "") == 0);
    CHECK(ci.installed_config_version > 0 && strcmp(ci.approved_region, "sg") == 0);
    const int64_t config2_version = ci.installed_config_version;
    CHECK_STATUS(cs_close(agent), CS_OK);

    /* OTHER_ROOT (version 1, other keys) over the file that trusts ROOT v1: CS_OK, reset. */
    agent = (cs_agent *)&failures;
    CHECK_STATUS(cs_open(held_db, other_root, other_root_len, &agent), CS_OK);
    CHECK(agent != NULL && agent != (cs_agent *)&failures);
    if (agent == NULL || agent == (cs_agent *)&failures) {
        return 1;
    }
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.anchored == 1);
    CHECK(strlen(ci.trust_reset) > 0 && strcmp(ci.trust_reset, reset_why) == 0);
    CHECK(ci.root_version == 1);
    /* CONFIG2 is signed by ROOT's config key, which OTHER_ROOT does not list: dropped. */
    CHECK(ci.installed_config_version == -1 && ci.region_count == 0);
    CHECK(strcmp(ci.approved_region, "") == 0 && strcmp(ci.country, "SG") == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == N_HELD && stats.held == 0); /* the queue is kept */
    CHECK_STATUS(cs_run_once(agent, 1000, NULL, NULL, &report), CS_NO_CONFIG); /* sends nothing */
    CHECK_STATUS(cs_close(agent), CS_OK);

    /* Back to ROOT: the file now holds OTHER_ROOT v1, which ROOT cannot vouch for:
     * reset again, still without a config. */
    agent = NULL;
    CHECK_STATUS(cs_open(held_db, root, root_len, &agent), CS_OK);
    if (agent == NULL) {
        return 1;
    }
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.anchored == 1 && strcmp(ci.trust_reset, reset_why) == 0);
    CHECK(ci.root_version == 1 && ci.installed_config_version == -1);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "") == 0);
    /* The app re-installs its config (as it did above): the reset floors let the
     * same version back in, accepting it clears trust_reset, and the country kept
     * through the resets approves "sg" again for the queue that was kept. */
    CHECK_STATUS(cs_install(agent, config2, config2_len), CS_OK);
    memset(&ci, 0xab, sizeof ci);
    CHECK_STATUS(cs_get_config_info(agent, &ci), CS_OK);
    CHECK(ci.anchored == 1 && strcmp(ci.trust_reset, "") == 0);
    CHECK(ci.installed_config_version == config2_version);
    CHECK_STATUS(cs_approved_region(agent, region, sizeof region), CS_OK);
    CHECK(strcmp(region, "sg") == 0);
    CHECK_STATUS(cs_stats(agent, &stats), CS_OK);
    CHECK(stats.pending == N_HELD && stats.held == 0);
    CHECK_STATUS(cs_close(agent), CS_OK);

    queue_checks(root, root_len, config, config_len, dir);
    retention_checks(root, root_len, dir);
    paging_checks(root, root_len, dir);
    const char *world_root = getenv("CS_TEST_WORLD_ROOT");
    const char *world_config = getenv("CS_TEST_WORLD_CONFIG");
    if (world_root != NULL && world_config != NULL) {
        world_checks(dir, world_root, world_config);
    } else {
        fprintf(stderr, "note: no CS_TEST_WORLD_ROOT; item, event and audit checks skipped\n");
    }
    const char *ds_root = getenv("CS_TEST_DEVSERVER_ROOT");
    const char *ds_config = getenv("CS_TEST_DEVSERVER_CONFIG");
    if (ds_root != NULL && ds_config != NULL) {
        devserver_checks(dir, ds_root, ds_config);
    } else {
        fprintf(stderr, "note: no CS_TEST_DEVSERVER_ROOT; dev-server files check skipped\n");
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
    if (atomic_load(&failures)) {
        fprintf(stderr, "%d check(s) failed\n", atomic_load(&failures));
        return 1;
    }
    printf("test_capi: all checks passed\n");
    return 0;
}
