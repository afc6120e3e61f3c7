/* Stress: M models x N contexts each, worked by T threads for a bounded time while another
 * thread cancels random contexts at random moments. Every generation that completes gives
 * the tokens of a sequential run, every other one is RF_ERR_CANCELLED, nothing deadlocks
 * (an alarm fails the test), and afterwards every context generates normally.
 *
 *   test_stress MODEL.gguf     (STRESS_SECONDS, default 6: the time under load)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define M_MODELS 2
#define N_CONTEXTS 3
#define T_THREADS 4
#define N_PROMPTS 3
#define N_GEN 8

static const char *prompts[N_PROMPTS] = {
    "The three primary colors are",
    "Once upon a time, there was",
    "def add(a, b):",
};


static rf_context *contexts[M_MODELS * N_CONTEXTS];
static atomic_int busy[M_MODELS * N_CONTEXTS];
static collected_text expected[N_PROMPTS];
static double deadline;
static atomic_long generations, cancelled, mismatches, failures;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Greedy N_GEN tokens of `prompt` on an emptied sequence 0 of `ctx`. */
static rf_status generate(rf_context *ctx, rf_sampler *sampler, int prompt, collected_text *out) {
    out->len = 0;
    rf_status s = rf_seq_remove(ctx, 0, 0, -1);
    if (s != RF_OK) return s;
    rf_generate_params gp = rf_generate_default_params();
    gp.max_tokens = N_GEN;
    return rf_generate(ctx, sampler, prompts[prompt], strlen(prompts[prompt]), &gp,
                       collect_text, out);
}

static void *worker(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    rf_sampler *sampler = NULL;
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    if (rf_sampler_new(&sp, &sampler) != RF_OK) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    collected_text out;
    while (now() < deadline) {
        int c = (int)(rand_r(&seed) % (M_MODELS * N_CONTEXTS));
        int free_flag = 0;
        if (!atomic_compare_exchange_strong(&busy[c], &free_flag, 1)) continue;
        int p = (int)(rand_r(&seed) % N_PROMPTS);
        rf_status s = generate(contexts[c], sampler, p, &out);
        atomic_store(&busy[c], 0);
        rf_sampler_reset(sampler);
        if (s == RF_OK) {
            atomic_fetch_add(&generations, 1);
            if (!same_text(&out, &expected[p])) atomic_fetch_add(&mismatches, 1);
        } else if (s == RF_ERR_CANCELLED) {
            atomic_fetch_add(&cancelled, 1);
        } else {
            fprintf(stderr, "worker: %s: %s\n", rf_status_name(s), rf_last_error());
            atomic_fetch_add(&failures, 1);
        }
    }
    rf_sampler_free(sampler);
    return NULL;
}

static void *canceller(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (now() < deadline) {
        usleep(rand_r(&seed) % 200000);
        rf_context_cancel(contexts[rand_r(&seed) % (M_MODELS * N_CONTEXTS)]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    const char *env = getenv("STRESS_SECONDS");
    const double seconds = env ? atof(env) : 6.0;
    /* A deadlock fails the test: the process dies on SIGALRM. */
    alarm((unsigned)seconds + 300);

    rf_model *models[M_MODELS];
    for (int m = 0; m < M_MODELS; m++) models[m] = load_model_or_exit(argv[1]);
    rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 1;
    for (int i = 0; i < M_MODELS * N_CONTEXTS; i++) {
        CHECK_STATUS(rf_context_new(models[i / N_CONTEXTS], &cp, &contexts[i]), RF_OK);
        if (!contexts[i]) return check_report("test_stress");
    }
    rf_sampler *sampler = NULL;
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f;
    CHECK_STATUS(rf_sampler_new(&sp, &sampler), RF_OK);

    /* The sequential reference, and every context agreeing with it before the load. */
    for (int p = 0; p < N_PROMPTS; p++) {
        CHECK_STATUS(generate(contexts[0], sampler, p, &expected[p]), RF_OK);
        rf_sampler_reset(sampler);
        CHECK(expected[p].len > 0);
    }

    deadline = now() + seconds;
    pthread_t threads[T_THREADS + 1];
    for (int t = 0; t < T_THREADS; t++) {
        pthread_create(&threads[t], NULL, worker, (void *)(uintptr_t)(t + 1));
    }
    pthread_create(&threads[T_THREADS], NULL, canceller, (void *)(uintptr_t)99);
    for (int t = 0; t <= T_THREADS; t++) pthread_join(threads[t], NULL);

    /* Every context, cancelled or not, still generates what a fresh one does. */
    collected_text out;
    for (int i = 0; i < M_MODELS * N_CONTEXTS; i++) {
        for (int p = 0; p < N_PROMPTS; p++) {
            CHECK_STATUS(generate(contexts[i], sampler, p, &out), RF_OK);
            rf_sampler_reset(sampler);
            CHECK(same_text(&out, &expected[p]));
        }
    }
    printf("test_stress: %d models x %d contexts x %d threads for %.0f s: %ld generations "
           "equal to the sequential run, %ld cancelled, %ld mismatched, %ld failed\n",
           M_MODELS, N_CONTEXTS, T_THREADS, seconds, atomic_load(&generations),
           atomic_load(&cancelled), atomic_load(&mismatches), atomic_load(&failures));
    CHECK(atomic_load(&mismatches) == 0);
    CHECK(atomic_load(&failures) == 0);
    CHECK(atomic_load(&generations) > 0);

    rf_sampler_free(sampler);
    for (int i = 0; i < M_MODELS * N_CONTEXTS; i++) rf_context_free(contexts[i]);
    for (int m = 0; m < M_MODELS; m++) rf_model_free(models[m]);
    return check_report("test_stress");
}
