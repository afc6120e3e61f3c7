// rocmforge.hpp: a header-only C++17 RAII wrapper over the C ABI in rocmforge.h.
//
//   rf::Model model("model.gguf");
//   rf::Context ctx(model);
//   rf::Sampler sampler = rf::Sampler::greedy();
//   rf::generate(ctx, sampler, "The sky is", rf::GenerateParams{},
//                [](std::string_view text) { std::cout << text; return true; });
//
// Failures throw rf::Error, which carries the rf_status and rf_last_error()'s message.
// No exception ever crosses into the library: exceptions thrown by callbacks are caught
// at the C boundary and rethrown once the C call has returned.
//
// Thread safety is the C API's: a Model may be shared; a Context or Sampler is used by one
// thread at a time (Context::cancel() excepted).
#ifndef ROCMFORGE_HPP
#define ROCMFORGE_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rocmforge.h"

namespace rf {

// A failed rf_ call.
class Error : public std::runtime_error {
public:
    Error(rf_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    rf_status status() const noexcept { return status_; }
    const char *status_name() const noexcept { return rf_status_name(status_); }

private:
    rf_status status_;
};

namespace detail {

// Reads rf_last_error() first: it is only valid until the next failing call on this thread.
[[noreturn]] inline void fail(rf_status status, const char *call) {
    std::string message = rf_last_error();
    throw Error(status, std::string(call) + ": " + rf_status_name(status) + ": " + message);
}

inline void check(rf_status status, const char *call) {
    if (status != RF_OK) {
        fail(status, call);
    }
}

// The caller-buffer protocol: try with `out`'s current size; on RF_ERR_BUFFER_TOO_SMALL the
// library reports the size needed in *out_len, so grow and retry once more.
template <class Buffer, class Call>
Buffer read_buffer(Buffer out, Call &&call, const char *name) {
    for (;;) {
        size_t needed = 0;
        rf_status status = call(out.empty() ? nullptr : out.data(), out.size(), &needed);
        if (status == RF_OK) {
            out.resize(needed);
            return out;
        }
        // A needed size no larger than what we offered would loop forever: report it.
        if (status != RF_ERR_BUFFER_TOO_SMALL || needed <= out.size()) {
            fail(status, name);
        }
        out.resize(needed);
    }
}

struct ModelFree {
    void operator()(rf_model *p) const noexcept { rf_model_free(p); }
};
struct ContextFree {
    void operator()(rf_context *p) const noexcept { rf_context_free(p); }
};
struct SamplerFree {
    void operator()(rf_sampler *p) const noexcept { rf_sampler_free(p); }
};

} // namespace detail

// What Model::info() reports.
using ModelInfo = rf_model_description;

struct ChatMessage {
    std::string role; // "system", "user" or "assistant"
    std::string content;
};

// A loaded model: immutable, shareable across threads. Move-only.
class Model {
public:
    explicit Model(std::string_view path,
                   const rf_model_params &params = rf_model_default_params()) {
        rf_model *model = nullptr;
        detail::check(rf_model_load(path.data(), path.size(), &params, &model), "rf_model_load");
        model_.reset(model);
    }

    Model(Model &&) noexcept = default;
    Model &operator=(Model &&) noexcept = default;
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    // The C handle, for calls the wrapper does not cover. Null after a move.
    rf_model *get() const noexcept { return model_.get(); }

    // The string fields point into the model and live as long as it does.
    ModelInfo info() const {
        ModelInfo info{};
        info.struct_size = sizeof info;
        detail::check(rf_model_info(get(), &info), "rf_model_info");
        return info;
    }

    // A GGUF metadata value as text.
    std::string meta(std::string_view key) const {
        return detail::read_buffer(
            std::string(64, '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_model_meta(get(), key.data(), key.size(), buf, cap, len);
            },
            "rf_model_meta");
    }

    std::vector<int32_t> tokenize(std::string_view text, bool add_special = true,
                                  bool parse_special = false) const {
        // Rarely more than one token per 2 bytes; a miss costs one retry.
        return detail::read_buffer(
            std::vector<int32_t>(text.size() / 2 + 8),
            [&](int32_t *buf, size_t cap, size_t *len) {
                return rf_tokenize(get(), text.data(), text.size(), add_special, parse_special,
                                   buf, cap, len);
            },
            "rf_tokenize");
    }

    // May end inside a UTF-8 character when the tokens do.
    std::string detokenize(const std::vector<int32_t> &tokens,
                           bool render_special = false) const {
        return detail::read_buffer(
            std::string(tokens.size() * 4 + 16, '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_detokenize(get(), tokens.data(), tokens.size(), render_special, buf,
                                     cap, len);
            },
            "rf_detokenize");
    }

    // The raw bytes of one token (possibly part of a UTF-8 character).
    std::string token_to_piece(int32_t token, bool render_special = false) const {
        return detail::read_buffer(
            std::string(16, '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_token_to_piece(get(), token, render_special, buf, cap, len);
            },
            "rf_token_to_piece");
    }

    int32_t bos() const noexcept { return rf_token_bos(get()); } // -1: none
    int32_t eos() const noexcept { return rf_token_eos(get()); } // -1: none
    bool is_eog(int32_t token) const noexcept { return rf_token_is_eog(get(), token); }

    std::string apply_chat_template(const std::vector<ChatMessage> &messages,
                                    bool add_assistant = true) const {
        std::vector<rf_chat_message> c_messages;
        c_messages.reserve(messages.size());
        size_t total = 0;
        for (const ChatMessage &m : messages) {
            c_messages.push_back(
                {m.role.data(), m.role.size(), m.content.data(), m.content.size()});
            total += m.role.size() + m.content.size();
        }
        return detail::read_buffer(
            std::string(total + 64 * (messages.size() + 1), '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_chat_apply_template(get(), c_messages.data(), c_messages.size(),
                                              add_assistant, buf, cap, len);
            },
            "rf_chat_apply_template");
    }

private:
    std::unique_ptr<rf_model, detail::ModelFree> model_;
};

// The logits of one output row; valid until the next decode on (or the end of) its Context.
struct Logits {
    const float *data = nullptr;
    size_t size = 0;

    const float *begin() const noexcept { return data; }
    const float *end() const noexcept { return data + size; }
    float operator[](size_t i) const noexcept { return data[i]; }
};

// A KV cache and working memory for one or more sequences. Move-only. It keeps its model
// alive, so it may outlive the Model object it was made from.
class Context {
public:
    explicit Context(const Model &model,
                     const rf_context_params &params = rf_context_default_params()) {
        rf_context *ctx = nullptr;
        detail::check(rf_context_new(model.get(), &params, &ctx), "rf_context_new");
        ctx_.reset(ctx);
    }

    Context(Context &&) noexcept = default;
    Context &operator=(Context &&) noexcept = default;
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    rf_context *get() const noexcept { return ctx_.get(); }

    // The full rf_batch: several sequences, explicit positions, chosen logits rows.
    void decode_batch(const rf_batch &batch) {
        detail::check(rf_decode(get(), &batch), "rf_decode");
    }

    // Appends `tokens` to sequence `seq`, with logits for the last one.
    void decode(const std::vector<int32_t> &tokens, int32_t seq = 0) {
        std::vector<int32_t> seq_ids(tokens.size(), seq);
        rf_batch batch{};
        batch.n_tokens = tokens.size();
        batch.tokens = tokens.data();
        batch.seq_ids = seq_ids.data();
        decode_batch(batch);
    }

    // The `output_index`-th row of logits of the last decode (-1: the last row).
    Logits logits(int32_t output_index = -1) {
        Logits out;
        detail::check(rf_get_logits(get(), output_index, &out.data, &out.size), "rf_get_logits");
        return out;
    }

    // Positions p0 .. p1 (p1 < 0: to the end).
    void seq_remove(int32_t seq, int32_t p0 = 0, int32_t p1 = -1) {
        detail::check(rf_seq_remove(get(), seq, p0, p1), "rf_seq_remove");
    }

    void seq_copy(int32_t src, int32_t dst, int32_t p0 = 0, int32_t p1 = -1) {
        detail::check(rf_seq_copy(get(), src, dst, p0, p1), "rf_seq_copy");
    }

    // -1 when the sequence is empty.
    int32_t seq_pos_max(int32_t seq) const {
        int32_t pos = -1;
        detail::check(rf_seq_pos_max(get(), seq, &pos), "rf_seq_pos_max");
        return pos;
    }

    rf_memory_report memory() const {
        rf_memory_report report{};
        report.struct_size = sizeof report;
        detail::check(rf_context_memory(get(), &report), "rf_context_memory");
        return report;
    }

    // Stops the running (or next) call with RF_ERR_CANCELLED. Safe from any thread; the
    // only failure is a moved-from Context, for which there is nothing to cancel.
    void cancel() const noexcept { rf_context_cancel(get()); }

private:
    std::unique_ptr<rf_context, detail::ContextFree> ctx_;
};

// Picks tokens from logits. Move-only.
class Sampler {
public:
    explicit Sampler(const rf_sampler_params &params = rf_sampler_default_params()) {
        rf_sampler *sampler = nullptr;
        detail::check(rf_sampler_new(&params, &sampler), "rf_sampler_new");
        sampler_.reset(sampler);
    }

    static Sampler greedy() {
        rf_sampler_params params = rf_sampler_default_params();
        params.temperature = 0.0f;
        return Sampler(params);
    }

    Sampler(Sampler &&) noexcept = default;
    Sampler &operator=(Sampler &&) noexcept = default;
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;

    rf_sampler *get() const noexcept { return sampler_.get(); }

    int32_t sample(Context &ctx, int32_t output_index = -1) {
        int32_t token = -1;
        detail::check(rf_sampler_sample(get(), ctx.get(), output_index, &token),
                      "rf_sampler_sample");
        return token;
    }

    void reset() { detail::check(rf_sampler_reset(get()), "rf_sampler_reset"); }

private:
    std::unique_ptr<rf_sampler, detail::SamplerFree> sampler_;
};

// rf_generate_params with owned stop strings; defaults are the library's.
struct GenerateParams {
    uint32_t max_tokens;
    std::vector<std::string> stop; // generation stops before the first of these
    int32_t seq_id;
    bool add_special;
    bool parse_special;

    GenerateParams() {
        const rf_generate_params d = rf_generate_default_params();
        max_tokens = d.max_tokens;
        seq_id = d.seq_id;
        add_special = d.add_special;
        parse_special = d.parse_special;
    }
};

namespace detail {

template <class F>
struct GenerateState {
    F *on_text;
    std::exception_ptr error;
};

// The rf_text_callback: must not let an exception unwind through the library's frames, so
// it parks the exception, stops generation, and generate() rethrows it afterwards.
template <class F>
bool text_trampoline(const char *text, size_t len, void *user_data) noexcept {
    auto *state = static_cast<GenerateState<F> *>(user_data);
    try {
        return static_cast<bool>((*state->on_text)(std::string_view(text, len)));
    } catch (...) {
        state->error = std::current_exception();
        return false;
    }
}

} // namespace detail

// Continues `prompt` on sequence params.seq_id, passing whole UTF-8 characters to
// `on_text(std::string_view) -> bool` (false stops, without an error). Throws rf::Error, or
// rethrows whatever `on_text` threw.
template <class F>
void generate(Context &ctx, Sampler &sampler, std::string_view prompt,
              const GenerateParams &params, F &&on_text) {
    using Fn = std::remove_reference_t<F>;
    std::vector<rf_string> stop;
    stop.reserve(params.stop.size());
    for (const std::string &s : params.stop) {
        stop.push_back({s.data(), s.size()});
    }
    rf_generate_params p = rf_generate_default_params();
    p.max_tokens = params.max_tokens;
    p.stop = stop.data();
    p.n_stop = stop.size();
    p.seq_id = params.seq_id;
    p.add_special = params.add_special;
    p.parse_special = params.parse_special;

    detail::GenerateState<Fn> state{&on_text, nullptr};
    rf_status status = rf_generate(ctx.get(), sampler.get(), prompt.data(), prompt.size(), &p,
                                   &detail::text_trampoline<Fn>, &state);
    if (state.error) {
        std::rethrow_exception(state.error);
    }
    detail::check(status, "rf_generate");
}

// generate() collecting the text.
inline std::string generate(Context &ctx, Sampler &sampler, std::string_view prompt,
                            const GenerateParams &params = GenerateParams()) {
    std::string out;
    generate(ctx, sampler, prompt, params, [&out](std::string_view text) {
        out.append(text);
        return true;
    });
    return out;
}

} // namespace rf

#endif // ROCMFORGE_HPP
