// chat: one turn of a chat through the C++ wrapper, streamed greedily to stdout.
//
//   chat MODEL.gguf ["QUESTION"] [MAX_TOKENS]
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "rocmforge.hpp"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf [QUESTION] [MAX_TOKENS]\n";
        return 2;
    }
    const std::string question = argc > 2 ? argv[2] : "What are the three primary colors?";
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

    try {
        rf::Model model(argv[1]);
        rf::Context ctx(model);
        rf::Sampler sampler = rf::Sampler::greedy();

        const std::string prompt = model.apply_chat_template(
            {{"system", "You are a helpful assistant. Answer briefly."}, {"user", question}},
            /*add_assistant=*/true);

        rf::GenerateParams params;
        params.max_tokens = static_cast<uint32_t>(max_tokens);
        // The end-of-turn marker is normally an end-of-generation token; the stop string
        // also catches a model whose metadata does not say so.
        params.stop = {"<|im_end|>"};
        params.parse_special = true; // the template writes <|im_start|> as text

        rf::generate(ctx, sampler, prompt, params, [](std::string_view text) {
            std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
            std::cout.flush();
            return static_cast<bool>(std::cout); // stop once stdout is gone
        });
        std::cout << '\n';
    } catch (const std::exception &e) {
        std::cout.flush();
        std::cerr << "chat: " << e.what() << '\n';
        return 1;
    }
    return std::cout.flush() ? 0 : 1;
}
