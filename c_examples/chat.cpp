// chat: one turn of a chat through the C++ wrapper, streamed greedily to stdout.
//
// The conversation goes to the model with generate_chat(), which keeps what the messages
// say plain text: a question holding "<|im_end|>" cannot close the user's turn.
//
// It checks what it shows and exits 1, saying why on stderr, when a check fails: the
// conversation renders in the model's chat format (for a ChatML model, or one without a
// template, which gets ChatML, exactly the text llama.cpp renders; for another template, a
// text holding both messages), and the reply is non-empty valid UTF-8 without the
// end-of-turn marker.
//
// It uses the wrapper's try_ API, which returns rf::Status / rf::Result instead of
// throwing, so it builds the same with exceptions on and with -fno-exceptions.
//
//   chat MODEL.gguf ["QUESTION"] [MAX_TOKENS]
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rocmforge.hpp"

namespace {

constexpr std::string_view kEndOfTurn = "<|im_end|>";

// The model's chat template, or nothing when it has none (the key is absent).
rf::Result<std::optional<std::string>> chat_template(const rf::Model &model) {
    rf::Result<std::string> tmpl = model.try_meta("tokenizer.chat_template");
    if (tmpl) return std::optional<std::string>(std::move(*tmpl));
    if (tmpl.status().code() == RF_ERR_INVALID_ARGUMENT) return std::optional<std::string>();
    return tmpl.status();
}

// A system and a user message, then the opening of the assistant's turn, in ChatML.
std::string chatml(const std::string &system, const std::string &user) {
    return "<|im_start|>system\n" + system + "<|im_end|>\n<|im_start|>user\n" + user +
           "<|im_end|>\n<|im_start|>assistant\n";
}

// Why `prompt` is not the conversation rendered in the model's format, or "" when it is.
std::string prompt_problem(const std::optional<std::string> &tmpl, const std::string &prompt,
                           const std::string &system, const std::string &user) {
    if (!tmpl || tmpl->find("<|im_start|>") != std::string::npos) {
        const std::string expected = chatml(system, user);
        if (prompt != expected) {
            size_t at = 0;
            while (at < prompt.size() && at < expected.size() && prompt[at] == expected[at]) at++;
            return "the prompt (" + std::to_string(prompt.size()) + " bytes) differs from " +
                   "ChatML (" + std::to_string(expected.size()) + " bytes) from byte " +
                   std::to_string(at) + ":\n" + prompt + "\nexpected:\n" + expected;
        }
    } else if (prompt.find(system) == std::string::npos ||
               prompt.find(user) == std::string::npos) {
        return "the prompt leaves out a message:\n" + prompt;
    }
    return "";
}

// Whether `s` is well-formed UTF-8: no stray continuation byte, truncated or overlong
// sequence, surrogate, or code point above U+10FFFF.
bool is_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        size_t n = 0;
        uint32_t cp = 0, min = 0;
        if (lead < 0x80) {
            i++;
            continue;
        } else if ((lead & 0xE0) == 0xC0) {
            n = 1, cp = lead & 0x1F, min = 0x80;
        } else if ((lead & 0xF0) == 0xE0) {
            n = 2, cp = lead & 0x0F, min = 0x800;
        } else if ((lead & 0xF8) == 0xF0) {
            n = 3, cp = lead & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (s.size() - i <= n) return false;
        for (size_t k = 1; k <= n; k++) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

// Why `reply` is not a usable reply, or "" when it is.
std::string reply_problem(const std::string &reply) {
    if (reply.empty()) return "the reply is empty";
    if (!is_utf8(reply)) return "the reply is not valid UTF-8";
    if (reply.find(kEndOfTurn) != std::string::npos) {
        return "the reply holds the end-of-turn marker " + std::string(kEndOfTurn);
    }
    return "";
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf [QUESTION] [MAX_TOKENS]\n";
        return 2;
    }
    const std::string question = argc > 2 ? argv[2] : "What are the three primary colors?";
    const std::string system = "You are a helpful assistant. Answer briefly.";
    unsigned long max_tokens = 48;
    if (argc > 3) {
        char *end = nullptr;
        errno = 0;
        max_tokens = std::strtoul(argv[3], &end, 10);
        if (errno != 0 || end == argv[3] || *end != '\0' || max_tokens > UINT32_MAX) {
            std::cerr << "chat: MAX_TOKENS must be a number, got '" << argv[3] << "'\n";
            return 2;
        }
    }

    // Prints what failed and gives the exit status for it.
    auto failed = [](const rf::Status &status) {
        std::cout.flush();
        std::cerr << "chat: " << status.message() << '\n';
        return 1;
    };
    rf::Result<rf::Model> model = rf::Model::try_load(argv[1]);
    if (!model) return failed(model.status());
    rf::Result<rf::Context> ctx = rf::Context::try_create(*model);
    if (!ctx) return failed(ctx.status());
    rf::Result<rf::Sampler> sampler = rf::Sampler::try_greedy();
    if (!sampler) return failed(sampler.status());

    const std::vector<rf::ChatMessage> conversation = {{"system", system}, {"user", question}};
    rf::Result<std::string> prompt =
        model->try_apply_chat_template(conversation, /*add_assistant=*/true);
    if (!prompt) return failed(prompt.status());
    rf::Result<std::optional<std::string>> tmpl = chat_template(*model);
    if (!tmpl) return failed(tmpl.status());
    const std::string problem = prompt_problem(*tmpl, *prompt, system, question);
    if (!problem.empty()) {
        std::cerr << "chat: " << problem << '\n';
        return 1;
    }

    rf::GenerateParams params;
    params.max_tokens = static_cast<uint32_t>(max_tokens);
    // The end-of-turn marker is normally an end-of-generation token; the stop string
    // also catches a model whose metadata does not say so.
    params.stop = {std::string(kEndOfTurn)};

    std::string reply;
    rf::Status generated = rf::try_generate_chat(
        *ctx, *sampler, conversation, params, [&reply](std::string_view text) {
            reply.append(text);
            std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
            std::cout.flush();
            return static_cast<bool>(std::cout); // stop once stdout is gone
        });
    if (!generated.ok()) return failed(generated);
    std::cout << '\n';
    if (max_tokens > 0) {
        const std::string reply_error = reply_problem(reply);
        if (!reply_error.empty()) {
            std::cerr << "chat: " << reply_error << '\n';
            return 1;
        }
    }
    return std::cout.flush() ? 0 : 1;
}
