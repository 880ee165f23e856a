/*
 * One run through the C ABI, for crates/cli/tests/processes/c_runner_lock.rs (issue 22): opens
 * DB with ROOT.json, runs cs_run_once for up to 60 s and prints what came
 * back, so the test can kill it mid-run and start the next one:
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -pedantic -I include \
 *       tests/c/runner_lock.c -L target/debug -lcloudsync -o runner_lock
 *   LD_LIBRARY_PATH=target/debug ./runner_lock DB ROOT.json
 *
 * Prints "status <code> <name>", "message <cs_last_error or empty>" and
 * "uploaded <n>"; exits 0 when it could print them. An alarm() ends a hung
 * run (exit by SIGALRM).
 */
#define _POSIX_C_SOURCE 200809L
#include "cloudsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = malloc(1 << 20);
    size_t n = buf == NULL ? 0 : fread(buf, 1, 1 << 20, f);
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: runner_lock DB ROOT.json\n");
        return 2;
    }
    alarm(120);
    size_t root_len = 0;
    uint8_t *root = read_file(argv[2], &root_len);
    if (root == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    cs_agent *a = NULL;
    cs_status st = cs_open(argv[1], root, root_len, &a);
    free(root);
    if (st != CS_OK) {
        fprintf(stderr, "cs_open: %s: %s\n", cs_status_name(st), cs_last_error());
        return 2;
    }
    cs_run_report r;
    memset(&r, 0, sizeof r);
    st = cs_run_once(a, 60000, NULL, NULL, &r);
    printf("status %d %s\n", (int)st, cs_status_name(st));
    printf("message %s\n", st == CS_OK ? "" : cs_last_error());
    printf("uploaded %llu\n", (unsigned long long)r.uploaded);
    fflush(stdout);
    cs_close(a);
    return 0;
}
