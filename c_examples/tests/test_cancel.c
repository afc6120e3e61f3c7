/* Cancelling a long generation from another thread returns RF_ERR_CANCELLED within one
 * decode step, and the context then generates normally. The first piece of text asks a
 * second thread to cancel and waits until it has, so the cancel lands while rf_generate
 * runs, whatever the model writes. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

static atomic_int pieces = 0;
static atomic_int cancel_requested = 0, cancel_done = 0;

static bool cancel_at_first_piece(const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    (void)user;
    if (atomic_fetch_add(&pieces, 1) == 0) {
        atomic_store(&cancel_requested, 1);
        while (!atomic_load(&cancel_done)) {
        }
    }
    return true;
}

static void *canceller(void *arg) {
    rf_context *ctx = arg;
    while (!atomic_load(&cancel_requested)) {
    }
    CHECK_STATUS(rf_context_cancel(ctx), RF_OK);
    atomic_store(&cancel_done, 1);
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
    const char *prompt = "Hello there";
    pthread_t t;
    pthread_create(&t, NULL, canceller, ctx);
    CHECK_STATUS(rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, cancel_at_first_piece, NULL),
                 RF_ERR_CANCELLED);
    pthread_join(t, NULL);
    /* The decode after the first piece was the one cancelled: no text came after it. */
    CHECK(atomic_load(&pieces) == 1);

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
