/* Parameter structs and callbacks: a host built against an older, smaller struct keeps
 * working (missing fields take defaults), a struct_size of 0 or one that ends inside a
 * field (a torn pointer or count) is refused and nothing is written, the log callback
 * receives the library's messages (nothing is printed), and a progress callback that
 * returns false cancels the load without leaking. */
#include <stddef.h>

#include "check.h"

static int log_calls = 0;
static void count_logs(uint32_t level, const char *msg, size_t len, void *user) {
    (void)level;
    (void)user;
    if (msg != NULL && len > 0) log_calls++;
}

static int progress_calls = 0;
static bool stop_at_half(float progress, void *user) {
    (void)user;
    progress_calls++;
    return progress < 0.5f;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    rf_model *model = NULL;

    rf_model_params mp = rf_model_default_params();
    mp.log_callback = count_logs;
    mp.log_level = RF_LOG_DEBUG;
    CHECK_STATUS(rf_model_load(path, strlen(path), &mp, &model), RF_OK);
    CHECK(log_calls > 0);

    /* An older host's rf_context_params ends before kv_type. */
    rf_context_params old = rf_context_default_params();
    old.struct_size = (uint32_t)offsetof(rf_context_params, kv_type);
    old.n_ctx = 64;
    rf_context *ctx = NULL;
    CHECK_STATUS(rf_context_new(model, &old, &ctx), RF_OK);
    rf_memory_report mem = {sizeof mem, 0, 0, 0, 0, 0, 0};
    CHECK_STATUS(rf_context_memory(ctx, &mem), RF_OK);
    CHECK(mem.kv_blocks_total * mem.kv_block_tokens >= 64);
    rf_context_free(ctx);

    rf_context_params zero = rf_context_default_params();
    zero.struct_size = 0;
    ctx = NULL;
    CHECK_STATUS(rf_context_new(model, &zero, &ctx), RF_ERR_INVALID_ARGUMENT);
    CHECK(ctx == NULL);
    /* A Q8_0 cache: a context that decodes, or (heads not whole 32-value blocks, as the
     * tiny model valgrind runs on has) a refusal that says why. */
    rf_context_params q8 = rf_context_default_params();
    q8.kv_type = RF_KV_Q8_0;
    q8.n_ctx = 64;
    rf_status q8_status = rf_context_new(model, &q8, &ctx);
    CHECK(q8_status == RF_OK ||
          (q8_status == RF_ERR_UNSUPPORTED && strstr(rf_last_error(), "multiple of 32") != NULL));
    if (ctx != NULL) {
        const int32_t prompt[] = {504, 1296, 3003, 4683, 359};
        rf_batch batch = {5, prompt, NULL, NULL, NULL};
        CHECK_STATUS(rf_decode(ctx, &batch), RF_OK);
        rf_context_free(ctx);
        ctx = NULL;
    }
    q8.kv_type = 7;
    CHECK_STATUS(rf_context_new(model, &q8, &ctx), RF_ERR_INVALID_ARGUMENT);
    CHECK(ctx == NULL && strstr(rf_last_error(), "kv_type is 7") != NULL);

    /* struct_size 6 ends inside n_ctx: 65600 must not become a 64-slot context. */
    rf_context_params torn_ctx = rf_context_default_params();
    torn_ctx.struct_size = 6;
    torn_ctx.n_ctx = 65600;
    CHECK_STATUS(rf_context_new(model, &torn_ctx, &ctx), RF_ERR_INVALID_ARGUMENT);
    CHECK(ctx == NULL && strstr(rf_last_error(), "struct_size") != NULL);
    /* A memory report cut inside kv_blocks_total gets nothing written. */
    CHECK_STATUS(rf_context_new(model, NULL, &ctx), RF_OK);
    rf_memory_report torn_mem;
    memset(&torn_mem, 0xAB, sizeof torn_mem);
    torn_mem.struct_size = 12;
    CHECK_STATUS(rf_context_memory(ctx, &torn_mem), RF_ERR_INVALID_ARGUMENT);
    uint64_t pattern;
    memset(&pattern, 0xAB, sizeof pattern);
    CHECK(memcmp(&torn_mem.kv_blocks_total, &pattern, sizeof pattern) == 0);
    rf_context_free(ctx);
    rf_model_free(model);

    /* struct_size 20 ends inside the progress callback pointer: refused before any load. */
    rf_model_params torn_model = rf_model_default_params();
    torn_model.struct_size = (uint32_t)offsetof(rf_model_params, progress_callback) + 4;
    torn_model.progress_callback = stop_at_half;
    model = NULL;
    CHECK_STATUS(rf_model_load(path, strlen(path), &torn_model, &model), RF_ERR_INVALID_ARGUMENT);
    CHECK(model == NULL);

    /* An older rf_model_description: only the fields it has are written. */
    CHECK_STATUS(rf_model_load(path, strlen(path), NULL, &model), RF_OK);
    rf_model_description small;
    memset(&small, 0xAB, sizeof small);
    small.struct_size = (uint32_t)offsetof(rf_model_description, n_params);
    CHECK_STATUS(rf_model_info(model, &small), RF_OK);
    CHECK(small.architecture != NULL && strcmp(small.architecture, "llama") == 0);
    uint64_t untouched;
    memset(&untouched, 0xAB, sizeof untouched);
    CHECK(memcmp(&small.n_params, &untouched, sizeof untouched) == 0);
    /* struct_size 12 ends inside the architecture pointer: no half pointer is written. */
    rf_model_description torn_info;
    memset(&torn_info, 0xAB, sizeof torn_info);
    torn_info.struct_size = (uint32_t)offsetof(rf_model_description, architecture) + 4;
    CHECK_STATUS(rf_model_info(model, &torn_info), RF_ERR_INVALID_ARGUMENT);
    CHECK(memcmp(&torn_info.architecture, &untouched, sizeof torn_info.architecture) == 0);
    rf_model_free(model);

    rf_model *cancelled = NULL;
    rf_model_params cp = rf_model_default_params();
    cp.progress_callback = stop_at_half;
    CHECK_STATUS(rf_model_load(path, strlen(path), &cp, &cancelled), RF_ERR_CANCELLED);
    CHECK(cancelled == NULL && progress_calls >= 2);
    /* The next load works. */
    rf_model_free(load_model_or_exit(path));

    /* From memory: the same model, the bytes borrowed until rf_model_free. */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *bytes = malloc((size_t)size);
        CHECK(bytes != NULL && fread(bytes, 1, (size_t)size, f) == (size_t)size);
        fclose(f);
        CHECK_STATUS(rf_model_load_from_memory(bytes, (size_t)size, NULL, &model), RF_OK);
        int32_t ids[8];
        size_t n = 0;
        CHECK_STATUS(rf_tokenize(model, "The three primary colors are", 28, false, false, ids, 8, &n), RF_OK);
        CHECK(n == 5 && ids[0] == 504);
        rf_model_free(model);
        /* A truncated copy is a clear error, not a crash. */
        CHECK_STATUS(rf_model_load_from_memory(bytes, (size_t)size / 2, NULL, &model), RF_ERR_INVALID_MODEL);
        CHECK(strstr(rf_last_error(), "byte") != NULL);
        free(bytes);
    }
    return check_report("test_params");
}
