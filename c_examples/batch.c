/* batch: two sequences in one context that share a prompt prefix. The prefix is
 * decoded once into sequence 0, shared with sequence 1 by rf_seq_copy (no KV copied),
 * then each sequence continues with its own ending and generates greedily; both are
 * decoded together in one batch per step.
 *
 *   batch MODEL.gguf
 */
#include <stdio.h>
#include <string.h>

#include "rocmforge.h"

#define MAX_TOKENS 64
#define GEN_TOKENS 12

static int fail(const char *what, rf_status status) {
    fprintf(stderr, "batch: %s: %s: %s\n", what, rf_status_name(status), rf_last_error());
    return 1;
}

static rf_status tokenize(const rf_model *model, const char *text, int32_t *ids, size_t *n) {
    return rf_tokenize(model, text, strlen(text), true, true, ids, MAX_TOKENS, n);
}

/* Index of the largest logit. */
static int32_t argmax(const float *logits, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return (int32_t)best;
}

typedef struct text_buffer {
    char data[1024];
    size_t len;
} text_buffer;

static void append(text_buffer *t, const char *s, size_t n) {
    if (n > sizeof t->data - 1 - t->len) n = sizeof t->data - 1 - t->len;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void append_token(const rf_model *model, int32_t token, text_buffer *t) {
    char piece[64];
    size_t len = 0;
    if (rf_token_to_piece(model, token, false, piece, sizeof piece, &len) == RF_OK) {
        append(t, piece, len);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    static const char *prefix = "Here is a short list of colors:";
    static const char *endings[2] = {" red,", " blue,"};
    rf_model *model = NULL;
    rf_context *ctx = NULL;
    int rc = 1;
    rf_status s;

    if ((s = rf_model_load(argv[1], strlen(argv[1]), NULL, &model)) != RF_OK) {
        rc = fail("loading the model", s);
        goto done;
    }
    rf_context_params cp = rf_context_default_params();
    cp.n_seq_max = 2;
    cp.n_ctx = 256;
    if ((s = rf_context_new(model, &cp, &ctx)) != RF_OK) {
        rc = fail("creating a context", s);
        goto done;
    }

    int32_t ids[MAX_TOKENS];
    size_t n = 0;
    if ((s = tokenize(model, prefix, ids, &n)) != RF_OK) {
        rc = fail("tokenizing", s);
        goto done;
    }
    rf_batch b = {n, ids, NULL, NULL, NULL};
    if ((s = rf_decode(ctx, &b)) != RF_OK) {
        rc = fail("decoding the prefix", s);
        goto done;
    }
    if ((s = rf_seq_copy(ctx, 0, 1, 0, -1)) != RF_OK) {
        rc = fail("sharing the prefix", s);
        goto done;
    }
    rf_memory_report shared = {sizeof shared, 0, 0, 0, 0, 0, 0};
    rf_context_memory(ctx, &shared);

    /* Each sequence's own ending, both in one batch; logits for each last token. */
    int32_t tokens[2 * MAX_TOKENS], seqs[2 * MAX_TOKENS];
    uint8_t want[2 * MAX_TOKENS];
    size_t total = 0;
    for (int q = 0; q < 2; q++) {
        size_t m = 0;
        if ((s = rf_tokenize(model, endings[q], strlen(endings[q]), false, false, tokens + total,
                             MAX_TOKENS, &m)) != RF_OK) {
            rc = fail("tokenizing an ending", s);
            goto done;
        }
        for (size_t i = 0; i < m; i++) {
            seqs[total + i] = q;
            want[total + i] = (i + 1 == m);
        }
        total += m;
    }
    rf_batch endings_batch = {total, tokens, NULL, seqs, want};
    if ((s = rf_decode(ctx, &endings_batch)) != RF_OK) {
        rc = fail("decoding the endings", s);
        goto done;
    }

    text_buffer text[2] = {{"", 0}, {"", 0}};
    for (int q = 0; q < 2; q++) {
        append(&text[q], prefix, strlen(prefix));
        append(&text[q], endings[q], strlen(endings[q]));
    }
    for (int step = 0; step < GEN_TOKENS; step++) {
        int32_t next[2], step_seqs[2] = {0, 1};
        for (int q = 0; q < 2; q++) {
            const float *logits = NULL;
            size_t n_vocab = 0;
            if ((s = rf_get_logits(ctx, q, &logits, &n_vocab)) != RF_OK) {
                rc = fail("reading logits", s);
                goto done;
            }
            next[q] = argmax(logits, n_vocab);
            append_token(model, next[q], &text[q]);
        }
        uint8_t both[2] = {1, 1};
        rf_batch step_batch = {2, next, NULL, step_seqs, both};
        if ((s = rf_decode(ctx, &step_batch)) != RF_OK) {
            rc = fail("decoding a step", s);
            goto done;
        }
    }
    for (int q = 0; q < 2; q++) printf("sequence %d: %s\n", q, text[q].data);
    printf("KV blocks in use after sharing the prefix: %llu (one sequence's worth)\n",
           (unsigned long long)shared.kv_blocks_used);
    rc = 0;
done:
    rf_context_free(ctx);
    rf_model_free(model);
    return rc;
}
