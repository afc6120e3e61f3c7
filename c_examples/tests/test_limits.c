/* Sizes a host passes are checked before anything is allocated for them: every huge
 * rf_context_params field, a huge n_threads in rf_model_params and a huge batch give a
 * status and a message, never an abort. A context larger than the address space allows
 * (RLIMIT_AS) is RF_ERR_OUT_OF_MEMORY naming the bytes, and the process goes on. */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

enum { FIELD_N_CTX, FIELD_N_SEQ_MAX, FIELD_N_BATCH, FIELD_N_THREADS, N_FIELDS };
static const char *field_names[N_FIELDS] = {"n_ctx", "n_seq_max", "n_batch", "n_threads"};

static rf_context_params with_field(int field, uint32_t value) {
    rf_context_params p = rf_context_default_params();
    switch (field) {
    case FIELD_N_CTX: p.n_ctx = value; break;
    case FIELD_N_SEQ_MAX: p.n_seq_max = value; break;
    case FIELD_N_BATCH: p.n_batch = value; break;
    default: p.n_threads = value; break;
    }
    return p;
}

/* n_batch is capped at the context's size (as llama.cpp does): a huge one works, and a
 * batch longer than the context is refused. Every other field is refused or, for n_ctx
 * sizes under the position limit, runs out of memory. */
static void try_huge_context_params(rf_model *model) {
    const uint32_t values[] = {UINT32_MAX, INT32_MAX, 1u << 30};
    for (int field = 0; field < N_FIELDS; field++) {
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            rf_context_params p = with_field(field, values[i]);
            rf_context *ctx = NULL;
            rf_status s = rf_context_new(model, &p, &ctx);
            if (field == FIELD_N_BATCH) {
                CHECK_STATUS(s, RF_OK);
                rf_context_free(ctx);
                continue;
            }
            if (s == RF_OK || strlen(rf_last_error()) == 0 ||
                (s != RF_ERR_INVALID_ARGUMENT && s != RF_ERR_OUT_OF_MEMORY)) {
                fprintf(stderr, "%s = %u: %s (%s)\n", field_names[field], values[i],
                        rf_status_name(s), rf_last_error());
                CHECK(0);
            }
            CHECK(ctx == NULL);
            rf_context_free(ctx);
        }
    }
}

static void try_huge_batch(rf_model *model) {
    rf_context *ctx = NULL;
    rf_context_params p = rf_context_default_params();
    p.n_ctx = 64;
    CHECK_STATUS(rf_context_new(model, &p, &ctx), RF_OK);
    int32_t tokens[65] = {0};
    uint8_t want[65] = {1};
    /* n_tokens is checked before the arrays are read or copied. */
    rf_batch huge = {(size_t)1 << 40, tokens, NULL, NULL, want};
    CHECK_STATUS(rf_decode(ctx, &huge), RF_ERR_INVALID_ARGUMENT);
    rf_batch too_long = {65, tokens, NULL, NULL, want};
    CHECK_STATUS(rf_decode(ctx, &too_long), RF_ERR_INVALID_ARGUMENT);
    rf_batch fits = {1, tokens, NULL, NULL, want};
    CHECK_STATUS(rf_decode(ctx, &fits), RF_OK);
    rf_context_free(ctx);
}

static void try_huge_model_threads(const char *path) {
    rf_model_params mp = rf_model_default_params();
    mp.n_threads = UINT32_MAX;
    rf_model *model = NULL;
    CHECK_STATUS(rf_model_load(path, strlen(path), &mp, &model), RF_ERR_INVALID_ARGUMENT);
    CHECK(model == NULL);
}

static int running_under_a_memory_tool(void) {
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#else
    const char *preload = getenv("LD_PRELOAD");
    return preload != NULL && strstr(preload, "vgpreload") != NULL;
#endif
}

/* In a child under an 8 GiB address-space limit: a context whose KV cache needs about
 * 16 GiB is RF_ERR_OUT_OF_MEMORY with the byte count, and a small one still works. */
static void try_context_beyond_address_space(const char *path) {
    pid_t child = fork();
    if (child == 0) {
        struct rlimit limit = {(rlim_t)8 << 30, (rlim_t)8 << 30};
        if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(3);
        rf_model *model = load_model_or_exit(path);
        rf_model_description info;
        info.struct_size = sizeof info;
        if (rf_model_info(model, &info) != RF_OK) _exit(4);
        uint64_t head_dim = info.n_embd / info.n_head;
        uint64_t bytes_per_slot = 2 * 2 * (uint64_t)info.n_layer * info.n_head_kv * head_dim;
        uint64_t slots = ((uint64_t)16 << 30) / bytes_per_slot;
        if (slots > (uint64_t)INT32_MAX - 16) slots = (uint64_t)INT32_MAX - 16;
        rf_context_params p = rf_context_default_params();
        p.n_ctx = (uint32_t)slots;
        rf_context *ctx = NULL;
        rf_status s = rf_context_new(model, &p, &ctx);
        if (s != RF_ERR_OUT_OF_MEMORY || strstr(rf_last_error(), "bytes") == NULL) {
            fprintf(stderr, "n_ctx %llu under RLIMIT_AS: %s (%s)\n", (unsigned long long)slots,
                    rf_status_name(s), rf_last_error());
            _exit(5);
        }
        p.n_ctx = 256;
        if (rf_context_new(model, &p, &ctx) != RF_OK) _exit(6);
        rf_context_free(ctx);
        rf_model_free(model);
        _exit(0);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "address-space child: %s %d\n",
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        CHECK(0);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rf_model *model = load_model_or_exit(argv[1]);
    try_huge_context_params(model);
    try_huge_batch(model);
    rf_model_free(model);
    try_huge_model_threads(argv[1]);
    /* Sanitizers and valgrind reserve address space of their own. */
    if (running_under_a_memory_tool()) {
        printf("test_limits: address-space limit case skipped under a memory tool\n");
    } else {
        try_context_beyond_address_space(argv[1]);
    }
    return check_report("test_limits");
}
