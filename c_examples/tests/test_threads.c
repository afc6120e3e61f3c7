/* One model shared by 4 threads, each with its own context, generates the same greedy
 * tokens as a sequential run; a second thread entering a context in use gets
 * RF_ERR_BUSY. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

#define N_THREADS 4
#define N_GEN 16

static rf_model *model;
static const char *prompts[N_THREADS] = {
    "The three primary colors are",
    "Once upon a time, there was",
    "def add(a, b):",
    "The capital of France is",
};

typedef struct run {
    const char *prompt;
    int32_t tokens[N_GEN];
    rf_status status;
} run;

/* Greedy generation of N_GEN tokens, token by token. */
static void *generate_tokens(void *arg) {
    run *r = arg;
    rf_context *ctx = NULL;
    rf_sampler *sampler = NULL;
    rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 1;
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    int32_t ids[64];
    size_t n = 0;
    if ((r->status = rf_context_new(model, &cp, &ctx)) != RF_OK) goto done;
    if ((r->status = rf_sampler_new(&sp, &sampler)) != RF_OK) goto done;
    r->status = rf_tokenize(model, r->prompt, strlen(r->prompt), true, true, ids, 64, &n);
    if (r->status != RF_OK) goto done;
    rf_batch b = {n, ids, NULL, NULL, NULL};
    for (int i = 0; i < N_GEN; i++) {
        if ((r->status = rf_decode(ctx, &b)) != RF_OK) goto done;
        if ((r->status = rf_sampler_sample(sampler, ctx, -1, &r->tokens[i])) != RF_OK) goto done;
        b.n_tokens = 1;
        b.tokens = &r->tokens[i];
    }
done:
    rf_sampler_free(sampler);
    rf_context_free(ctx);
    return NULL;
}

/* --- BUSY: thread A holds the context inside rf_generate's callback while B tries. */
static atomic_int a_inside = 0, b_done = 0;
static rf_status b_status = RF_OK;

static bool hold_until_b_tried(const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    (void)user;
    atomic_store(&a_inside, 1);
    while (!atomic_load(&b_done)) {
    }
    return false; /* stop generating */
}

typedef struct shared_ctx {
    rf_context *ctx;
    rf_sampler *sampler;
    rf_status status;
} shared_ctx;

static void *thread_a(void *arg) {
    shared_ctx *s = arg;
    s->status = rf_generate(s->ctx, s->sampler, "Hello", 5, NULL, hold_until_b_tried, NULL);
    return NULL;
}

static void *thread_b(void *arg) {
    shared_ctx *s = arg;
    while (!atomic_load(&a_inside)) {
    }
    int32_t token = 504;
    rf_batch b = {1, &token, NULL, NULL, NULL};
    b_status = rf_decode(s->ctx, &b);
    atomic_store(&b_done, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model = load_model_or_exit(argv[1]);

    run sequential[N_THREADS] = {0}, parallel[N_THREADS] = {0};
    for (int i = 0; i < N_THREADS; i++) {
        sequential[i].prompt = parallel[i].prompt = prompts[i];
        generate_tokens(&sequential[i]);
        CHECK_STATUS(sequential[i].status, RF_OK);
    }
    pthread_t threads[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) pthread_create(&threads[i], NULL, generate_tokens, &parallel[i]);
    for (int i = 0; i < N_THREADS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        CHECK_STATUS(parallel[i].status, RF_OK);
        CHECK(memcmp(sequential[i].tokens, parallel[i].tokens, sizeof parallel[i].tokens) == 0);
    }

    shared_ctx s = {NULL, NULL, RF_OK};
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    CHECK_STATUS(rf_context_new(model, NULL, &s.ctx), RF_OK);
    CHECK_STATUS(rf_sampler_new(&sp, &s.sampler), RF_OK);
    pthread_t a, b;
    pthread_create(&a, NULL, thread_a, &s);
    pthread_create(&b, NULL, thread_b, &s);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK_STATUS(b_status, RF_ERR_BUSY);
    CHECK_STATUS(s.status, RF_OK);
    /* Free again, the context works. */
    int32_t token = 504;
    rf_batch one = {1, &token, NULL, NULL, NULL};
    CHECK_STATUS(rf_decode(s.ctx, &one), RF_OK);

    rf_sampler_free(s.sampler);
    rf_context_free(s.ctx);
    rf_model_free(model);
    return check_report("test_threads");
}
