/* simple: load a model, stream a greedy completion of a prompt to stdout.
 *
 *   simple MODEL.gguf "PROMPT" [MAX_TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocmforge.h"

static bool print_text(const char *text, size_t len, void *user_data) {
    (void)user_data;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what, rf_status status) {
    fprintf(stderr, "simple: %s: %s: %s\n", what, rf_status_name(status), rf_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    const char *prompt = argv[2];
    int max_tokens = argc > 3 ? atoi(argv[3]) : 64;

    rf_model *model = NULL;
    rf_context *ctx = NULL;
    rf_sampler *sampler = NULL;
    int rc = 1;
    rf_status s;

    rf_model_params mp = rf_model_default_params();
    if ((s = rf_model_load(path, strlen(path), &mp, &model)) != RF_OK) {
        rc = fail("loading the model", s);
        goto done;
    }
    rf_context_params cp = rf_context_default_params();
    if ((s = rf_context_new(model, &cp, &ctx)) != RF_OK) {
        rc = fail("creating a context", s);
        goto done;
    }
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.0f; /* greedy */
    if ((s = rf_sampler_new(&sp, &sampler)) != RF_OK) {
        rc = fail("creating a sampler", s);
        goto done;
    }
    rf_generate_params gp = rf_generate_default_params();
    gp.max_tokens = (uint32_t)(max_tokens > 0 ? max_tokens : 0);
    fputs(prompt, stdout);
    if ((s = rf_generate(ctx, sampler, prompt, strlen(prompt), &gp, print_text, NULL)) != RF_OK) {
        rc = fail("generating", s);
        goto done;
    }
    putchar('\n');
    rc = 0;
done:
    rf_sampler_free(sampler);
    rf_context_free(ctx);
    rf_model_free(model);
    return rc;
}
