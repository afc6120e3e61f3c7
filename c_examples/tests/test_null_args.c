/* Every exported function with NULL in each pointer argument gets the documented
 * status (RF_ERR_INVALID_ARGUMENT), never a crash; *_free(NULL) is harmless; and
 * rf_last_error() is never NULL. */
#include "check.h"

#define NULL_ARG(call) CHECK_STATUS(call, RF_ERR_INVALID_ARGUMENT)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    CHECK(rf_last_error() != NULL);
    rf_model *model = load_model_or_exit(argv[1]);
    rf_context *ctx = NULL;
    rf_sampler *sampler = NULL;
    CHECK_STATUS(rf_context_new(model, NULL, &ctx), RF_OK);
    CHECK_STATUS(rf_sampler_new(NULL, &sampler), RF_OK);

    size_t n = 0, len = 0;
    int32_t token = 0, tokens[8] = {1, 2, 3};
    char buf[64];
    const float *logits = NULL;
    rf_model *no_model = NULL;
    rf_context *no_ctx = NULL;
    rf_sampler *no_sampler = NULL;

    /* library and devices */
    NULL_ARG(rf_device_count(NULL));
    NULL_ARG(rf_device_info(0, NULL));
    CHECK(rf_version() != NULL && rf_abi_version() == RF_ABI_VERSION);
    CHECK(strcmp(rf_status_name(RF_ERR_BUSY), "RF_ERR_BUSY") == 0);
    CHECK(rf_status_name(12345) != NULL);

    /* models */
    NULL_ARG(rf_model_load(NULL, 4, NULL, &no_model));
    NULL_ARG(rf_model_load("x", 1, NULL, NULL));
    NULL_ARG(rf_model_load_from_memory(NULL, 16, NULL, &no_model));
    NULL_ARG(rf_model_load_from_memory("GGUF", 4, NULL, NULL));
    CHECK(no_model == NULL);
    rf_model_description info = {sizeof info, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    NULL_ARG(rf_model_info(NULL, &info));
    NULL_ARG(rf_model_info(model, NULL));
    NULL_ARG(rf_model_meta(NULL, "general.name", 12, buf, sizeof buf, &len));
    NULL_ARG(rf_model_meta(model, NULL, 12, buf, sizeof buf, &len));
    NULL_ARG(rf_model_meta(model, "general.name", 12, NULL, sizeof buf, &len));
    NULL_ARG(rf_model_meta(model, "general.name", 12, buf, sizeof buf, NULL));

    /* tokens */
    NULL_ARG(rf_tokenize(NULL, "hi", 2, true, true, tokens, 8, &n));
    NULL_ARG(rf_tokenize(model, NULL, 2, true, true, tokens, 8, &n));
    NULL_ARG(rf_tokenize(model, "hi", 2, true, true, NULL, 8, &n));
    NULL_ARG(rf_tokenize(model, "hi", 2, true, true, tokens, 8, NULL));
    CHECK(strstr(rf_last_error(), "n_tokens") != NULL); /* named as in the header */
    NULL_ARG(rf_tokenize(model, "hi", 2, true, true, NULL, 8, &n));
    CHECK(strstr(rf_last_error(), "tokens") != NULL && strstr(rf_last_error(), "buf") == NULL);
    NULL_ARG(rf_token_to_piece(NULL, 1, false, buf, sizeof buf, &len));
    NULL_ARG(rf_token_to_piece(model, 504, false, NULL, sizeof buf, &len));
    NULL_ARG(rf_token_to_piece(model, 504, false, buf, sizeof buf, NULL));
    NULL_ARG(rf_detokenize(NULL, tokens, 3, false, buf, sizeof buf, &len));
    NULL_ARG(rf_detokenize(model, NULL, 3, false, buf, sizeof buf, &len));
    NULL_ARG(rf_detokenize(model, tokens, 3, false, NULL, sizeof buf, &len));
    NULL_ARG(rf_detokenize(model, tokens, 3, false, buf, sizeof buf, NULL));
    CHECK(rf_token_bos(NULL) == -1);
    CHECK(rf_token_eos(NULL) == -1);
    CHECK(!rf_token_is_eog(NULL, 2));
    rf_chat_message msg = {"user", 4, "hi", 2};
    rf_chat_message bad_msg = {NULL, 4, "hi", 2};
    NULL_ARG(rf_chat_apply_template(NULL, &msg, 1, true, buf, sizeof buf, &len));
    NULL_ARG(rf_chat_apply_template(model, NULL, 1, true, buf, sizeof buf, &len));
    NULL_ARG(rf_chat_apply_template(model, &bad_msg, 1, true, buf, sizeof buf, &len));
    NULL_ARG(rf_chat_apply_template(model, &msg, 1, true, NULL, sizeof buf, &len));
    NULL_ARG(rf_chat_apply_template(model, &msg, 1, true, buf, sizeof buf, NULL));

    /* contexts */
    NULL_ARG(rf_context_new(NULL, NULL, &no_ctx));
    NULL_ARG(rf_context_new(model, NULL, NULL));
    CHECK(no_ctx == NULL);
    rf_batch batch = {1, tokens, NULL, NULL, NULL};
    rf_batch null_tokens = {1, NULL, NULL, NULL, NULL};
    NULL_ARG(rf_decode(NULL, &batch));
    NULL_ARG(rf_decode(ctx, NULL));
    NULL_ARG(rf_decode(ctx, &null_tokens));
    CHECK_STATUS(rf_decode(ctx, &batch), RF_OK);
    NULL_ARG(rf_get_logits(NULL, -1, &logits, &n));
    NULL_ARG(rf_get_logits(ctx, -1, NULL, &n));
    NULL_ARG(rf_get_logits(ctx, -1, &logits, NULL));
    NULL_ARG(rf_seq_remove(NULL, 0, 0, -1));
    NULL_ARG(rf_seq_copy(NULL, 0, 0, 0, -1));
    NULL_ARG(rf_seq_shift(NULL, 0, 0, -1, -1));
    float embedding[4096];
    size_t n_embd = 0;
    NULL_ARG(rf_get_embeddings(NULL, -1, RF_POOLING_NONE, false, embedding, 4096, &n_embd));
    NULL_ARG(rf_get_embeddings(ctx, -1, RF_POOLING_NONE, false, embedding, 4096, NULL));
    NULL_ARG(rf_get_embeddings(ctx, -1, RF_POOLING_NONE, false, NULL, 4096, &n_embd));
    NULL_ARG(rf_get_embeddings(ctx, 0, 7, false, embedding, 4096, &n_embd));
    CHECK_STATUS(rf_get_embeddings(ctx, -1, RF_POOLING_NONE, true, embedding, 1, &n_embd),
                 RF_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(rf_get_embeddings(ctx, 0, RF_POOLING_LAST, true, embedding, 4096, &n_embd), RF_OK);
    CHECK(n_embd > 1 && n_embd <= 4096);
    rf_memory_estimate estimate = {sizeof estimate, 0, 0, 0, 0, 0};
    NULL_ARG(rf_model_estimate(NULL, 4, NULL, NULL, &estimate));
    NULL_ARG(rf_model_estimate(argv[1], strlen(argv[1]), NULL, NULL, NULL));
    size_t state_len = 0;
    NULL_ARG(rf_state_seq_size(NULL, 0, &state_len));
    NULL_ARG(rf_state_seq_size(ctx, 0, NULL));
    NULL_ARG(rf_state_seq_save(NULL, 0, NULL, 0, &state_len));
    NULL_ARG(rf_state_seq_save(ctx, 0, NULL, 4, &state_len));
    NULL_ARG(rf_state_seq_load(NULL, 0, (const uint8_t *)buf, 4));
    NULL_ARG(rf_state_seq_load(ctx, 0, NULL, 4));
    NULL_ARG(rf_state_seq_save_file(ctx, 0, NULL, 4));
    NULL_ARG(rf_state_seq_load_file(ctx, 0, NULL, 4));
    int32_t pos = 0;
    NULL_ARG(rf_seq_pos_max(NULL, 0, &pos));
    NULL_ARG(rf_seq_pos_max(ctx, 0, NULL));
    rf_memory_report mem = {sizeof mem, 0, 0, 0, 0, 0, 0};
    NULL_ARG(rf_context_memory(NULL, &mem));
    NULL_ARG(rf_context_memory(ctx, NULL));
    NULL_ARG(rf_context_cancel(NULL));

    /* sampling */
    NULL_ARG(rf_sampler_new(NULL, NULL));
    NULL_ARG(rf_sampler_sample(NULL, ctx, -1, &token));
    NULL_ARG(rf_sampler_sample(sampler, NULL, -1, &token));
    NULL_ARG(rf_sampler_sample(sampler, ctx, -1, NULL));
    NULL_ARG(rf_sampler_reset(NULL));
    CHECK(no_sampler == NULL);

    /* generate */
    NULL_ARG(rf_generate(NULL, sampler, "a", 1, NULL, NULL, NULL));
    NULL_ARG(rf_generate(ctx, NULL, "a", 1, NULL, NULL, NULL));
    NULL_ARG(rf_generate(ctx, sampler, NULL, 1, NULL, NULL, NULL));
    NULL_ARG(rf_generate(ctx, sampler, "a", 1, NULL, NULL, NULL));

    /* the buffer protocol: too small reports the size needed */
    CHECK_STATUS(rf_tokenize(model, "The three primary colors are", 28, false, false, tokens, 1, &n),
                 RF_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 5);
    CHECK_STATUS(rf_tokenize(model, "", 0, false, false, NULL, 0, &n), RF_OK);
    CHECK(n == 0);
    CHECK(strlen(rf_last_error()) > 0);

    /* frees accept NULL */
    rf_model_free(NULL);
    rf_context_free(NULL);
    rf_sampler_free(NULL);

    rf_sampler_free(sampler);
    rf_context_free(ctx);
    rf_model_free(model);
    return check_report("test_null_args");
}
