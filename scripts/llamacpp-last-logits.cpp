// The last position's logits of token-id prompts through llama.cpp's C API,
// for scripts/logit-spread.sh: one prompt per stdin line, "IDS ; WANTED",
// both space-separated token ids; prints the WANTED ids' logits as a JSON
// array per line.
//
//   llamacpp-last-logits MODEL FLASH_ATTN(0|1) [THREADS] < prompts
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL FLASH_ATTN [THREADS] < prompts\n", argv[0]);
        return 2;
    }
    const int flash = std::atoi(argv[2]);
    const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
    llama_backend_init();
    llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) {
        std::fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
        const auto split = line.find(';');
        std::istringstream prompt(line.substr(0, split)), wanted(line.substr(split + 1));
        std::vector<llama_token> ids, want;
        for (int x; prompt >> x;) ids.push_back(x);
        for (int x; wanted >> x;) want.push_back(x);
        // A fresh context per prompt: nothing cached from the one before.
        auto params = llama_context_default_params();
        params.n_ctx = 2048;
        params.n_batch = 2048;
        params.n_threads = params.n_threads_batch = threads;
        params.flash_attn_type = flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        llama_context *ctx = llama_init_from_model(model, params);
        if (!ctx || llama_decode(ctx, llama_batch_get_one(ids.data(), (int)ids.size()))) {
            std::fprintf(stderr, "decode failed\n");
            return 1;
        }
        const float *logits = llama_get_logits_ith(ctx, -1);
        std::printf("[");
        for (size_t i = 0; i < want.size(); i++) std::printf("%s%.6f", i ? "," : "", logits[want[i]]);
        std::printf("]\n");
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
