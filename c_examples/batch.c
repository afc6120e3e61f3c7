/* batch: two sequences in one context that share a prompt prefix. The prefix is
 * decoded once into sequence 0, shared with sequence 1 by rf_seq_copy (no KV copied),
 * then each sequence continues with its own ending and generates greedily; both are
 * decoded together in one batch per step.
 *
 * It then checks what it claims and exits 1, saying why on stderr, when a claim fails:
 *  - the copy takes no KV block, and at the end the prefix's full blocks are still held
 *    once for both sequences (only the partly filled block was copied, on first write);
 *  - each sequence's greedy continuation is the one the same text gets when decoded
 *    alone in a fresh context.
 *
 *   batch MODEL.gguf
 */
#include <stdio.h>
#include <string.h>

#include "rocmforge.h"

#define MAX_TOKENS 128
#define GEN_TOKENS 12
#define N_SEQ 2

/* Longer than two KV blocks of 16 tokens, so sharing it saves whole blocks. */
static const char *const prefix =
    "Here is a short list of colors, written down by a painter who mixes her own paints "
    "every morning in a small studio by the sea and names each new color after the thing in "
    "her garden that it reminds her of:";
static const char *const endings[N_SEQ] = {" red,", " blue,"};

typedef struct sequence {
    int32_t ids[MAX_TOKENS]; /* prefix, ending, then the generated tokens */
    size_t n_prompt;
    size_t n;
} sequence;

static int fail(const char *what, rf_status status) {
    fprintf(stderr, "batch: %s: %s: %s\n", what, rf_status_name(status), rf_last_error());
    return 1;
}

/* Index of the largest logit. */
static int32_t argmax(const float *logits, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return (int32_t)best;
}

static rf_status greedy_token(rf_context *ctx, int32_t output, int32_t *token) {
    const float *logits = NULL;
    size_t n_vocab = 0;
    rf_status s = rf_get_logits(ctx, output, &logits, &n_vocab);
    if (s == RF_OK) *token = argmax(logits, n_vocab);
    return s;
}

static rf_status new_context(const rf_model *model, uint32_t n_seq, rf_context **ctx) {
    rf_context_params cp = rf_context_default_params();
    cp.n_seq_max = n_seq;
    cp.n_ctx = 256;
    return rf_context_new(model, &cp, ctx);
}

static rf_status memory_report(const rf_context *ctx, rf_memory_report *report) {
    memset(report, 0, sizeof *report);
    report->struct_size = sizeof *report;
    return rf_context_memory(ctx, report);
}

/* Both prompts: the prefix (with BOS), `n_prefix` tokens, then each sequence's ending. */
static rf_status tokenize_prompts(const rf_model *model, sequence seq[N_SEQ],
                                  size_t *n_prefix) {
    const size_t room = MAX_TOKENS - GEN_TOKENS;
    rf_status s =
        rf_tokenize(model, prefix, strlen(prefix), true, true, seq[0].ids, room, n_prefix);
    for (int q = 0; q < N_SEQ && s == RF_OK; q++) {
        size_t m = 0;
        if (q > 0) memcpy(seq[q].ids, seq[0].ids, *n_prefix * sizeof seq[0].ids[0]);
        s = rf_tokenize(model, endings[q], strlen(endings[q]), false, false,
                        seq[q].ids + *n_prefix, room - *n_prefix, &m);
        seq[q].n_prompt = seq[q].n = *n_prefix + m;
    }
    return s;
}

/* The shared run: prefix once, rf_seq_copy, both endings in one batch, then one batch
 * of two tokens per step. Reports the memory after the prefix, after the copy and at
 * the end. */
static int run_shared(const rf_model *model, size_t n_prefix, sequence seq[N_SEQ],
                      rf_memory_report *after_prefix, rf_memory_report *after_copy,
                      rf_memory_report *at_end) {
    rf_context *ctx = NULL;
    int rc = 1;
    rf_status s;
    if ((s = new_context(model, N_SEQ, &ctx)) != RF_OK) {
        rc = fail("creating a context", s);
        goto done;
    }
    rf_batch b = {n_prefix, seq[0].ids, NULL, NULL, NULL};
    if ((s = rf_decode(ctx, &b)) != RF_OK || (s = memory_report(ctx, after_prefix)) != RF_OK) {
        rc = fail("decoding the prefix", s);
        goto done;
    }
    if ((s = rf_seq_copy(ctx, 0, 1, 0, -1)) != RF_OK ||
        (s = memory_report(ctx, after_copy)) != RF_OK) {
        rc = fail("sharing the prefix", s);
        goto done;
    }

    /* Each sequence's own ending, both in one batch; logits for each last token. */
    int32_t tokens[2 * MAX_TOKENS], seqs[2 * MAX_TOKENS];
    uint8_t want[2 * MAX_TOKENS];
    size_t total = 0;
    for (int q = 0; q < N_SEQ; q++) {
        for (size_t i = n_prefix; i < seq[q].n_prompt; i++, total++) {
            tokens[total] = seq[q].ids[i];
            seqs[total] = q;
            want[total] = i + 1 == seq[q].n_prompt;
        }
    }
    rf_batch endings_batch = {total, tokens, NULL, seqs, want};
    if ((s = rf_decode(ctx, &endings_batch)) != RF_OK) {
        rc = fail("decoding the endings", s);
        goto done;
    }
    for (int step = 0; step < GEN_TOKENS; step++) {
        int32_t next[N_SEQ], step_seqs[N_SEQ] = {0, 1};
        uint8_t both[N_SEQ] = {1, 1};
        for (int q = 0; q < N_SEQ; q++) {
            if ((s = greedy_token(ctx, q, &next[q])) != RF_OK) {
                rc = fail("reading logits", s);
                goto done;
            }
            seq[q].ids[seq[q].n++] = next[q];
        }
        rf_batch step_batch = {N_SEQ, next, NULL, step_seqs, both};
        if ((s = rf_decode(ctx, &step_batch)) != RF_OK) {
            rc = fail("decoding a step", s);
            goto done;
        }
    }
    if ((s = memory_report(ctx, at_end)) != RF_OK) {
        rc = fail("reading the memory report", s);
        goto done;
    }
    rc = 0;
done:
    rf_context_free(ctx);
    return rc;
}

/* The separate run of one sequence: its prompt alone in a fresh context, then greedy
 * steps; 0 when every token equals the shared run's. */
static int check_alone(const rf_model *model, const sequence *shared, int q) {
    rf_context *ctx = NULL;
    int rc = 1;
    rf_status s;
    if ((s = new_context(model, 1, &ctx)) != RF_OK) {
        rc = fail("creating a context", s);
        goto done;
    }
    rf_batch prompt = {shared->n_prompt, shared->ids, NULL, NULL, NULL};
    if ((s = rf_decode(ctx, &prompt)) != RF_OK) {
        rc = fail("decoding a prompt alone", s);
        goto done;
    }
    for (size_t i = shared->n_prompt; i < shared->n; i++) {
        int32_t token = -1;
        if ((s = greedy_token(ctx, -1, &token)) != RF_OK) {
            rc = fail("reading logits", s);
            goto done;
        }
        if (token != shared->ids[i]) {
            fprintf(stderr,
                    "batch: sequence %d, generated token %zu: %d in the shared batch, %d when "
                    "decoded alone\n",
                    q, i - shared->n_prompt, shared->ids[i], token);
            goto done;
        }
        rf_batch step = {1, &token, NULL, NULL, NULL};
        if ((s = rf_decode(ctx, &step)) != RF_OK) {
            rc = fail("decoding a step alone", s);
            goto done;
        }
    }
    rc = 0;
done:
    rf_context_free(ctx);
    return rc;
}

static uint64_t blocks_for(size_t n_tokens, uint64_t block_tokens) {
    return (n_tokens + block_tokens - 1) / block_tokens;
}

/* The sharing claims: the copy took no block, and at the end the prefix's full blocks
 * are held once while every other block belongs to one sequence. */
static int check_sharing(size_t n_prefix, const sequence seq[N_SEQ],
                         const rf_memory_report *after_prefix,
                         const rf_memory_report *after_copy, const rf_memory_report *at_end) {
    uint64_t block = at_end->kv_block_tokens;
    uint64_t shared_blocks = n_prefix / block, expected = shared_blocks, unshared = 0;
    for (int q = 0; q < N_SEQ; q++) {
        expected += blocks_for(seq[q].n, block) - shared_blocks;
        unshared += blocks_for(seq[q].n, block);
    }
    printf("KV blocks of %llu tokens in use: %llu after the %zu-token prefix, %llu after "
           "rf_seq_copy, %llu at the end (%llu without sharing)\n",
           (unsigned long long)block, (unsigned long long)after_prefix->kv_blocks_used, n_prefix,
           (unsigned long long)after_copy->kv_blocks_used,
           (unsigned long long)at_end->kv_blocks_used, (unsigned long long)unshared);
    if (shared_blocks == 0) {
        fprintf(stderr, "batch: the prefix (%zu tokens) fills no KV block of %llu\n", n_prefix,
                (unsigned long long)block);
        return 1;
    }
    if (after_copy->kv_blocks_used != after_prefix->kv_blocks_used) {
        fprintf(stderr, "batch: rf_seq_copy took KV blocks: %llu in use before, %llu after\n",
                (unsigned long long)after_prefix->kv_blocks_used,
                (unsigned long long)after_copy->kv_blocks_used);
        return 1;
    }
    if (at_end->kv_blocks_used != expected) {
        fprintf(stderr,
                "batch: %llu KV blocks in use at the end, expected %llu (the prefix's %llu "
                "full blocks shared; %llu without sharing)\n",
                (unsigned long long)at_end->kv_blocks_used, (unsigned long long)expected,
                (unsigned long long)shared_blocks, (unsigned long long)unshared);
        return 1;
    }
    return 0;
}

static void print_text(const rf_model *model, int q, const sequence *seq) {
    char text[2048];
    size_t len = 0;
    /* The prefix and ending as written, then the generated tokens' text. */
    printf("sequence %d: %s%s", q, prefix, endings[q]);
    if (rf_detokenize(model, seq->ids + seq->n_prompt, seq->n - seq->n_prompt, false, text,
                      sizeof text, &len) == RF_OK) {
        printf("%.*s", (int)len, text);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rf_model *model = NULL;
    int rc = 1;
    rf_status s;
    if ((s = rf_model_load(argv[1], strlen(argv[1]), NULL, &model)) != RF_OK) {
        rc = fail("loading the model", s);
        goto done;
    }
    sequence seq[N_SEQ];
    size_t n_prefix = 0;
    if ((s = tokenize_prompts(model, seq, &n_prefix)) != RF_OK) {
        rc = fail("tokenizing", s);
        goto done;
    }
    rf_memory_report after_prefix, after_copy, at_end;
    if (run_shared(model, n_prefix, seq, &after_prefix, &after_copy, &at_end) != 0) goto done;
    for (int q = 0; q < N_SEQ; q++) print_text(model, q, &seq[q]);
    if (check_sharing(n_prefix, seq, &after_prefix, &after_copy, &at_end) != 0) goto done;
    for (int q = 0; q < N_SEQ; q++) {
        if (check_alone(model, &seq[q], q) != 0) goto done;
    }
    printf("each sequence's %d greedy tokens equal those of a separate run\n", GEN_TOKENS);
    rc = 0;
done:
    rf_model_free(model);
    return rc;
}
