// test_hpp: include/rocmforge.hpp against SmolLM2 and llama.cpp's greedy tokens, built
// twice: with exceptions (the try_ API and the throwing API layered on it) and with
// -fno-exceptions (the try_ API alone, the throwing API absent).
//
//   test_hpp MODEL.gguf
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rocmforge.hpp"

namespace {

int failures = 0;

void check(bool ok, const char *what, int line) {
    if (!ok) {
        std::fprintf(stderr, "test_hpp.cpp:%d: CHECK failed: %s\n", line, what);
        failures++;
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// From llama.cpp (tests/expected_simple.txt's prompt): the prompt's ids and the first 8
// greedy ids that follow.
const std::string kPrompt = "The three primary colors are";
const std::vector<int32_t> kPromptIds = {504, 1296, 3003, 4683, 359};
const std::vector<int32_t> kGreedyIds = {260, 3003, 4683, 282, 260, 35526, 2380, 1743};

// Whether `T` has a member meta(std::string_view): the throwing API.
template <class T, class = void>
struct has_throwing_meta : std::false_type {};
template <class T>
struct has_throwing_meta<T, std::void_t<decltype(std::declval<const T &>().meta(""))>>
    : std::true_type {};

static_assert(has_throwing_meta<rf::Model>::value == (ROCMFORGE_EXCEPTIONS == 1),
              "the throwing API exists exactly when exceptions are on");

void failures_carry_status_and_message() {
    rf::Result<rf::Model> missing = rf::Model::try_load("/nonexistent/model.gguf");
    CHECK(!missing.ok());
    CHECK(missing.status().code() == RF_ERR_IO);
    CHECK(std::string_view(missing.status().name()) == "RF_ERR_IO");
    CHECK(missing.status().message().rfind("rf_model_load: RF_ERR_IO: ", 0) == 0);
    CHECK(missing.status().message().find("/nonexistent/model.gguf") != std::string::npos);
}

void model_calls(const rf::Model &model) {
    rf::Result<rf::ModelInfo> info = model.try_info();
    CHECK(info.ok() && info->n_vocab == 49152 && std::string_view(info->architecture) == "llama");

    rf::Result<std::vector<int32_t>> ids = model.try_tokenize(kPrompt);
    CHECK(ids.ok() && *ids == kPromptIds);
    rf::Result<std::string> piece = model.try_token_to_piece(kPromptIds[1]);
    CHECK(piece.ok() && *piece == " three");
    rf::Result<std::string> text = model.try_detokenize(kPromptIds);
    CHECK(text.ok() && *text == kPrompt);

    rf::Result<std::string> absent = model.try_meta("no.such.key");
    CHECK(absent.status().code() == RF_ERR_INVALID_ARGUMENT);
    CHECK(std::move(absent).value_or("fallback") == "fallback");
}

// One decode and one sampling step, then generation, agree with llama.cpp.
void decode_sample_generate(const rf::Model &model) {
    rf::Result<rf::Context> ctx = rf::Context::try_create(model);
    rf::Result<rf::Sampler> sampler = rf::Sampler::try_greedy();
    CHECK(ctx.ok() && sampler.ok());
    if (!ctx || !sampler) return;

    CHECK(ctx->try_decode(kPromptIds).ok());
    rf::Result<int32_t> token = sampler->try_sample(*ctx);
    CHECK(token.ok() && *token == kGreedyIds[0]);
    CHECK(ctx->try_logits(-2).status().code() == RF_ERR_INVALID_ARGUMENT);
    CHECK(ctx->try_seq_remove(0).ok());
    CHECK(ctx->try_seq_pos_max(0).ok() && *ctx->try_seq_pos_max(0) == -1);

    rf::GenerateParams params;
    params.max_tokens = static_cast<uint32_t>(kGreedyIds.size());
    rf::Result<std::string> generated = rf::try_generate(*ctx, *sampler, kPrompt, params);
    rf::Result<std::string> expected = model.try_detokenize(kGreedyIds);
    CHECK(generated.ok() && expected.ok() && *generated == *expected);
}

// A regular expression holds the output to its language; an invalid one is refused with
// llguidance's message.
void grammar_sampler(const rf::Model &model) {
    rf::Result<rf::Context> ctx = rf::Context::try_create(model);
    rf::Result<rf::Sampler> sampler = rf::Sampler::try_constrained(RF_GRAMMAR_REGEX, "[0-9]{4}");
    CHECK(ctx.ok() && sampler.ok());
    if (!ctx || !sampler) return;
    rf::GenerateParams params;
    params.max_tokens = 16;
    rf::Result<std::string> generated = rf::try_generate(*ctx, *sampler, kPrompt, params);
    CHECK(generated.ok() && generated->size() == 4 &&
          generated->find_first_not_of("0123456789") == std::string::npos);

    rf::Result<rf::Sampler> invalid = rf::Sampler::try_constrained(RF_GRAMMAR_REGEX, "[0-9");
    CHECK(invalid.status().code() == RF_ERR_INVALID_ARGUMENT &&
          invalid.status().message().find("regular expression") != std::string::npos);
}

// A saved state restored into a fresh context samples the same next token; a shift after
// dropping the first tokens keeps the rest, moved down.
void state_and_shift(const rf::Model &model) {
    rf::Result<rf::Context> original = rf::Context::try_create(model);
    rf::Result<rf::Context> restored = rf::Context::try_create(model);
    rf::Result<rf::Sampler> sampler = rf::Sampler::try_greedy();
    CHECK(original.ok() && restored.ok() && sampler.ok());
    if (!original || !restored || !sampler) return;

    CHECK(original->try_decode(kPromptIds).ok());
    rf::Result<std::vector<uint8_t>> blob = original->try_state_save(0);
    CHECK(blob.ok());
    if (!blob) return;
    CHECK(restored->try_state_load(0, *blob).ok());
    rf::Result<int32_t> token = sampler->try_sample(*restored);
    CHECK(token.ok() && *token == kGreedyIds[0]);
    std::vector<uint8_t> truncated(blob->begin(), blob->end() - 1);
    CHECK(restored->try_state_load(0, truncated).code() == RF_ERR_INVALID_ARGUMENT);

    const int32_t last = static_cast<int32_t>(kPromptIds.size()) - 1;
    CHECK(original->try_seq_remove(0, 0, 2).ok());
    CHECK(original->try_seq_shift(0, 2, -1, -2).ok());
    CHECK(original->try_seq_pos_max(0).ok() && *original->try_seq_pos_max(0) == last - 2);
    CHECK(original->try_seq_shift(0, 0, -1, -1).code() == RF_ERR_INVALID_ARGUMENT);
}

// Embeddings of the decoded prompt, and the estimate for a CPU context.
void embeddings_and_estimate(const rf::Model &model, const char *path) {
    rf::Result<rf::Context> ctx = rf::Context::try_create(model);
    CHECK(ctx.ok());
    if (!ctx) return;
    CHECK(ctx->try_decode(kPromptIds).ok());
    rf::Result<std::vector<float>> last = ctx->try_embeddings(0, RF_POOLING_LAST, true);
    CHECK(last.ok() && last->size() == 576);
    rf::Result<std::vector<float>> row = ctx->try_embeddings(-1, RF_POOLING_NONE, true);
    CHECK(row.ok() && last.ok() && *row == *last);
    CHECK(ctx->try_embeddings(0, RF_POOLING_MEAN).status().code() == RF_ERR_INVALID_ARGUMENT);

    rf_model_params cpu = rf_model_default_params();
    cpu.device = RF_DEVICE_CPU;
    rf::Result<rf_memory_estimate> estimate = rf::try_estimate(path, cpu);
    CHECK(estimate.ok() && estimate->device == 0 && estimate->device_bytes == 0 &&
          estimate->host_bytes > estimate->kv_bytes && estimate->weights_bytes > 0);
}

#if ROCMFORGE_EXCEPTIONS
struct Stop {};

// The throwing layer reports the same failures, and a callback's exception comes back out
// of generate() with the context still usable.
void throwing_layer(const rf::Model &model) {
    bool threw = false;
    try {
        rf::Model missing("/nonexistent/model.gguf");
    } catch (const rf::Error &e) {
        threw = e.status() == RF_ERR_IO &&
                std::string_view(e.what()).rfind("rf_model_load: RF_ERR_IO: ", 0) == 0;
    }
    CHECK(threw);

    CHECK(model.tokenize(kPrompt) == kPromptIds);
    rf::Context ctx(model);
    rf::Sampler sampler = rf::Sampler::greedy();
    threw = false;
    try {
        rf::generate(ctx, sampler, kPrompt, rf::GenerateParams{},
                     [](std::string_view) -> bool { throw Stop{}; });
    } catch (const Stop &) {
        threw = true;
    }
    CHECK(threw);

    ctx.seq_remove(0);
    rf::GenerateParams params;
    params.max_tokens = static_cast<uint32_t>(kGreedyIds.size());
    CHECK(rf::generate(ctx, sampler, kPrompt, params) == model.detokenize(kGreedyIds));

    threw = false;
    try {
        ctx.logits(-2);
    } catch (const rf::Error &e) {
        threw = e.status() == RF_ERR_INVALID_ARGUMENT;
    }
    CHECK(threw);
}
#endif

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    failures_carry_status_and_message();
    rf::Result<rf::Model> model = rf::Model::try_load(argv[1]);
    CHECK(model.ok());
    if (!model) {
        std::fprintf(stderr, "%s\n", model.status().message().c_str());
        return 1;
    }
    model_calls(*model);
    decode_sample_generate(*model);
    grammar_sampler(*model);
    state_and_shift(*model);
    embeddings_and_estimate(*model, argv[1]);
#if ROCMFORGE_EXCEPTIONS
    throwing_layer(*model);
#endif
    if (failures > 0) {
        std::fprintf(stderr, "test_hpp: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("test_hpp (%s): ok\n",
                ROCMFORGE_EXCEPTIONS ? "exceptions" : "-fno-exceptions");
    return 0;
}
