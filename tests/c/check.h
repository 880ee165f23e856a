/*
 * The checks the C test programs share (tests/c/test_capi.c,
 * tests/c/test_contention.c): CHECK(cond) counts a failed condition in
 * `failures` and prints it with the library's last error; the program exits
 * non-zero when `failures` is not 0. `failures` is atomic (C11): checks may
 * fail on several threads at once. Include after cloudsync.h.
 */
#ifndef CLOUDSYNC_TESTS_CHECK_H
#define CLOUDSYNC_TESTS_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

#include "cloudsync.h"

static atomic_int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, cs_last_error());                              \
            failures++;                                                             \
        }                                                                           \
    } while (0)

#endif
