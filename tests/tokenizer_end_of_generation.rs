//! Which tokens end a generation: tiny byte-level BPE vocabularies, each holding a few of
//! the texts and ids that llama.cpp's `llama_vocab::impl::load` (src/llama-vocab.cpp at
//! 0c1e57098bba43ac29e6e3b677cdceebdd22334f) builds `special_eog_ids` from, and the set
//! and token types that code gives. Every vocabulary here was also loaded by llama.cpp
//! built from that commit: its `llama_vocab_is_eog` and attributes agreed on every token.

use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tokenizer::{TokenType, Tokenizer};

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The texts llama.cpp ends generation on wherever they are tokens.
const LISTED: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// A `gpt2` vocabulary of `tokens` (text, raw type) with the `tokenizer.ggml.*_token_id`
/// keys in `ids`, read from a GGUF file as a model's would be. Past 11 tokens give an EOS:
/// llama.cpp's default EOS for `gpt2` is id 11.
fn load(tokens: &[(&str, i32)], ids: &[(&'static str, u32)]) -> Tokenizer {
    let mut w = GgufWriter::new();
    let mut add = |key: &str, value: OwnedValue| w.add_metadata(key, value).expect("metadata");
    add("tokenizer.ggml.model", OwnedValue::String("gpt2".into()));
    add("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into()));
    add(
        "tokenizer.ggml.tokens",
        OwnedValue::string_array(tokens.iter().map(|t| t.0)),
    );
    add(
        "tokenizer.ggml.token_type",
        OwnedValue::i32_array(tokens.iter().map(|t| t.1)),
    );
    add(
        "tokenizer.ggml.merges",
        OwnedValue::string_array(Vec::<String>::new()),
    );
    for &(key, id) in ids {
        add(&format!("tokenizer.ggml.{key}"), OwnedValue::U32(id));
    }
    let bytes = w.to_bytes();
    Tokenizer::from_gguf(&GgufFile::parse(&bytes).expect("parses")).expect("builds")
}

/// The texts of the tokens that end generation, in id order.
fn eog(t: &Tokenizer) -> Vec<&str> {
    (0..t.vocab().len() as u32)
        .filter(|&id| t.is_end_of_generation(id))
        .map(|id| t.vocab().text(id).expect("a token"))
        .collect()
}

fn type_of(t: &Tokenizer, text: &str) -> TokenType {
    let id = t.vocab().id_of(text.as_bytes()).expect("a token");
    t.vocab().token_type(id).expect("a token")
}

#[test]
fn listed_texts_end_generation_whatever_their_type() {
    // The list is checked on text alone; llama.cpp then makes the token a control token.
    for text in LISTED {
        for ty in [0, NORMAL, CONTROL, USER_DEFINED, 5] {
            let t = load(&[("a", NORMAL), (text, ty), ("b", NORMAL)], &[]);
            assert_eq!(eog(&t), [*text], "{text} of type {ty}");
            assert_eq!(type_of(&t, text), TokenType::Control, "{text} of type {ty}");
        }
    }
}

#[test]
fn other_texts_do_not_end_generation_even_as_control_tokens() {
    let near_misses = [
        "<|im_start|>",
        "<s>",
        "<|END|>",
        "<EOS>",
        "▁<EOT>",
        "<|eot_id|> ",
        "<end_of_turn",
        "<|plamo:eos|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<pad>",
    ];
    let mut tokens = vec![("a", NORMAL)];
    tokens.extend(near_misses.iter().map(|t| (*t, CONTROL)));
    let t = load(&tokens, &[("eos_token_id", 0)]);
    assert_eq!(eog(&t), ["a"], "only the EOS the file names");
}

#[test]
fn eos_eot_and_eom_end_generation_whatever_their_text() {
    let tokens = [("a", NORMAL), ("b", NORMAL), ("c", CONTROL), ("d", NORMAL)];
    let t = load(
        &tokens,
        &[
            ("eos_token_id", 1),
            ("eot_token_id", 2),
            ("eom_token_id", 3),
        ],
    );
    assert_eq!(eog(&t), ["b", "c", "d"]);
    // No key: llama.cpp's default EOS for `gpt2` is token 11, where there is one.
    let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let many: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), NORMAL)).collect();
    assert_eq!(eog(&load(&many, &[])), ["t11"]);
    assert_eq!(eog(&load(&many[..11], &[])), Vec::<&str>::new());
}

#[test]
fn eot_and_eom_are_found_by_text_where_the_file_names_none() {
    let t = load(
        &[
            ("a", NORMAL),
            ("<end_of_utterance>", NORMAL),
            ("<|eom_id|>", NORMAL),
        ],
        &[],
    );
    assert_eq!(t.specials().eot, Some(1));
    assert_eq!(t.specials().eom, Some(2));
    // The file's ids come first.
    let t = load(
        &[
            ("a", NORMAL),
            ("<|im_end|>", CONTROL),
            ("<|eom_id|>", CONTROL),
        ],
        &[("eot_token_id", 0), ("eom_token_id", 0)],
    );
    assert_eq!((t.specials().eot, t.specials().eom), (Some(0), Some(0)));
    assert_eq!(eog(&t), ["a", "<|im_end|>", "<|eom_id|>"]);
}

#[test]
fn fim_pad_repo_and_file_separator_named_by_the_file_end_generation() {
    let tokens = [
        ("a", NORMAL),
        ("pad", NORMAL),
        ("repo", NORMAL),
        ("sep", NORMAL),
        ("<|fim_pad|>", CONTROL),
        ("<|repo_name|>", CONTROL),
    ];
    let t = load(
        &tokens,
        &[
            ("fim_pad_token_id", 1),
            ("fim_rep_token_id", 2),
            ("fim_sep_token_id", 3),
        ],
    );
    // Where the file names a role's token, that role's texts are not looked for.
    assert_eq!(eog(&t), ["pad", "repo", "sep"]);
    // The prefix, suffix and middle tokens do not end generation.
    let t = load(
        &[
            ("a", NORMAL),
            ("pre", NORMAL),
            ("suf", NORMAL),
            ("mid", NORMAL),
        ],
        &[
            ("fim_pre_token_id", 1),
            ("fim_suf_token_id", 2),
            ("fim_mid_token_id", 3),
        ],
    );
    assert_eq!(eog(&t), Vec::<&str>::new());
}

#[test]
fn fim_pad_repo_and_file_separator_are_found_by_text_where_the_file_names_none() {
    let texts = [
        "<|fim_pad|>",
        "<fim-pad>",
        "<fim_pad>",
        "<PAD>",
        "[PAD]",
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
        "<|file_sep|>",
    ];
    for text in texts {
        for ty in [NORMAL, CONTROL] {
            let t = load(&[("a", NORMAL), (text, ty)], &[]);
            assert_eq!(eog(&t), [text], "{text} of type {ty}");
            assert_eq!(type_of(&t, text), TokenType::Control, "{text} of type {ty}");
        }
    }
    // Qwen 2.5 Coder's three at once.
    let t = load(
        &[
            ("<|fim_prefix|>", CONTROL),
            ("<|fim_pad|>", CONTROL),
            ("<|repo_name|>", CONTROL),
            ("<|file_sep|>", CONTROL),
        ],
        &[],
    );
    assert_eq!(eog(&t), ["<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]);
    // One token per role: of two pad texts llama.cpp takes the first in its hash map's
    // order, this crate the first in llama.cpp's list.
    let t = load(
        &[("a", NORMAL), ("[PAD]", CONTROL), ("<|fim_pad|>", CONTROL)],
        &[],
    );
    assert_eq!(eog(&t), ["<|fim_pad|>"]);
}

#[test]
fn end_is_no_end_of_generation_beside_return_and_call_or_calls_and_flush() {
    let taken_off: &[&[&str]] = &[
        &["<|return|>", "<|call|>"],  // gpt-oss
        &["<|calls|>", "<|flush|>"],  // Solar Open
        &["<|return|>", "<|calls|>"], // either call token with either of the others
        &["<|call|>", "<|flush|>"],
    ];
    for others in taken_off {
        let mut tokens = vec![("a", NORMAL), ("<|end|>", CONTROL)];
        tokens.extend(others.iter().map(|t| (*t, CONTROL)));
        for eos in [0, 1] {
            // Taken off even as the EOS.
            let t = load(&tokens, &[("eos_token_id", eos)]);
            let mut expected: Vec<&str> = others.to_vec();
            if eos == 0 {
                expected.insert(0, "a");
            }
            assert_eq!(eog(&t), expected, "{others:?}, EOS {eos}");
            // User-defined: matched in plain text and written out.
            assert_eq!(type_of(&t, "<|end|>"), TokenType::UserDefined);
            assert_eq!(t.tokenize("a<|end|>", false, false).expect("ok"), [0, 1]);
            assert_eq!(t.token_to_piece(1, false).expect("a token"), b"<|end|>");
        }
    }
    for others in [
        &["<|return|>"][..],
        &["<|call|>"],
        &["<|calls|>"],
        &["<|flush|>"],
        &["<|return|>", "<|flush|>"],
    ] {
        let mut tokens = vec![("<|end|>", CONTROL)];
        tokens.extend(others.iter().map(|t| (*t, CONTROL)));
        let t = load(&tokens, &[]);
        let mut expected = vec!["<|end|>"];
        expected.extend(others);
        assert_eq!(eog(&t), expected, "{others:?}");
        assert_eq!(type_of(&t, "<|end|>"), TokenType::Control);
    }
}

#[test]
fn s_is_normal_text_beside_tool_response_or_plamo_eos() {
    // `</s>` ends generation by its text, the EOS or not.
    let t = load(&[("a", NORMAL), ("</s>", CONTROL)], &[("eos_token_id", 0)]);
    assert_eq!(eog(&t), ["a", "</s>"]);
    // Beside Gemma 4's `<|tool_response>` it does not, even as the EOS, and is normal.
    for eos in [0, 1] {
        let tokens = [
            ("a", NORMAL),
            ("</s>", CONTROL),
            ("<|tool_response>", CONTROL),
        ];
        let t = load(&tokens, &[("eos_token_id", eos)]);
        let expected: &[&str] = if eos == 0 {
            &["a", "<|tool_response>"]
        } else {
            &["<|tool_response>"]
        };
        assert_eq!(eog(&t), expected, "EOS {eos}");
        assert_eq!(type_of(&t, "</s>"), TokenType::Normal);
    }
    // PLaMo's `<|plamo:eos|>` is on the list by id only: as the EOS, EOT or EOM, or as a
    // FIM pad, repo or file-separator token.
    let tokens = [("a", NORMAL), ("</s>", CONTROL), ("<|plamo:eos|>", CONTROL)];
    for key in [
        "eos_token_id",
        "eot_token_id",
        "eom_token_id",
        "fim_pad_token_id",
        "fim_rep_token_id",
        "fim_sep_token_id",
    ] {
        let (ids, expected): (&[_], &[&str]) = if key == "eos_token_id" {
            (&[(key, 2)], &["<|plamo:eos|>"])
        } else {
            (&[("eos_token_id", 0), (key, 2)], &["a", "<|plamo:eos|>"])
        };
        let t = load(&tokens, ids);
        assert_eq!(eog(&t), expected, "{key}");
        assert_eq!(type_of(&t, "</s>"), TokenType::Normal, "{key}");
    }
    let t = load(&tokens, &[("eos_token_id", 0)]);
    assert_eq!(eog(&t), ["a", "</s>"]);
    assert_eq!(type_of(&t, "</s>"), TokenType::Control);
}
