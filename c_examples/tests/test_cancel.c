/* rf_context_cancel from another thread is never lost: 200 trials (TEST_TRIALS), each
 * cancelling a long generation at a random moment after its first piece of text (inside a
 * decode step, at its end, or between steps), all return RF_ERR_CANCELLED. A cancelled
 * call leaves the sequence as it found it, a cancel made while no call runs is dropped,
 * and the context then generates normally. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define TRIALS 200

static atomic_int first_piece_seen;

static bool note_first_piece(const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    (void)user;
    atomic_store(&first_piece_seen, 1);
    return true;
}

struct canceller_args {
    rf_context *ctx;
    unsigned delay_us;
};

static void *cancel_after_delay(void *arg) {
    struct canceller_args *a = arg;
    while (!atomic_load(&first_piece_seen)) {
    }
    if (a->delay_us > 0) usleep(a->delay_us);
    CHECK_STATUS(rf_context_cancel(a->ctx), RF_OK);
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
    gp.max_tokens = 100000; /* far more than runs before any cancel */
    const char *prompt = "1, 2, 3, 4, 5, 6, 7,";
    unsigned seed = (unsigned)time(NULL);
    const char *env = getenv("TEST_TRIALS");
    const int trials = env ? atoi(env) : TRIALS;
    int lost = 0;
    for (int trial = 0; trial < trials; trial++) {
        atomic_store(&first_piece_seen, 0);
        struct canceller_args args = {ctx, (unsigned)(rand_r(&seed) % 5000)};
        pthread_t t;
        pthread_create(&t, NULL, cancel_after_delay, &args);
        rf_status s = rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, note_first_piece, NULL);
        pthread_join(t, NULL);
        if (s != RF_ERR_CANCELLED) {
            fprintf(stderr, "trial %d (cancel %u us after the first piece): %s\n", trial,
                    args.delay_us, rf_status_name(s));
            lost++;
        }
        int32_t pos = 0;
        CHECK_STATUS(rf_seq_pos_max(ctx, 0, &pos), RF_OK);
        CHECK(pos == -1);
    }
    printf("test_cancel: %d of %d random-moment cancels lost\n", lost, trials);
    CHECK(lost == 0);

    /* A cancel made while nothing runs does not stop the next call. */
    CHECK_STATUS(rf_context_cancel(ctx), RF_OK);
    gp.max_tokens = 8;
    size_t total = 0;
    CHECK_STATUS(rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, collect, &total), RF_OK);
    CHECK(total > 0);

    rf_sampler_free(sampler);
    rf_context_free(ctx);
    rf_model_free(model);
    return check_report("test_cancel");
}
