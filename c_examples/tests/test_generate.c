/* rf_generate never gives a silently wrong answer:
 * - an empty prompt on an empty sequence is an error, even when another sequence has
 *   just left its logits behind; on a non-empty sequence it continues from that
 *   sequence's own last token, exactly as one uninterrupted call would;
 * - a prompt longer than the context is RF_ERR_CONTEXT_FULL and leaves the sequence as
 *   it was, so a retry does not duplicate it;
 * - when the text callback stops generation, the cache holds exactly the delivered text:
 *   continuing gives what one uninterrupted call would;
 * - rf_get_logits accepts -1 and non-negative indices only;
 * - the context's real size (n_ctx rounded up to whole KV blocks) is readable. */
#include "check.h"

struct text {
    char bytes[4096];
    size_t len;
    int pieces_left; /* the callback returns false once this reaches 0; -1: never */
};

static bool append(const char *piece, size_t len, void *user) {
    struct text *t = user;
    if (t->len + len < sizeof t->bytes) {
        memcpy(t->bytes + t->len, piece, len);
        t->len += len;
        t->bytes[t->len] = '\0';
    }
    if (t->pieces_left > 0) t->pieces_left--;
    return t->pieces_left != 0;
}

static rf_context *new_context(rf_model *model, uint32_t n_ctx, uint32_t n_seq) {
    rf_context_params p = rf_context_default_params();
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_batch = 16;
    rf_context *ctx = NULL;
    CHECK_STATUS(rf_context_new(model, &p, &ctx), RF_OK);
    return ctx;
}

static rf_status generate(rf_context *ctx, rf_sampler *s, const char *prompt, int32_t seq,
                          uint32_t max_tokens, struct text *out) {
    rf_generate_params gp = rf_generate_default_params();
    gp.seq_id = seq;
    gp.max_tokens = max_tokens;
    return rf_generate(ctx, s, prompt, strlen(prompt), &gp, append, out);
}

static int32_t pos_max(rf_context *ctx, int32_t seq) {
    int32_t pos = -2;
    CHECK_STATUS(rf_seq_pos_max(ctx, seq, &pos), RF_OK);
    return pos;
}

static const char *PROMPT = "The capital of France is";
static const char *OTHER = "My favourite fruit is";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rf_model *model = load_model_or_exit(argv[1]);
    rf_sampler *sampler = NULL;
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    CHECK_STATUS(rf_sampler_new(&sp, &sampler), RF_OK);

    /* The reference: 12 greedy tokens in one call. */
    rf_context *ctx = new_context(model, 256, 2);
    struct text whole = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, PROMPT, 0, 12, &whole), RF_OK);
    CHECK(whole.len > 0);
    rf_context_free(ctx);

    /* Empty prompt on an empty sequence after another sequence generated: an error, and
     * nothing is written to either sequence. */
    ctx = new_context(model, 256, 2);
    struct text first = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, PROMPT, 0, 6, &first), RF_OK);
    int32_t seq0_pos = pos_max(ctx, 0);
    struct text stolen = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, "", 1, 6, &stolen), RF_ERR_INVALID_ARGUMENT);
    CHECK(stolen.len == 0 && pos_max(ctx, 1) == -1 && pos_max(ctx, 0) == seq0_pos);

    /* Another sequence decodes, then an empty prompt continues sequence 0 from its own
     * last token: the two parts equal the uninterrupted reference. */
    struct text other = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, OTHER, 1, 4, &other), RF_OK);
    struct text rest = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, "", 0, 6, &rest), RF_OK);
    char joined[8192];
    snprintf(joined, sizeof joined, "%s%s", first.bytes, rest.bytes);
    if (strcmp(joined, whole.bytes) != 0) {
        fprintf(stderr, "continued: \"%s\"\nreference: \"%s\"\n", joined, whole.bytes);
        CHECK(0);
    }

    /* rf_get_logits: -1 is the last row; other negative indices are errors. */
    const float *logits = NULL;
    size_t n_vocab = 0;
    CHECK_STATUS(rf_get_logits(ctx, -1, &logits, &n_vocab), RF_OK);
    CHECK(logits != NULL && n_vocab > 0);
    CHECK_STATUS(rf_get_logits(ctx, -2, &logits, &n_vocab), RF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(rf_get_logits(ctx, INT32_MIN, &logits, &n_vocab), RF_ERR_INVALID_ARGUMENT);
    rf_context_free(ctx);

    /* The host stops at the first piece; continuing gives the rest of the reference. */
    ctx = new_context(model, 256, 1);
    struct text stopped = {.pieces_left = 1};
    CHECK_STATUS(generate(ctx, sampler, PROMPT, 0, 12, &stopped), RF_OK);
    struct text after = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, "", 0, 11, &after), RF_OK);
    snprintf(joined, sizeof joined, "%s%s", stopped.bytes, after.bytes);
    if (strcmp(joined, whole.bytes) != 0) {
        fprintf(stderr, "after a stop: \"%s\"\nreference:    \"%s\"\n", joined, whole.bytes);
        CHECK(0);
    }
    rf_context_free(ctx);

    /* A prompt longer than the context: refused, the sequence as it was, before and after
     * it holds tokens. 40 slots round up to 48 (three blocks of 16). */
    ctx = new_context(model, 40, 1);
    rf_memory_report mem = {.struct_size = sizeof mem};
    CHECK_STATUS(rf_context_memory(ctx, &mem), RF_OK);
    CHECK(mem.kv_blocks_total * mem.kv_block_tokens == 48);
    char long_prompt[2048] = "";
    for (int i = 0; i < 60; i++) strcat(long_prompt, " one two");
    struct text none = {.pieces_left = -1};
    CHECK_STATUS(generate(ctx, sampler, long_prompt, 0, 4, &none), RF_ERR_CONTEXT_FULL);
    CHECK(pos_max(ctx, 0) == -1 && none.len == 0);
    CHECK_STATUS(generate(ctx, sampler, PROMPT, 0, 2, &none), RF_OK);
    int32_t before = pos_max(ctx, 0);
    CHECK_STATUS(generate(ctx, sampler, long_prompt, 0, 4, &none), RF_ERR_CONTEXT_FULL);
    CHECK(pos_max(ctx, 0) == before);
    CHECK_STATUS(rf_context_memory(ctx, &mem), RF_OK);
    CHECK(mem.kv_blocks_used == (uint64_t)(before + 1 + 15) / 16);
    rf_context_free(ctx);

    rf_sampler_free(sampler);
    rf_model_free(model);
    return check_report("test_generate");
}
