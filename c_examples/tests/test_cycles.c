/* 200 cycles of load, context, a short greedy generation and free: the host's resident
 * memory after the last cycle is within 1 MiB of where it was after the fiftieth (the
 * warm-up), and every cycle generates the same text. (glibc's malloc settles over the
 * first few dozen cycles, giving the pool's threads arenas of their own: 1.3 MiB from the
 * tenth cycle to the two hundredth and no more by the six hundredth; 64 KiB over 590
 * cycles with MALLOC_ARENA_MAX=1.)
 *
 *   test_cycles MODEL.gguf   (RSS_UNCHECKED=1 under a sanitizer or valgrind, whose own
 *                             bookkeeping grows the process: the figure is still printed;
 *                             TEST_CYCLES=N runs N cycles instead, for valgrind)
 */
#include <unistd.h>

#include "check.h"

#define CYCLES 200
#define WARM_UP 50


/* Resident bytes, from /proc/self/statm. */
static long resident_bytes(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    int read = fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    fclose(f);
    return read == 2 ? pages_resident * sysconf(_SC_PAGESIZE) : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    const char *env = getenv("TEST_CYCLES");
    const int cycles = env ? atoi(env) : CYCLES;
    const int warm_up = cycles < 2 * WARM_UP ? cycles / 2 : WARM_UP;
    collected_text first = {.len = 0};
    long after_warm_up = 0;
    for (int cycle = 0; cycle < cycles; cycle++) {
        rf_model *model = load_model_or_exit(argv[1]);
        rf_context *ctx = NULL;
        rf_sampler *sampler = NULL;
        rf_context_params cp = rf_context_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 1;
        rf_sampler_params sp = rf_sampler_default_params();
        sp.temperature = 0.0f;
        CHECK_STATUS(rf_context_new(model, &cp, &ctx), RF_OK);
        CHECK_STATUS(rf_sampler_new(&sp, &sampler), RF_OK);
        rf_generate_params gp = rf_generate_default_params();
        gp.max_tokens = 4;
        collected_text out = {.len = 0};
        const char *prompt = "The sky is";
        CHECK_STATUS(rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, collect_text, &out),
                     RF_OK);
        if (cycle == 0) {
            first = out;
            CHECK(first.len > 0);
        } else {
            CHECK(same_text(&out, &first));
        }
        rf_sampler_free(sampler);
        rf_context_free(ctx);
        rf_model_free(model);
        if (cycle + 1 == warm_up) after_warm_up = resident_bytes();
        if (check_failures) break;
    }
    const long at_end = resident_bytes();
    const long growth = at_end - after_warm_up;
    printf("test_cycles: %d load/generate/free cycles: resident %.1f MiB after %d, %.1f MiB "
           "after %d, growth %ld KiB\n",
           cycles, (double)after_warm_up / (1 << 20), warm_up, (double)at_end / (1 << 20),
           cycles, growth / 1024);
    CHECK(after_warm_up > 0 && at_end > 0);
    if (!getenv("RSS_UNCHECKED")) CHECK(growth < (1L << 20));
    return check_report("test_cycles");
}
