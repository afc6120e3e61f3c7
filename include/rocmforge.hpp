// rocmforge.hpp: a header-only C++17 RAII wrapper over the C ABI in rocmforge.h, usable
// with exceptions on or off (-fno-exceptions).
//
// Every call that can fail has a try_ form that returns rf::Status or rf::Result<T> and
// never throws:
//
//   rf::Result<rf::Model> model = rf::Model::try_load("model.gguf");
//   if (!model) { std::fprintf(stderr, "%s\n", model.status().message().c_str()); return 1; }
//   rf::Result<rf::Context> ctx = rf::Context::try_create(*model);
//   rf::Result<rf::Sampler> sampler = rf::Sampler::try_greedy();
//   rf::Status done = rf::try_generate(*ctx, *sampler, "The sky is", rf::GenerateParams{},
//                                      [](std::string_view text) { ...; return true; });
//
// When exceptions are on, the same calls without try_ (constructors included) are layered
// on top: each throws rf::Error, which carries the rf_status and the message, on failure.
//
//   rf::Model model("model.gguf");
//   rf::Context ctx(model);
//   rf::Sampler sampler = rf::Sampler::greedy();
//   rf::generate(ctx, sampler, "The sky is", rf::GenerateParams{},
//                [](std::string_view text) { std::cout << text; return true; });
//
// No exception ever crosses into the library: an exception thrown by a callback is caught
// at the C boundary and rethrown once the C call has returned.
//
// Thread safety is the C API's: a Model may be shared; a Context or Sampler is used by one
// thread at a time (Context::cancel() excepted).
//
// Versions: a host that links librocmforge.so.N gets C ABI N (RF_ABI_VERSION,
// rf_abi_version()); see rocmforge.h.
#ifndef ROCMFORGE_HPP
#define ROCMFORGE_HPP

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rocmforge.h"

// 1 when the throwing API is available. Follows the compiler's setting (-fno-exceptions
// turns it off); define it to 0 first to use only the try_ API with exceptions on.
#ifndef ROCMFORGE_EXCEPTIONS
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define ROCMFORGE_EXCEPTIONS 1
#else
#define ROCMFORGE_EXCEPTIONS 0
#endif
#endif

#if ROCMFORGE_EXCEPTIONS
#include <exception>
#include <stdexcept>
#endif

namespace rf {

// The outcome of an rf_ call: RF_OK, or a failure's status and message.
class Status {
public:
    Status() noexcept = default; // RF_OK

    // Reads rf_last_error() now: it is only valid until the next failing call on this
    // thread.
    static Status from_call(rf_status code, const char *call) {
        Status status;
        status.code_ = code;
        if (code != RF_OK) {
            status.message_ = std::string(call) + ": " + rf_status_name(code) + ": " +
                              rf_last_error();
        }
        return status;
    }

    bool ok() const noexcept { return code_ == RF_OK; }
    rf_status code() const noexcept { return code_; }
    const char *name() const noexcept { return rf_status_name(code_); }
    // "rf_model_load: RF_ERR_IO: ..." (the call, the status and what failed); empty on RF_OK.
    const std::string &message() const noexcept { return message_; }

private:
    rf_status code_ = RF_OK;
    std::string message_;
};

#if ROCMFORGE_EXCEPTIONS
// A failed rf_ call, thrown by the API without try_.
class Error : public std::runtime_error {
public:
    explicit Error(const Status &status)
        : std::runtime_error(status.message()), status_(status.code()) {}
    Error(rf_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    rf_status status() const noexcept { return status_; }
    const char *status_name() const noexcept { return rf_status_name(status_); }

private:
    rf_status status_;
};
#endif

// A T, or the Status of the call that failed to make one (expected-style). Reading the
// value of a failed Result is a precondition violation (asserted), like std::optional's.
template <class T>
class Result {
public:
    // Implicit both ways, as for std::expected: `return value;` or `return status;`.
    Result(T value) : value_(std::move(value)) {}
    Result(Status failure) : status_(std::move(failure)) { assert(!status_.ok()); }

    bool ok() const noexcept { return value_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    // RF_OK when there is a value.
    const Status &status() const noexcept { return status_; }

    T &operator*() & noexcept {
        assert(ok());
        return *value_;
    }
    const T &operator*() const & noexcept {
        assert(ok());
        return *value_;
    }
    T &&operator*() && noexcept {
        assert(ok());
        return std::move(*value_);
    }
    T *operator->() noexcept { return &**this; }
    const T *operator->() const noexcept { return &**this; }

    template <class U>
    T value_or(U &&fallback) && {
        return ok() ? std::move(*value_) : static_cast<T>(std::forward<U>(fallback));
    }

#if ROCMFORGE_EXCEPTIONS
    // The value, or throws rf::Error with the failure.
    T &value() & {
        throw_if_failed();
        return *value_;
    }
    T &&value() && {
        throw_if_failed();
        return std::move(*value_);
    }
#endif

private:
#if ROCMFORGE_EXCEPTIONS
    void throw_if_failed() const {
        if (!ok()) {
            throw Error(status_);
        }
    }
#endif

    std::optional<T> value_;
    Status status_;
};

namespace detail {

inline Status call(rf_status code, const char *name) { return Status::from_call(code, name); }

#if ROCMFORGE_EXCEPTIONS
inline void throw_if_failed(const Status &status) {
    if (!status.ok()) {
        throw Error(status);
    }
}
#endif

// The caller-buffer protocol: try with `out`'s current size; on RF_ERR_BUFFER_TOO_SMALL the
// library reports the size needed in *out_len, so grow and retry once more.
template <class Buffer, class Call>
Result<Buffer> read_buffer(Buffer out, Call &&call, const char *name) {
    for (;;) {
        size_t needed = 0;
        rf_status code = call(out.empty() ? nullptr : out.data(), out.size(), &needed);
        if (code == RF_OK) {
            out.resize(needed);
            return out;
        }
        // A needed size no larger than what we offered would loop forever: report it.
        if (code != RF_ERR_BUFFER_TOO_SMALL || needed <= out.size()) {
            return Status::from_call(code, name);
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

namespace detail {

// The messages as the C API takes them (borrowing their strings).
inline std::vector<rf_chat_message> c_messages(const std::vector<ChatMessage> &messages) {
    std::vector<rf_chat_message> out;
    out.reserve(messages.size());
    for (const ChatMessage &m : messages) {
        out.push_back({m.role.data(), m.role.size(), m.content.data(), m.content.size()});
    }
    return out;
}

} // namespace detail

// A loaded model: immutable, shareable across threads. Move-only.
class Model {
public:
    static Result<Model> try_load(std::string_view path,
                                  const rf_model_params &params = rf_model_default_params()) {
        rf_model *model = nullptr;
        Status status =
            detail::call(rf_model_load(path.data(), path.size(), &params, &model), "rf_model_load");
        if (!status.ok()) {
            return status;
        }
        return Model(model);
    }

#if ROCMFORGE_EXCEPTIONS
    explicit Model(std::string_view path,
                   const rf_model_params &params = rf_model_default_params())
        : Model(try_load(path, params).value()) {}
#endif

    Model(Model &&) noexcept = default;
    Model &operator=(Model &&) noexcept = default;
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    // The C handle, for calls the wrapper does not cover. Null after a move.
    rf_model *get() const noexcept { return model_.get(); }

    // The string fields point into the model and live as long as it does.
    Result<ModelInfo> try_info() const {
        ModelInfo info{};
        info.struct_size = sizeof info;
        Status status = detail::call(rf_model_info(get(), &info), "rf_model_info");
        if (!status.ok()) {
            return status;
        }
        return info;
    }

    // A GGUF metadata value as text; RF_ERR_INVALID_ARGUMENT when the key is absent.
    Result<std::string> try_meta(std::string_view key) const {
        return detail::read_buffer(
            std::string(64, '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_model_meta(get(), key.data(), key.size(), buf, cap, len);
            },
            "rf_model_meta");
    }

    Result<std::vector<int32_t>> try_tokenize(std::string_view text, bool add_special = true,
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
    Result<std::string> try_detokenize(const std::vector<int32_t> &tokens,
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
    Result<std::string> try_token_to_piece(int32_t token, bool render_special = false) const {
        return detail::read_buffer(
            std::string(16, '\0'),
            [&](char *buf, size_t cap, size_t *len) {
                return rf_token_to_piece(get(), token, render_special, buf, cap, len);
            },
            "rf_token_to_piece");
    }

    // The conversation as prompt text. To feed it to the model, prefer
    // try_chat_tokenize() or try_generate_chat(): tokenizing this text with parse_special
    // reads control-token text typed into a message as markup.
    Result<std::string> try_apply_chat_template(const std::vector<ChatMessage> &messages,
                                                bool add_assistant = true) const {
        const std::vector<rf_chat_message> c_messages = detail::c_messages(messages);
        size_t total = 0;
        for (const ChatMessage &m : messages) {
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

    // The conversation as tokens: only the template's markup becomes control tokens, the
    // messages' content is always plain text (no prompt injection).
    Result<std::vector<int32_t>> try_chat_tokenize(const std::vector<ChatMessage> &messages,
                                                   bool add_assistant = true,
                                                   bool add_special = true) const {
        const std::vector<rf_chat_message> c_messages = detail::c_messages(messages);
        size_t total = 0;
        for (const ChatMessage &m : messages) {
            total += m.content.size();
        }
        return detail::read_buffer(
            std::vector<int32_t>(total / 2 + 16 * (messages.size() + 1)),
            [&](int32_t *buf, size_t cap, size_t *len) {
                return rf_chat_tokenize(get(), c_messages.data(), c_messages.size(),
                                        add_assistant, add_special, buf, cap, len);
            },
            "rf_chat_tokenize");
    }

    int32_t bos() const noexcept { return rf_token_bos(get()); } // -1: none
    int32_t eos() const noexcept { return rf_token_eos(get()); } // -1: none
    bool is_eog(int32_t token) const noexcept { return rf_token_is_eog(get(), token); }

#if ROCMFORGE_EXCEPTIONS
    ModelInfo info() const { return try_info().value(); }
    std::string meta(std::string_view key) const { return try_meta(key).value(); }
    std::vector<int32_t> tokenize(std::string_view text, bool add_special = true,
                                  bool parse_special = false) const {
        return try_tokenize(text, add_special, parse_special).value();
    }
    std::string detokenize(const std::vector<int32_t> &tokens,
                           bool render_special = false) const {
        return try_detokenize(tokens, render_special).value();
    }
    std::string token_to_piece(int32_t token, bool render_special = false) const {
        return try_token_to_piece(token, render_special).value();
    }
    std::string apply_chat_template(const std::vector<ChatMessage> &messages,
                                    bool add_assistant = true) const {
        return try_apply_chat_template(messages, add_assistant).value();
    }
    std::vector<int32_t> chat_tokenize(const std::vector<ChatMessage> &messages,
                                       bool add_assistant = true, bool add_special = true) const {
        return try_chat_tokenize(messages, add_assistant, add_special).value();
    }
#endif

private:
    explicit Model(rf_model *model) noexcept : model_(model) {}

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
    static Result<Context> try_create(
        const Model &model, const rf_context_params &params = rf_context_default_params()) {
        rf_context *ctx = nullptr;
        Status status =
            detail::call(rf_context_new(model.get(), &params, &ctx), "rf_context_new");
        if (!status.ok()) {
            return status;
        }
        return Context(ctx);
    }

#if ROCMFORGE_EXCEPTIONS
    explicit Context(const Model &model,
                     const rf_context_params &params = rf_context_default_params())
        : Context(try_create(model, params).value()) {}
#endif

    Context(Context &&) noexcept = default;
    Context &operator=(Context &&) noexcept = default;
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    rf_context *get() const noexcept { return ctx_.get(); }

    // The full rf_batch: several sequences, explicit positions, chosen logits rows.
    Status try_decode_batch(const rf_batch &batch) {
        return detail::call(rf_decode(get(), &batch), "rf_decode");
    }

    // Appends `tokens` to sequence `seq`, with logits for the last one.
    Status try_decode(const std::vector<int32_t> &tokens, int32_t seq = 0) {
        std::vector<int32_t> seq_ids(tokens.size(), seq);
        rf_batch batch{};
        batch.n_tokens = tokens.size();
        batch.tokens = tokens.data();
        batch.seq_ids = seq_ids.data();
        return try_decode_batch(batch);
    }

    // The `output_index`-th row of logits of the last decode (-1: the last row).
    Result<Logits> try_logits(int32_t output_index = -1) {
        Logits out;
        Status status = detail::call(rf_get_logits(get(), output_index, &out.data, &out.size),
                                     "rf_get_logits");
        if (!status.ok()) {
            return status;
        }
        return out;
    }

    // Positions p0 .. p1 (p1 < 0: to the end).
    Status try_seq_remove(int32_t seq, int32_t p0 = 0, int32_t p1 = -1) {
        return detail::call(rf_seq_remove(get(), seq, p0, p1), "rf_seq_remove");
    }

    Status try_seq_copy(int32_t src, int32_t dst, int32_t p0 = 0, int32_t p1 = -1) {
        return detail::call(rf_seq_copy(get(), src, dst, p0, p1), "rf_seq_copy");
    }

    // Moves positions p0 .. p1 (p1 < 0: to the end) by `delta`, re-rotating their keys:
    // after try_seq_remove of the oldest turns, the rest continues without re-encoding.
    Status try_seq_shift(int32_t seq, int32_t p0, int32_t p1, int32_t delta) {
        return detail::call(rf_seq_shift(get(), seq, p0, p1, delta), "rf_seq_shift");
    }

    // Sequence `seq`'s state (tokens, positions, K/V) as a checksummed blob.
    Result<std::vector<uint8_t>> try_state_save(int32_t seq) {
        size_t size = 0;
        Status status = detail::call(rf_state_seq_size(get(), seq, &size), "rf_state_seq_size");
        if (!status.ok()) {
            return status;
        }
        std::vector<uint8_t> blob(size);
        status = detail::call(rf_state_seq_save(get(), seq, blob.data(), blob.size(), &size),
                              "rf_state_seq_save");
        if (!status.ok()) {
            return status;
        }
        blob.resize(size);
        return blob;
    }

    // Replaces sequence `seq` with a blob from try_state_save on the same model; its last
    // token's logits are ready for sampling afterwards.
    Status try_state_load(int32_t seq, const std::vector<uint8_t> &blob) {
        return detail::call(rf_state_seq_load(get(), seq, blob.data(), blob.size()),
                            "rf_state_seq_load");
    }

    // An embedding of the last decode (the hidden state after the output norm): output
    // `index` with RF_POOLING_NONE (-1: the last), else sequence `index` pooled over its
    // tokens in the last batch, which must have asked for logits.
    Result<std::vector<float>> try_embeddings(int32_t index, uint32_t pooling = RF_POOLING_NONE,
                                              bool normalize = false) {
        auto read = [&](float *out, size_t cap, size_t *len) {
            return rf_get_embeddings(get(), index, pooling, normalize, out, cap, len);
        };
        return detail::read_buffer(std::vector<float>(1024), read, "rf_get_embeddings");
    }

    // -1 when the sequence is empty.
    Result<int32_t> try_seq_pos_max(int32_t seq) const {
        int32_t pos = -1;
        Status status = detail::call(rf_seq_pos_max(get(), seq, &pos), "rf_seq_pos_max");
        if (!status.ok()) {
            return status;
        }
        return pos;
    }

    Result<rf_memory_report> try_memory() const {
        rf_memory_report report{};
        report.struct_size = sizeof report;
        Status status = detail::call(rf_context_memory(get(), &report), "rf_context_memory");
        if (!status.ok()) {
            return status;
        }
        return report;
    }

    // Stops the running (or next) call with RF_ERR_CANCELLED. Safe from any thread; the
    // only failure is a moved-from Context, for which there is nothing to cancel.
    void cancel() const noexcept { rf_context_cancel(get()); }

#if ROCMFORGE_EXCEPTIONS
    void decode_batch(const rf_batch &batch) { detail::throw_if_failed(try_decode_batch(batch)); }
    void decode(const std::vector<int32_t> &tokens, int32_t seq = 0) {
        detail::throw_if_failed(try_decode(tokens, seq));
    }
    Logits logits(int32_t output_index = -1) { return try_logits(output_index).value(); }
    void seq_remove(int32_t seq, int32_t p0 = 0, int32_t p1 = -1) {
        detail::throw_if_failed(try_seq_remove(seq, p0, p1));
    }
    void seq_copy(int32_t src, int32_t dst, int32_t p0 = 0, int32_t p1 = -1) {
        detail::throw_if_failed(try_seq_copy(src, dst, p0, p1));
    }
    void seq_shift(int32_t seq, int32_t p0, int32_t p1, int32_t delta) {
        detail::throw_if_failed(try_seq_shift(seq, p0, p1, delta));
    }
    std::vector<uint8_t> state_save(int32_t seq) { return try_state_save(seq).value(); }
    void state_load(int32_t seq, const std::vector<uint8_t> &blob) {
        detail::throw_if_failed(try_state_load(seq, blob));
    }
    std::vector<float> embeddings(int32_t index, uint32_t pooling = RF_POOLING_NONE,
                                  bool normalize = false) {
        return try_embeddings(index, pooling, normalize).value();
    }
    int32_t seq_pos_max(int32_t seq) const { return try_seq_pos_max(seq).value(); }
    rf_memory_report memory() const { return try_memory().value(); }
#endif

private:
    explicit Context(rf_context *ctx) noexcept : ctx_(ctx) {}

    std::unique_ptr<rf_context, detail::ContextFree> ctx_;
};

// Picks tokens from logits. Move-only.
class Sampler {
public:
    static Result<Sampler> try_create(
        const rf_sampler_params &params = rf_sampler_default_params()) {
        rf_sampler *sampler = nullptr;
        Status status = detail::call(rf_sampler_new(&params, &sampler), "rf_sampler_new");
        if (!status.ok()) {
            return status;
        }
        return Sampler(sampler);
    }

    // Always the most likely token.
    static Result<Sampler> try_greedy() {
        rf_sampler_params params = rf_sampler_default_params();
        params.temperature = 0.0f;
        return try_create(params);
    }

    // `params`' chain drawing only tokens that keep the output inside `grammar`, a
    // RF_GRAMMAR_JSON_SCHEMA, RF_GRAMMAR_REGEX or RF_GRAMMAR_LARK text (read here only).
    static Result<Sampler> try_constrained(
        uint32_t grammar_kind, std::string_view grammar,
        rf_sampler_params params = rf_sampler_default_params()) {
        params.grammar_kind = grammar_kind;
        params.grammar = grammar.data();
        params.grammar_len = grammar.size();
        return try_create(params);
    }

#if ROCMFORGE_EXCEPTIONS
    explicit Sampler(const rf_sampler_params &params = rf_sampler_default_params())
        : Sampler(try_create(params).value()) {}

    static Sampler greedy() { return try_greedy().value(); }

    static Sampler constrained(uint32_t grammar_kind, std::string_view grammar,
                               const rf_sampler_params &params = rf_sampler_default_params()) {
        return try_constrained(grammar_kind, grammar, params).value();
    }
#endif

    Sampler(Sampler &&) noexcept = default;
    Sampler &operator=(Sampler &&) noexcept = default;
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;

    rf_sampler *get() const noexcept { return sampler_.get(); }

    // One token from the `output_index`-th logits row of ctx's last decode (-1: the last).
    Result<int32_t> try_sample(Context &ctx, int32_t output_index = -1) {
        int32_t token = -1;
        Status status = detail::call(rf_sampler_sample(get(), ctx.get(), output_index, &token),
                                     "rf_sampler_sample");
        if (!status.ok()) {
            return status;
        }
        return token;
    }

    Status try_reset() { return detail::call(rf_sampler_reset(get()), "rf_sampler_reset"); }

#if ROCMFORGE_EXCEPTIONS
    int32_t sample(Context &ctx, int32_t output_index = -1) {
        return try_sample(ctx, output_index).value();
    }
    void reset() { detail::throw_if_failed(try_reset()); }
#endif

private:
    explicit Sampler(rf_sampler *sampler) noexcept : sampler_(sampler) {}

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
    explicit GenerateState(F *f) noexcept : on_text(f) {}

    F *on_text;
#if ROCMFORGE_EXCEPTIONS
    std::exception_ptr error;
#endif
};

// The rf_text_callback. With exceptions on it must not let one unwind through the
// library's frames, so it parks the exception, stops generation, and try_generate()
// rethrows it afterwards.
template <class F>
bool text_trampoline(const char *text, size_t len, void *user_data) noexcept {
    auto *state = static_cast<GenerateState<F> *>(user_data);
#if ROCMFORGE_EXCEPTIONS
    try {
        return static_cast<bool>((*state->on_text)(std::string_view(text, len)));
    } catch (...) {
        state->error = std::current_exception();
        return false;
    }
#else
    return static_cast<bool>((*state->on_text)(std::string_view(text, len)));
#endif
}

} // namespace detail

namespace detail {

// Runs `start(params, callback, state)` (rf_generate or rf_generate_chat) with `params`
// and `on_text`; with exceptions on, rethrows whatever `on_text` threw.
template <class F, class Start>
Status run_generate(const GenerateParams &params, F &on_text, Start start, const char *what) {
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

    GenerateState<Fn> state(&on_text);
    rf_status code = start(&p, &text_trampoline<Fn>, &state);
#if ROCMFORGE_EXCEPTIONS
    if (state.error) {
        std::rethrow_exception(state.error);
    }
#endif
    return call(code, what);
}

} // namespace detail

// Continues `prompt` on sequence params.seq_id, passing whole UTF-8 characters to
// `on_text(std::string_view) -> bool` (false stops, without an error). With exceptions on,
// whatever `on_text` threw is rethrown here.
template <class F>
Status try_generate(Context &ctx, Sampler &sampler, std::string_view prompt,
                    const GenerateParams &params, F &&on_text) {
    return detail::run_generate(
        params, on_text,
        [&](const rf_generate_params *p, rf_text_callback cb, void *state) {
            return rf_generate(ctx.get(), sampler.get(), prompt.data(), prompt.size(), p, cb,
                               state);
        },
        "rf_generate");
}

// try_generate() from chat messages rendered with the model's template: only the
// template's markup becomes control tokens, the messages stay plain text (a user typing
// <|im_end|> cannot end their turn). params.parse_special does not apply.
template <class F>
Status try_generate_chat(Context &ctx, Sampler &sampler, const std::vector<ChatMessage> &messages,
                         const GenerateParams &params, F &&on_text, bool add_assistant = true) {
    const std::vector<rf_chat_message> c_messages = detail::c_messages(messages);
    return detail::run_generate(
        params, on_text,
        [&](const rf_generate_params *p, rf_text_callback cb, void *state) {
            return rf_generate_chat(ctx.get(), sampler.get(), c_messages.data(),
                                    c_messages.size(), add_assistant, p, cb, state);
        },
        "rf_generate_chat");
}

// What the model at `path` and one context of it would take (weights, KV cache, the
// context's host and device memory), from the file's metadata alone.
inline Result<rf_memory_estimate> try_estimate(
    std::string_view path, const rf_model_params &model = rf_model_default_params(),
    const rf_context_params &ctx = rf_context_default_params()) {
    rf_memory_estimate estimate{};
    estimate.struct_size = sizeof estimate;
    Status status = detail::call(
        rf_model_estimate(path.data(), path.size(), &model, &ctx, &estimate), "rf_model_estimate");
    if (!status.ok()) {
        return status;
    }
    return estimate;
}

// try_generate() collecting the text.
inline Result<std::string> try_generate(Context &ctx, Sampler &sampler, std::string_view prompt,
                                        const GenerateParams &params = GenerateParams()) {
    std::string out;
    Status status = try_generate(ctx, sampler, prompt, params, [&out](std::string_view text) {
        out.append(text);
        return true;
    });
    if (!status.ok()) {
        return status;
    }
    return out;
}

#if ROCMFORGE_EXCEPTIONS
// try_generate() that throws rf::Error (or whatever `on_text` threw).
template <class F>
void generate(Context &ctx, Sampler &sampler, std::string_view prompt,
              const GenerateParams &params, F &&on_text) {
    detail::throw_if_failed(try_generate(ctx, sampler, prompt, params, std::forward<F>(on_text)));
}

inline std::string generate(Context &ctx, Sampler &sampler, std::string_view prompt,
                            const GenerateParams &params = GenerateParams()) {
    return try_generate(ctx, sampler, prompt, params).value();
}

// try_generate_chat() that throws rf::Error (or whatever `on_text` threw).
template <class F>
void generate_chat(Context &ctx, Sampler &sampler, const std::vector<ChatMessage> &messages,
                   const GenerateParams &params, F &&on_text, bool add_assistant = true) {
    detail::throw_if_failed(try_generate_chat(ctx, sampler, messages, params,
                                              std::forward<F>(on_text), add_assistant));
}
#endif

} // namespace rf

#endif // ROCMFORGE_HPP
