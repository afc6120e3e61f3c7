#!/usr/bin/env python3
"""Reference renderings of real chat templates, as Hugging Face transformers'
`apply_chat_template` renders them, for tests/chat_templates_real.rs.

Reads tests/fixtures/chat_templates/real/<name>.jinja for every name in TEMPLATES and
writes tests/fixtures/chat_templates/real/expected.json: per template its BOS/EOS texts
and source, and per conversation (with and without the generation prompt) the exact text
jinja2 renders, or the error it raises.

The environment is transformers' (src/transformers/utils/chat_template_utils.py):
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols
extension and the `{% generation %}` tag of its AssistantTracker (not tracking), its
`tojson` filter (json.dumps, ensure_ascii off), `raise_exception` and `strftime_now`, and
the variables messages, tools=None, documents=None, add_generation_prompt, bos_token and
eos_token.

`strftime_now(fmt)` gives the marker `[[strftime_now:fmt]]`, which the test replaces with
today's date in that format, so the fixtures do not depend on the day they were made.

usage: python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install jinja2
       /tmp/tvenv/bin/python scripts/gen-chat-template-fixtures.py
"""
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "tests", "fixtures", "chat_templates", "real")

HFJS = "huggingface.js packages/ollama-utils/src/chat-template-automap.ts, the GGUF of ollama's"
HFJS_E2E = "huggingface.js packages/jinja/test/e2e.test.js, Hugging Face's"
LLAMA_CPP = "llama.cpp models/templates"

LLAMA3 = ("<|begin_of_text|>", "<|eot_id|>")
LLAMA2 = ("<s>", "</s>")
QWEN = ("", "<|im_end|>")
DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
GEMMA = ("<bos>", "<eos>")
COHERE = ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>")
GRANITE = ("<|end_of_text|>", "<|end_of_text|>")

# name: (bos_token, eos_token, source)
TEMPLATES = {
    "llama-2-7b-chat": (*LLAMA2, f"{HFJS} library/llama2:7b"),
    "llama-3-8b-instruct": (*LLAMA3, f"{HFJS} library/llama3:8b"),
    "llama-3.1-8b-instruct": (*LLAMA3, f"{HFJS_E2E} meta-llama/Llama-3.1-8B-Instruct"),
    "llama-3.2-3b-instruct": (*LLAMA3, f"{HFJS} library/llama3.2:3b"),
    "llama-4-scout-instruct": ("<|begin_of_text|>", "<|eot|>", f"{HFJS} library/llama4:latest"),
    "mistral-7b-instruct-v0.1": (*LLAMA2, f"{HFJS_E2E} TheBloke/Mistral-7B-Instruct-v0.1-GPTQ"),
    "mistral-7b-instruct-v0.3": (*LLAMA2, f"{HFJS_E2E} mistralai/Mistral-7B-Instruct-v0.3"),
    "mixtral-8x7b-instruct-v0.1": (*LLAMA2, f"{HFJS_E2E} mistralai/Mixtral-8x7B-Instruct-v0.1"),
    "mixtral-8x22b-instruct-v0.1": (*LLAMA2, f"{HFJS} library/mixtral:8x22b"),
    "mistral-nemo-instruct-2407": (*LLAMA2, f"{HFJS_E2E} mistralai/Mistral-Nemo-Instruct-2407"),
    "mistral-small-24b-instruct-2501": (*LLAMA2, f"{HFJS} library/mistral-small:24b"),
    "mistral-small-3.1-24b-instruct-2503": (
        *LLAMA2,
        f"{LLAMA_CPP} mistralai-Mistral-Small-3.1-24B-Instruct-2503.jinja",
    ),
    "mistral-large-instruct-2407": (*LLAMA2, f"{HFJS} library/mistral-large:123b"),
    "devstral-small": (*LLAMA2, f"{HFJS} library/devstral:latest"),
    "qwen1.5-chat": (*QWEN, f"{HFJS_E2E} Qwen/Qwen1.5-72B-Chat"),
    "qwen2-instruct": (*QWEN, f"{HFJS} library/qwen2:0.5b"),
    "qwen2.5-instruct": (*QWEN, f"{HFJS_E2E} Qwen/Qwen2.5-7B-Instruct"),
    "qwen3": (*QWEN, f"{HFJS_E2E} Qwen/Qwen3-0.6B"),
    "qwq-32b": (*QWEN, f"{HFJS} library/qwq:32b"),
    "phi-3-mini-instruct": ("<s>", "<|endoftext|>", f"{HFJS} library/phi3:3.8b"),
    "phi-3-medium-instruct": ("<s>", "<|endoftext|>", f"{HFJS} library/phi3:14b"),
    "phi-3.5-mini-instruct": ("<s>", "<|endoftext|>", f"{HFJS} library/phi3.5:3.8b"),
    "phi-4": ("<|endoftext|>", "<|im_end|>", f"{HFJS} library/phi4:14b"),
    "phi-4-mini-instruct": ("<|endoftext|>", "<|endoftext|>", f"{HFJS} library/phi4-mini:3.8b"),
    "phi-4-reasoning": ("<|endoftext|>", "<|im_end|>", f"{HFJS} library/phi4-reasoning:14b"),
    "gemma-2-it": (*GEMMA, f"{HFJS} library/gemma2:2b"),
    "gemma-3-it": (*GEMMA, f"{HFJS} library/gemma3:270m"),
    "deepseek-llm-7b-chat": (*DEEPSEEK, f"{HFJS_E2E} deepseek-ai/deepseek-llm-7b-chat"),
    "deepseek-coder-33b-instruct": (
        DEEPSEEK[0],
        "<|EOT|>",
        f"{HFJS_E2E} deepseek-ai/deepseek-coder-33b-instruct",
    ),
    "deepseek-v2.5": (*DEEPSEEK, f"{HFJS} library/deepseek-v2.5:236b"),
    "deepseek-v3": (*DEEPSEEK, f"{HFJS} library/deepseek-v3:671b"),
    "deepseek-r1": (*DEEPSEEK, f"{HFJS_E2E} deepseek-ai/DeepSeek-R1"),
    "deepseek-r1-distill-llama-8b": (*DEEPSEEK, f"{HFJS} library/deepseek-r1:8b"),
    "deepseek-r1-distill-qwen-32b": (
        *DEEPSEEK,
        f"{LLAMA_CPP} deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    ),
    "command-r-35b": (*COHERE, f"{HFJS} library/command-r:35b"),
    "command-r7b-12-2024": (*COHERE, f"{HFJS} library/command-r7b:7b"),
    "aya-expanse-8b": (*COHERE, f"{HFJS} library/aya-expanse:8b"),
    "granite-3.0-instruct": (*GRANITE, f"{HFJS} library/granite3-dense:2b"),
    "granite-3.1-moe-instruct": (*GRANITE, f"{HFJS} library/granite3.1-moe:1b"),
    "granite-3.3-instruct": (*GRANITE, f"{HFJS} library/granite3.3:2b"),
    "granite-4.0": (*GRANITE, f"{HFJS} library/granite4:latest"),
    "smollm2-instruct": ("<|im_start|>", "<|im_end|>", f"{HFJS} library/smollm2:135m"),
    "smollm3": ("", "<|im_end|>", f"{HFJS_E2E} HuggingFaceTB/SmolLM3-3B"),
    "falcon2-11b": ("", "<|endoftext|>", f"{HFJS} library/falcon2:11b"),
    "olmo-2-instruct": ("<|endoftext|>", "<|endoftext|>", f"{HFJS} library/olmo2:7b"),
    "tinyllama-chat": (*LLAMA2, f"{HFJS} library/tinyllama:1.1b"),
    "openchat-3.5": ("<s>", "<|end_of_turn|>", f"{HFJS_E2E} openchat/openchat-3.5-0106"),
    "internlm2-chat": (*LLAMA2, f"{HFJS_E2E} internlm/internlm2-chat-7b"),
    "glm-4-9b-chat": ("", "<|endoftext|>", f"{HFJS} library/glm4:9b"),
    "exaone-3.5-instruct": ("[BOS]", "[|endofturn|]", f"{HFJS} library/exaone3.5:7.8b"),
    "nemotron-mini-4b": (*LLAMA2, f"{HFJS} library/nemotron-mini:4b"),
    "tulu-3": ("<|begin_of_text|>", "<|end_of_text|>", f"{HFJS} library/tulu3:70b"),
    # Not a model's: the Python methods, filters and syntax real templates use, at once.
    "synthetic-python-compat": (*LLAMA2, "written for this test"),
}

# Text that templates must pass through untouched: newlines, spaces at both ends, tabs,
# unicode, and Jinja syntax (a message is data, never template code).
TRICKY_USER = "  Line one\n\tline two  \n{{ not a tag }} {% if x %}raw{% endif %} Grüße, 日本語 🎉  "
TRICKY_ASSISTANT = "\n Sure:\n\n- {{x}}\n- {% raw %}{#c#} \"quoted\" 'single' \\ back\n "
TRICKY_FOLLOW_UP = "\n\nWhy? ✓ <b>&amp;</b>\n"

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "system_user_assistant_user": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ],
    "tricky_text": [
        {"role": "user", "content": TRICKY_USER},
        {"role": "assistant", "content": TRICKY_ASSISTANT},
        {"role": "user", "content": TRICKY_FOLLOW_UP},
    ],
    # Reasoning templates take the thinking out of earlier answers (split, strip).
    "earlier_thinking": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nAdd two and two.\n</think>\n\n  4.  "},
        {"role": "user", "content": "Sure?"},
    ],
}


class AssistantTracker(jinja2.ext.Extension):
    """transformers' `{% generation %}...{% endgeneration %}` tag, not tracking: the
    body renders as it is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_generation_support")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def strftime_now(format):
    return f"[[strftime_now:{format}]]"


def environment():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[AssistantTracker, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(template, messages, add_generation_prompt, bos, eos):
    try:
        text = template.render(
            messages=messages,
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos,
            eos_token=eos,
        )
        return {"text": text}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception's message, or jinja2's own (undefined, sandbox, type errors).
        return {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # a Python error inside the template (e.g. a bad method call)
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    env = environment()
    out = {
        "about": "Generated by scripts/gen-chat-template-fixtures.py: each template rendered "
        "as transformers' apply_chat_template does (jinja2 " + jinja2.__version__ + ").",
        "conversations": CONVERSATIONS,
        "templates": {},
    }
    for name, (bos, eos, source) in TEMPLATES.items():
        with open(os.path.join(DIR, name + ".jinja"), encoding="utf-8", newline="") as f:
            source_text = f.read()
        template = env.from_string(source_text)
        cases = {}
        for conv, messages in CONVERSATIONS.items():
            for add in (False, True):
                key = f"{conv}/{'gen' if add else 'nogen'}"
                cases[key] = render(template, messages, add, bos, eos)
        out["templates"][name] = {
            "source": source,
            "bos_token": bos,
            "eos_token": eos,
            "cases": cases,
        }
    listed = {n + ".jinja" for n in TEMPLATES}
    extra = sorted(f for f in os.listdir(DIR) if f.endswith(".jinja") and f not in listed)
    if extra:
        sys.exit(f"templates without an entry in TEMPLATES: {extra}")
    path = os.path.join(DIR, "expected.json")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for t in out["templates"].values() for c in t["cases"].values())
    total = sum(len(t["cases"]) for t in out["templates"].values())
    print(f"{path}: {len(TEMPLATES)} templates, {total} cases, {errors} errors")


if __name__ == "__main__":
    main()
