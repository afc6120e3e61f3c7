/* Tiny assertion helpers shared by the C tests. */
#ifndef ROCMFORGE_C_TEST_CHECK_H
#define ROCMFORGE_C_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocmforge.h"

static int check_failures = 0;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                   \
        }                                                                       \
    } while (0)

#define CHECK_STATUS(call, expected)                                            \
    do {                                                                        \
        rf_status got_ = (call);                                                \
        if (got_ != (expected)) {                                               \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, \
                    __LINE__, #call, rf_status_name(got_), rf_status_name(expected), \
                    rf_last_error());                                           \
            check_failures++;                                                   \
        }                                                                       \
    } while (0)

/* Loads the model at `path` or exits: every test needs one. */
static rf_model *load_model_or_exit(const char *path) {
    rf_model *model = NULL;
    rf_model_params p = rf_model_default_params();
    p.n_threads = 1;
    rf_status s = rf_model_load(path, strlen(path), &p, &model);
    if (s != RF_OK) {
        fprintf(stderr, "loading %s: %s: %s\n", path, rf_status_name(s), rf_last_error());
        exit(1);
    }
    return model;
}

/* Generated text collected by an rf_text_callback (`collect_text`); a generation that
 * outgrows it is stopped. */
#define COLLECTED_MAX 512
typedef struct collected_text {
    char bytes[COLLECTED_MAX];
    size_t len;
} collected_text;

static inline bool collect_text(const char *piece, size_t len, void *user) {
    collected_text *t = user;
    if (t->len + len > COLLECTED_MAX) return false;
    memcpy(t->bytes + t->len, piece, len);
    t->len += len;
    return true;
}

static inline bool same_text(const collected_text *a, const collected_text *b) {
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static int check_report(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif
