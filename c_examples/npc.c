/* npc: a game character driven by a model, as a game would embed it.
 *
 *   npc MODEL.gguf PERSONA_STATE_FILE ["player line" ...]
 *
 * The character's persona (a system message) is encoded once and its state saved to
 * PERSONA_STATE_FILE; the next run restores it from there instead of encoding it again
 * (a file from another model or a damaged one is refused, and the persona is encoded
 * afresh). Every player line starts from the persona's state, restored in memory, and the
 * character answers with an action the game can act on: one line of JSON that a JSON
 * Schema constrains (what it says, its mood, what it does and to whom, what it offers).
 * The context keeps its K/V cache in 8 bits (RF_KV_Q8_0) where the model's heads allow,
 * as a game running many characters would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocmforge.h"

static const char PERSONA[] =
    "You are Brenna, the blacksmith of the village of Oakridge. You are gruff but fair, "
    "you sell swords, axes and horseshoes, and you distrust strangers who carry weapons. "
    "Answer the player with what you say and do.";

static const char ACTION_SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"say\": {\"type\": \"string\", \"maxLength\": 120},"
    "\"mood\": {\"enum\": [\"friendly\", \"wary\", \"angry\", \"afraid\"]},"
    "\"action\": {\"type\": \"object\", \"properties\": {"
    "  \"kind\": {\"enum\": [\"greet\", \"trade\", \"give_quest\", \"attack\", \"flee\", \"idle\"]},"
    "  \"target\": {\"enum\": [\"player\", \"guard\", \"nobody\"]}},"
    "  \"required\": [\"kind\", \"target\"], \"additionalProperties\": false},"
    "\"offers\": {\"type\": \"array\", \"maxItems\": 3, \"items\": {\"type\": \"object\","
    "  \"properties\": {\"item\": {\"type\": \"string\", \"maxLength\": 24},"
    "  \"price\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 999}},"
    "  \"required\": [\"item\", \"price\"], \"additionalProperties\": false}}},"
    "\"required\": [\"say\", \"mood\", \"action\", \"offers\"], \"additionalProperties\": false}";

static const char *const DEFAULT_LINES[] = {
    "Good morning! I need a new sword, what do you have?",
    "Hand over your gold or I burn this forge down.",
};

#define MAX_TOKENS 1024
#define MAX_REPLY_TOKENS 200

static int fail(const char *what, rf_status status) {
    fprintf(stderr, "npc: %s: %s: %s\n", what, rf_status_name(status), rf_last_error());
    return 1;
}

/* The conversation (the persona, then `player_line` if not NULL) as tokens. */
static rf_status conversation_tokens(const rf_model *model, const char *player_line,
                                     int32_t *tokens, size_t *n_tokens) {
    rf_chat_message messages[2] = {
        {"system", strlen("system"), PERSONA, strlen(PERSONA)},
        {"user", strlen("user"), player_line, player_line ? strlen(player_line) : 0},
    };
    size_t n = player_line ? 2 : 1;
    return rf_chat_tokenize(model, messages, n, player_line != NULL, true, tokens, MAX_TOKENS,
                            n_tokens);
}

static rf_status decode(rf_context *ctx, const int32_t *tokens, size_t n) {
    rf_batch batch = {n, tokens, NULL, NULL, NULL};
    return rf_decode(ctx, &batch);
}

/* Puts the persona in sequence 0: restored from `path` when that holds this model's
 * persona, else encoded and saved there. */
static rf_status load_persona(rf_context *ctx, const int32_t *persona, size_t n_persona,
                              const char *path) {
    int32_t pos_max = -1;
    rf_status s = rf_state_seq_load_file(ctx, 0, path, strlen(path));
    if (s == RF_OK && (s = rf_seq_pos_max(ctx, 0, &pos_max)) == RF_OK &&
        (size_t)(pos_max + 1) == n_persona) {
        fprintf(stderr, "npc: persona restored from %s\n", path);
        return RF_OK;
    }
    if (s != RF_OK) {
        fprintf(stderr, "npc: no usable persona state in %s (%s), encoding it\n", path,
                rf_last_error());
    }
    if ((s = rf_seq_remove(ctx, 0, 0, -1)) != RF_OK ||
        (s = decode(ctx, persona, n_persona)) != RF_OK) {
        return s;
    }
    if ((s = rf_state_seq_save_file(ctx, 0, path, strlen(path))) == RF_OK) {
        fprintf(stderr, "npc: persona encoded and saved to %s\n", path);
    }
    return s;
}

/* The character's answer to `line`, from the persona's state in `persona_state`: one line
 * of JSON printed to stdout. */
static rf_status answer(const rf_model *model, rf_context *ctx, rf_sampler *sampler,
                        const uint8_t *persona_state, size_t state_len, const int32_t *persona,
                        size_t n_persona, const char *line) {
    int32_t tokens[MAX_TOKENS];
    size_t n_tokens = 0;
    rf_status s;
    if ((s = conversation_tokens(model, line, tokens, &n_tokens)) != RF_OK ||
        (s = rf_sampler_reset(sampler)) != RF_OK) {
        return s;
    }
    /* The persona's state serves when the template renders the conversation as the
     * persona followed by the new turn; otherwise the whole conversation is encoded. */
    size_t reused = 0;
    if (n_tokens > n_persona && memcmp(tokens, persona, n_persona * sizeof *persona) == 0) {
        s = rf_state_seq_load(ctx, 0, persona_state, state_len);
        reused = n_persona;
    } else {
        s = rf_seq_remove(ctx, 0, 0, -1);
    }
    if (s != RF_OK || (s = decode(ctx, tokens + reused, n_tokens - reused)) != RF_OK) {
        return s;
    }
    printf("player: %s\nnpc: ", line);
    for (int i = 0; i < MAX_REPLY_TOKENS; i++) {
        int32_t token = 0;
        if ((s = rf_sampler_sample(sampler, ctx, -1, &token)) != RF_OK) {
            return s;
        }
        if (rf_token_is_eog(model, token)) {
            break;
        }
        char piece[256];
        size_t len = 0;
        if ((s = rf_token_to_piece(model, token, false, piece, sizeof piece, &len)) != RF_OK ||
            (s = decode(ctx, &token, 1)) != RF_OK) {
            return s;
        }
        fwrite(piece, 1, len, stdout);
    }
    putchar('\n');
    return RF_OK;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PERSONA_STATE_FILE [\"player line\" ...]\n",
                argv[0]);
        return 2;
    }
    const char *path = argv[1];
    const char *state_path = argv[2];
    const char *const *lines = argc > 3 ? (const char *const *)argv + 3 : DEFAULT_LINES;
    size_t n_lines = argc > 3 ? (size_t)(argc - 3) : sizeof DEFAULT_LINES / sizeof *DEFAULT_LINES;

    rf_model *model = NULL;
    rf_context *ctx = NULL;
    rf_sampler *sampler = NULL;
    uint8_t *persona_state = NULL;
    int rc = 1;
    rf_status s;

    if ((s = rf_model_load(path, strlen(path), NULL, &model)) != RF_OK) {
        rc = fail("loading the model", s);
        goto done;
    }
    rf_context_params cp = rf_context_default_params();
    cp.n_ctx = 2048;
    cp.kv_type = RF_KV_Q8_0; /* 8-bit K/V: room for many characters in one game's memory */
    s = rf_context_new(model, &cp, &ctx);
    if (s == RF_ERR_UNSUPPORTED) {
        /* Heads that are not whole 32-value blocks: the cache stays in F16. */
        fprintf(stderr, "npc: %s; keeping the K/V cache in F16\n", rf_last_error());
        cp.kv_type = RF_KV_F16;
        s = rf_context_new(model, &cp, &ctx);
    }
    if (s != RF_OK) {
        rc = fail("creating a context", s);
        goto done;
    }
    rf_sampler_params sp = rf_sampler_default_params();
    sp.temperature = 0.7f;
    sp.seed = 42;
    sp.grammar_kind = RF_GRAMMAR_JSON_SCHEMA;
    sp.grammar = ACTION_SCHEMA;
    sp.grammar_len = strlen(ACTION_SCHEMA);
    if ((s = rf_sampler_new(&sp, &sampler)) != RF_OK) {
        rc = fail("creating the action sampler", s);
        goto done;
    }

    int32_t persona[MAX_TOKENS];
    size_t n_persona = 0;
    if ((s = conversation_tokens(model, NULL, persona, &n_persona)) != RF_OK) {
        rc = fail("tokenizing the persona", s);
        goto done;
    }
    if ((s = load_persona(ctx, persona, n_persona, state_path)) != RF_OK) {
        rc = fail("loading the persona", s);
        goto done;
    }
    size_t state_len = 0;
    if ((s = rf_state_seq_size(ctx, 0, &state_len)) != RF_OK ||
        (persona_state = malloc(state_len)) == NULL ||
        (s = rf_state_seq_save(ctx, 0, persona_state, state_len, &state_len)) != RF_OK) {
        rc = fail("keeping the persona's state", persona_state ? s : RF_ERR_OUT_OF_MEMORY);
        goto done;
    }
    for (size_t i = 0; i < n_lines; i++) {
        if ((s = answer(model, ctx, sampler, persona_state, state_len, persona, n_persona,
                        lines[i])) != RF_OK) {
            rc = fail("answering", s);
            goto done;
        }
    }
    rc = 0;
done:
    free(persona_state);
    rf_sampler_free(sampler);
    rf_context_free(ctx);
    rf_model_free(model);
    return rc;
}
