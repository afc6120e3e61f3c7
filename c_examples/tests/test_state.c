/* Saving and restoring a sequence's state: after a prompt, the state restored into a
 * fresh context of another size and into another sequence id continues with the same 32
 * greedy tokens as the uninterrupted run; a blob from another model, a truncated blob and
 * a blob with one flipped byte are refused with the context unchanged; a state the
 * context has no room for is RF_ERR_CONTEXT_FULL; the file variants round-trip.
 *
 * usage: test_state MODEL.gguf OTHER_MODEL.gguf */
#include <stdint.h>
#include <unistd.h>

#include "check.h"

#define N_GEN 32

static const char PROMPT[] = "The three primary colors are";

static rf_context *new_context(const rf_model *model, uint32_t n_ctx, uint32_t n_seq_max) {
    rf_context_params p = rf_context_default_params();
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq_max;
    p.n_threads = 1;
    rf_context *ctx = NULL;
    CHECK_STATUS(rf_context_new(model, &p, &ctx), RF_OK);
    return ctx;
}

static rf_sampler *greedy(void) {
    rf_sampler_params p = rf_sampler_default_params();
    p.temperature = 0.0f;
    rf_sampler *sampler = NULL;
    CHECK_STATUS(rf_sampler_new(&p, &sampler), RF_OK);
    return sampler;
}

/* Decodes `n` tokens into `seq`, logits for the last. */
static void decode(rf_context *ctx, const int32_t *tokens, size_t n, int32_t seq) {
    int32_t seq_ids[64];
    for (size_t i = 0; i < n; i++) seq_ids[i] = seq;
    rf_batch batch = {.n_tokens = n, .tokens = tokens, .seq_ids = seq_ids};
    CHECK_STATUS(rf_decode(ctx, &batch), RF_OK);
}

/* N_GEN greedy tokens continuing `seq` from the logits at hand. */
static void generate(rf_context *ctx, int32_t seq, int32_t *out) {
    rf_sampler *sampler = greedy();
    for (int i = 0; i < N_GEN; i++) {
        CHECK_STATUS(rf_sampler_sample(sampler, ctx, -1, &out[i]), RF_OK);
        decode(ctx, &out[i], 1, seq);
    }
    rf_sampler_free(sampler);
}

/* The prompt decoded into sequence 0 of a fresh context, and its saved state. */
static uint8_t *prompt_state(const rf_model *model, rf_context *ctx, size_t *len) {
    int32_t tokens[64];
    size_t n = 0;
    CHECK_STATUS(rf_tokenize(model, PROMPT, strlen(PROMPT), true, false, tokens, 64, &n),
                 RF_OK);
    decode(ctx, tokens, n, 0);
    size_t size = 0, needed = 0;
    CHECK_STATUS(rf_state_seq_size(ctx, 0, &size), RF_OK);
    CHECK_STATUS(rf_state_seq_save(ctx, 0, NULL, 0, &needed), RF_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == size);
    uint8_t *blob = malloc(size);
    CHECK_STATUS(rf_state_seq_save(ctx, 0, blob, size, len), RF_OK);
    CHECK(*len == size);
    return blob;
}

/* A refused load leaves the sequence as it was. */
static void check_refused(rf_context *ctx, const uint8_t *blob, size_t len, const char *what) {
    int32_t before = -2, after = -2;
    CHECK_STATUS(rf_seq_pos_max(ctx, 1, &before), RF_OK);
    rf_status s = rf_state_seq_load(ctx, 1, blob, len);
    if (s != RF_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "%s: loading gave %s (%s)\n", what, rf_status_name(s), rf_last_error());
        check_failures++;
    }
    CHECK_STATUS(rf_seq_pos_max(ctx, 1, &after), RF_OK);
    CHECK(before == after);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf OTHER_MODEL.gguf\n", argv[0]);
        return 2;
    }
    rf_model *model = load_model_or_exit(argv[1]);
    rf_model *other = load_model_or_exit(argv[2]);

    /* The uninterrupted run. */
    rf_context *original = new_context(model, 128, 1);
    size_t len = 0;
    uint8_t *blob = prompt_state(model, original, &len);
    int32_t expected[N_GEN];
    generate(original, 0, expected);

    /* Restored into sequence 2 of a larger context, which held something else there. */
    rf_context *restored = new_context(model, 256, 3);
    int32_t filler[20];
    for (int i = 0; i < 20; i++) filler[i] = 100 + i;
    decode(restored, filler, 20, 2);
    CHECK_STATUS(rf_state_seq_load(restored, 2, blob, len), RF_OK);
    int32_t got[N_GEN];
    generate(restored, 2, got);
    CHECK(memcmp(got, expected, sizeof got) == 0);
    for (int i = 0; i < N_GEN; i++) {
        if (got[i] != expected[i]) {
            fprintf(stderr, "token %d: restored %d, uninterrupted %d\n", i, got[i], expected[i]);
            break;
        }
    }

    /* Refused blobs: sequence 1 holds a few tokens, which stay. */
    decode(restored, filler, 5, 1);
    check_refused(restored, blob, len - 1, "a truncated blob");
    uint8_t *flipped = malloc(len);
    memcpy(flipped, blob, len);
    flipped[len / 2] ^= 0x01;
    check_refused(restored, flipped, len, "a blob with one flipped byte");
    free(flipped);
    rf_context *other_ctx = new_context(other, 128, 1);
    size_t other_len = 0;
    uint8_t *other_blob = prompt_state(other, other_ctx, &other_len);
    check_refused(restored, other_blob, other_len, "another model's blob");
    free(other_blob);
    rf_context_free(other_ctx);

    /* A state larger than the context: the prompt and 32 tokens do not fit 32 slots. */
    size_t long_len = 0;
    CHECK_STATUS(rf_state_seq_size(original, 0, &long_len), RF_OK);
    uint8_t *long_blob = malloc(long_len);
    CHECK_STATUS(rf_state_seq_save(original, 0, long_blob, long_len, &long_len), RF_OK);
    rf_context *small = new_context(model, 32, 1);
    CHECK_STATUS(rf_state_seq_load(small, 0, long_blob, long_len), RF_ERR_CONTEXT_FULL);
    int32_t pos = 0;
    CHECK_STATUS(rf_seq_pos_max(small, 0, &pos), RF_OK);
    CHECK(pos == -1);
    free(long_blob);
    rf_context_free(small);

    /* Through a file. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/rocmforge-state-%ld.bin", (long)getpid());
    CHECK_STATUS(rf_state_seq_save_file(original, 0, path, strlen(path)), RF_OK);
    rf_context *from_file = new_context(model, 128, 1);
    CHECK_STATUS(rf_state_seq_load_file(from_file, 0, path, strlen(path)), RF_OK);
    int32_t pos_saved = 0, pos_loaded = 0;
    CHECK_STATUS(rf_seq_pos_max(original, 0, &pos_saved), RF_OK);
    CHECK_STATUS(rf_seq_pos_max(from_file, 0, &pos_loaded), RF_OK);
    CHECK(pos_saved == pos_loaded);
    remove(path);
    CHECK_STATUS(rf_state_seq_load_file(from_file, 0, path, strlen(path)), RF_ERR_IO);
    rf_context_free(from_file);

    free(blob);
    rf_context_free(restored);
    rf_context_free(original);
    rf_model_free(other);
    rf_model_free(model);
    printf("test_state: %zu-byte state after the prompt\n", len);
    return check_report("test_state");
}
