/* Cancelling a long generation from another thread returns RF_ERR_CANCELLED within one
 * decode step, and the context then generates normally. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

static atomic_int pieces = 0;
static atomic_int pieces_at_cancel = -1;

static bool count_pieces(const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    (void)user;
    atomic_fetch_add(&pieces, 1);
    return true;
}

static void *canceller(void *arg) {
    rf_context *ctx = arg;
    while (atomic_load(&pieces) < 3) {
    }
    atomic_store(&pieces_at_cancel, atomic_load(&pieces));
    rf_context_cancel(ctx);
    return NULL;
}

static bool collect(const char *text, size_t len, void *user) {
    size_t *total = user;
    (void)text;
    *total += len;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    rf_model *model = load_model_or_exit(argv[1]);
    rf_context *ctx = NULL;
    rf_sampler *sampler = NULL;
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    CHECK_STATUS(rf_context_new(model, NULL, &ctx), RF_OK);
    CHECK_STATUS(rf_sampler_new(&sp, &sampler), RF_OK);

    rf_generate_params gp = rf_generate_default_params();
    gp.max_tokens = 2000; /* far more than runs before the cancel */
    const char *prompt = "Once upon a time";
    pthread_t t;
    pthread_create(&t, NULL, canceller, ctx);
    CHECK_STATUS(rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, count_pieces, NULL),
                 RF_ERR_CANCELLED);
    pthread_join(t, NULL);
    /* The decode running at the cancel stops at its next layer; at most the piece
     * sampled from the step before it can still arrive. */
    int after = atomic_load(&pieces) - atomic_load(&pieces_at_cancel);
    CHECK(after >= 0 && after <= 1);

    int32_t pos_before = -1, pos_after = -1;
    CHECK_STATUS(rf_seq_pos_max(ctx, 0, &pos_before), RF_OK);
    gp.max_tokens = 8;
    size_t total = 0;
    CHECK_STATUS(rf_generate(ctx, sampler, " And then", 9, &gp, collect, &total), RF_OK);
    CHECK(total > 0);
    CHECK_STATUS(rf_seq_pos_max(ctx, 0, &pos_after), RF_OK);
    CHECK(pos_after > pos_before);

    rf_sampler_free(sampler);
    rf_context_free(ctx);
    rf_model_free(model);
    return check_report("test_cancel");
}
