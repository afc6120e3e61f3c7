//! Token-exact parity with llama.cpp on vocabularies that need no model: WordPiece
//! (`bert`, llama.cpp's ggml-vocab-bert-bge.gguf) and Gemma 4 (`gemma4`, a subset of
//! llama.cpp's ggml-vocab-gemma-4.gguf, and a tiny vocabulary whose newline runs are
//! tokens no merge makes). Each directory under tests/fixtures/tokenizer/
//! holds the vocabulary (vocab.gguf), llama.cpp's ids for texts in the four
//! (add_special, parse_special) modes and its `llama_detokenize` of those ids in the four
//! (remove_special, unparse_special) modes (tokenize.jsonl), and its
//! `llama_token_to_piece` of a sample of tokens (pieces.jsonl); see
//! scripts/gen-tokenizer-fixtures.py. Also: the WordPiece vocabulary with its
//! BertNormalizer keys set (bert-bge-normalizer), and tiny SentencePiece and BPE
//! vocabularies in which llama.cpp makes `</s>` a normal token or not (eos-s), and a tiny
//! Phi-3-like SentencePiece vocabulary under names llama.cpp does or does not read as
//! Phi-3's (phi3-rstrip), and a tiny byte-level BPE vocabulary whose mask tokens strip the
//! whitespace before them for some pre-tokenizers and model names (mask-lstrip).

mod common;
mod tokenizer_common;

use tokenizer_common::{ids, read_jsonl};

use std::collections::BTreeMap;

use rocmforge::gguf::{GgufWriter, OwnedGguf, OwnedValue};
use rocmforge::tokenizer::{TokenType, Tokenizer, TokenizerKind};

const BERT: &str = "tokenizer/bert-bge";
const GEMMA4: &str = "tokenizer/gemma4";
const GEMMA4_NEWLINES: &str = "tokenizer/gemma4-newlines";
const BERT_NORMALIZER: &str = "tokenizer/bert-bge-normalizer";
const EOS_S: &str = "tokenizer/eos-s";

/// The (remove_special, unparse_special) order of each line's `detokenize` list.
const DETOKENIZE_MODES: [(bool, bool); 4] =
    [(false, false), (true, false), (false, true), (true, true)];

fn load(dir: &str) -> Tokenizer {
    load_file(&format!("{dir}/vocab.gguf"))
}

fn load_file(relative: &str) -> Tokenizer {
    let path = common::fixture_path(relative);
    let gguf = OwnedGguf::open(&path).expect("vocabulary opens");
    Tokenizer::from_gguf(gguf.file()).expect("tokenizer builds")
}

fn flag(v: &serde_json::Value, key: &str) -> bool {
    v[key].as_bool().expect(key)
}

/// Counts passes per mode, prints them, and fails listing every mismatch.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, mode: String, pass: bool, failure: impl FnOnce() -> String) {
        let entry = self.counts.entry(mode).or_default();
        entry.1 += 1;
        if pass {
            entry.0 += 1;
        } else {
            self.failures.push(failure());
        }
    }

    fn finish(self, what: &str) {
        let total: usize = self.counts.values().map(|c| c.1).sum();
        for (mode, (pass, n)) in &self.counts {
            println!("{what} {mode}: {pass}/{n} lines equal to llama.cpp");
        }
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {total} differ:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn check_tokens(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/tokenize.jsonl")) {
        check_line(&mut tally, &tokenizer, &line, "", |add, parse| {
            format!("add_special={add} parse_special={parse}")
        });
    }
    tally.finish(&format!("{dir} tokenize"));
}

/// Tokenizes the `text` of a tokenize.jsonl line in its mode and records whether that
/// gives its `ids`, under the mode `mode` names; `what` leads a failure's report.
fn check_line(
    tally: &mut Tally,
    tokenizer: &Tokenizer,
    line: &serde_json::Value,
    what: &str,
    mode: impl FnOnce(bool, bool) -> String,
) {
    let text = line["text"].as_str().expect("text");
    let (add, parse) = (flag(line, "add_special"), flag(line, "parse_special"));
    let expected = ids(&line["ids"]);
    let got = tokenizer.tokenize(text, add, parse);
    let pass = got.as_ref().is_ok_and(|got| *got == expected);
    tally.record(mode(add, parse), pass, || {
        format!("{what}{text:?} ({add}, {parse})\n  expected {expected:?}\n  got      {got:?}")
    });
}

/// Detokenizes llama.cpp's ids (not ours), so that this checks detokenizing alone.
fn check_detokenize(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/tokenize.jsonl")) {
        let ids = ids(&line["ids"]);
        let texts = line["detokenize"].as_array().expect("detokenize list");
        for (&(remove, unparse), expected) in DETOKENIZE_MODES.iter().zip(texts) {
            let expected = expected.as_str().expect("detokenized text");
            let got = tokenizer.detokenize(&ids, remove, unparse);
            let pass = got.as_deref().is_ok_and(|got| got == expected.as_bytes());
            tally.record(
                format!("remove_special={remove} unparse_special={unparse}"),
                pass,
                || format!("{ids:?} ({remove}, {unparse})\n  expected {expected:?}\n  got {got:?}"),
            );
        }
    }
    tally.finish(&format!("{dir} detokenize"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_pieces(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/pieces.jsonl")) {
        let id = u32::try_from(line["id"].as_u64().expect("id")).expect("32-bit id");
        for (special, key) in [(false, "plain"), (true, "special")] {
            let expected = line[key].as_str().expect("piece");
            let got = tokenizer.token_to_piece(id, special).map(hex);
            let pass = got.as_deref().is_ok_and(|got| got == expected);
            tally.record(format!("special={special}"), pass, || {
                format!("token {id} (special={special}): expected {expected} got {got:?}")
            });
        }
    }
    tally.finish(&format!("{dir} token_to_piece"));
}

#[test]
fn wordpiece_tokens_match_llama_cpp() {
    check_tokens(BERT);
}

#[test]
fn wordpiece_detokenizes_like_llama_cpp() {
    check_detokenize(BERT);
}

#[test]
fn wordpiece_pieces_match_llama_cpp() {
    check_pieces(BERT);
}

#[test]
fn gemma4_tokens_match_llama_cpp() {
    check_tokens(GEMMA4);
}

#[test]
fn gemma4_detokenizes_like_llama_cpp() {
    check_detokenize(GEMMA4);
}

#[test]
fn gemma4_pieces_match_llama_cpp() {
    check_pieces(GEMMA4);
}

/// A run of newlines that is a token is taken whole, not merged; everything else is
/// byte fallback.
#[test]
fn gemma4_newline_runs_match_llama_cpp() {
    check_tokens(GEMMA4_NEWLINES);
    check_detokenize(GEMMA4_NEWLINES);
    check_pieces(GEMMA4_NEWLINES);
}

/// WordPiece marks a word's first piece with `▁` (from BERT's pieces without `##`), so
/// detokenizing writes a space before each word, and `add_special` wraps the text in
/// `[CLS]` ... `[SEP]`, of which only `[CLS]` is dropped by `remove_special`.
#[test]
fn wordpiece_defaults() {
    let tokenizer = load(BERT);
    assert_eq!(tokenizer.kind(), TokenizerKind::WordPiece);
    assert!(tokenizer.add_bos() && !tokenizer.add_eos());
    let ids = tokenizer
        .tokenize("Unaffable, ÄPFEL!", true, false)
        .expect("tokenizes");
    let text = |id| tokenizer.vocab().text(id).expect("in the vocabulary");
    let texts: Vec<&str> = ids.iter().map(|&id| text(id)).collect();
    // As llama.cpp tokenizes it: "ffa" and "ble" continue "▁una".
    assert_eq!(
        texts,
        [
            "[CLS]", "▁una", "ffa", "ble", "▁,", "▁ap", "fe", "l", "▁!", "[SEP]"
        ]
    );
    let back = tokenizer
        .detokenize_lossy(&ids, true, false)
        .expect("detokenizes");
    assert_eq!(back, " unaffable, apfel!");
}

/// Gemma 4 always starts with BOS, writes spaces as `▁`, and keeps `</s>` as text.
#[test]
fn gemma4_defaults() {
    let tokenizer = load(GEMMA4);
    assert_eq!(tokenizer.kind(), TokenizerKind::Gemma4);
    assert!(tokenizer.add_bos());
    let ids = tokenizer
        .tokenize("a b</s>", true, true)
        .expect("tokenizes");
    assert_eq!(ids.first().copied(), tokenizer.specials().bos);
    assert!(
        ids.iter()
            .all(|&id| !tokenizer.is_control(id) || id == ids[0])
    );
    let back = tokenizer
        .detokenize_lossy(&ids, true, true)
        .expect("detokenizes");
    assert_eq!(back, "a b</s>");
}

const LOWERCASE_KEY: &str = "tokenizer.ggml.normalizer.lowercase";
const STRIP_ACCENTS_KEY: &str = "tokenizer.ggml.normalizer.strip_accents";

/// The WordPiece vocabulary with the normalizer keys set as given (`None`: left out),
/// written as a GGUF file and read back, as llama.cpp read it.
fn bert_with(lowercase: Option<bool>, strip_accents: Option<bool>) -> Tokenizer {
    let path = common::fixture_path(&format!("{BERT}/vocab.gguf"));
    let source = OwnedGguf::open(&path).expect("vocabulary opens");
    let mut w = GgufWriter::new();
    for entry in source.file().metadata() {
        if entry.key != LOWERCASE_KEY && entry.key != STRIP_ACCENTS_KEY {
            w.add_metadata(entry.key, entry.value.to_owned_value())
                .expect("metadata copies");
        }
    }
    for (key, value) in [
        (LOWERCASE_KEY, lowercase),
        (STRIP_ACCENTS_KEY, strip_accents),
    ] {
        if let Some(v) = value {
            w.add_metadata(key, OwnedValue::Bool(v)).expect("flag");
        }
    }
    let file = OwnedGguf::from_buffer(w.to_bytes()).expect("vocabulary parses");
    Tokenizer::from_gguf(file.file()).expect("tokenizer builds")
}

/// `tokenizer.ggml.normalizer.lowercase` and `.strip_accents` (llama.cpp reads both;
/// strip_accents defaults to lowercase, lowercase to true) change WordPiece's words as
/// they change llama.cpp's.
#[test]
fn wordpiece_normalizer_keys_match_llama_cpp() {
    let mut tally = Tally::default();
    let mut tokenizers: BTreeMap<(Option<bool>, Option<bool>), Tokenizer> = BTreeMap::new();
    for line in read_jsonl(&format!("{BERT_NORMALIZER}/tokenize.jsonl")) {
        let lowercase = line["lowercase"].as_bool();
        let strip_accents = line["strip_accents"].as_bool();
        let tokenizer = tokenizers
            .entry((lowercase, strip_accents))
            .or_insert_with(|| bert_with(lowercase, strip_accents));
        let setting = format!("lowercase={lowercase:?} strip_accents={strip_accents:?}");
        check_line(
            &mut tally,
            tokenizer,
            &line,
            &format!("{setting}: "),
            |_, _| setting.clone(),
        );
    }
    assert_eq!(tokenizers.len(), 5, "every setting of the keys is checked");
    tally.finish(BERT_NORMALIZER);
}

/// llama.cpp makes `</s>` a normal token, and no end of generation, where its
/// end-of-generation list also holds Gemma 4's `<|tool_response>` or PLaMo's
/// `<|plamo:eos|>`, whatever the tokenizer, and elsewhere ends generation on its text,
/// the EOS or not: SentencePiece and BPE vocabularies (`</s>` the EOS in the first) with
/// and without those tokens.
#[test]
fn eos_s_is_normal_where_llama_cpp_makes_it_so() {
    let mut tally = Tally::default();
    let mut tokenizers: BTreeMap<String, Tokenizer> = BTreeMap::new();
    let mut normal = Vec::new();
    for line in read_jsonl(&format!("{EOS_S}/tokenize.jsonl")) {
        let name = line["vocab"].as_str().expect("vocab").to_owned();
        let tokenizer = tokenizers
            .entry(name.clone())
            .or_insert_with(|| load_file(&format!("{EOS_S}/{name}.gguf")));
        if line["text"].is_string() {
            check_line(
                &mut tally,
                tokenizer,
                &line,
                &format!("{name}: "),
                |_, _| format!("{name} tokenize"),
            );
            continue;
        }
        let s = u32::try_from(line["s_id"].as_u64().expect("s_id")).expect("id");
        assert_eq!(tokenizer.vocab().text(s), Some("</s>"));
        // llama.cpp's attributes: 4 normal, 8 control.
        let attr = line["s_attr"].as_u64().expect("s_attr");
        let ty = tokenizer.vocab().token_type(s).expect("a token");
        let expected_ty = match attr {
            4 => TokenType::Normal,
            8 => TokenType::Control,
            other => panic!("{name}: attribute {other}"),
        };
        tally.record(format!("{name} type"), ty == expected_ty, || {
            format!("{name}: </s> is {ty:?}, llama.cpp's attribute {attr}")
        });
        if ty == TokenType::Normal {
            normal.push(name.clone());
        }
        let expected_eog = line["s_is_eog"].as_bool().expect("s_is_eog");
        let eog = tokenizer.is_end_of_generation(s);
        tally.record(
            format!("{name} end of generation"),
            eog == expected_eog,
            || format!("{name}: </s> ends generation: {eog}, in llama.cpp {expected_eog}"),
        );
        for (special, key) in [(false, "s_plain"), (true, "s_special")] {
            let expected = line[key].as_str().expect("piece");
            let got = tokenizer.token_to_piece(s, special).map(hex);
            let pass = got.as_deref().is_ok_and(|got| got == expected);
            tally.record(format!("{name} piece"), pass, || {
                format!("{name}: </s> (special={special}): expected {expected} got {got:?}")
            });
        }
    }
    tally.finish(EOS_S);
    assert_eq!(
        normal,
        ["spm-tool-response", "bpe-tool-response", "bpe-plamo-eos"],
        "the vocabularies with a normal </s>"
    );
}

const PHI3_RSTRIP: &str = "tokenizer/phi3-rstrip";

/// A tiny SentencePiece vocabulary shaped like Phi-3's (`<unk>`, `<s>`, `</s>`, byte
/// tokens, a few pieces, the control tokens `<|endoftext|>`, `<|user|>`, `<|end|>`,
/// `<|assistant|>` and a user-defined `<|mine|>`), named `name`. Written the same way
/// (from llama.cpp's ggml-vocab-phi-3.gguf, its tokens replaced by these) for the
/// fixture's llama.cpp answers.
fn phi3_like(name: &str) -> Tokenizer {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).into();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(["▁", "H", "i", "▁H", "▁Hi"].map(String::from));
    let specials = [
        "<|endoftext|>",
        "<|user|>",
        "<|end|>",
        "<|assistant|>",
        "<|mine|>",
    ];
    tokens.extend(specials.map(String::from));
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    types.extend([1, 1, 1, 1, 1, 3, 3, 3, 3, 4]);
    let mut scores = vec![0.0; 259];
    scores.extend([-1.0, -2.0, -3.0, -1.5, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    from_metadata(vec![
        ("general.architecture", OwnedValue::String("phi3".into())),
        ("general.name", OwnedValue::String(name.into())),
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("default".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        ("tokenizer.ggml.scores", OwnedValue::f32_array(scores)),
        ("tokenizer.ggml.bos_token_id", OwnedValue::U32(1)),
        ("tokenizer.ggml.eos_token_id", OwnedValue::U32(264)),
        ("tokenizer.ggml.unknown_token_id", OwnedValue::U32(0)),
        ("tokenizer.ggml.padding_token_id", OwnedValue::U32(264)),
        ("tokenizer.ggml.add_bos_token", OwnedValue::Bool(true)),
        ("tokenizer.ggml.add_eos_token", OwnedValue::Bool(false)),
    ])
}

/// The tokenizer of a GGUF file holding this metadata.
fn from_metadata(kv: Vec<(&str, OwnedValue)>) -> Tokenizer {
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_metadata(k, v).expect("metadata is well-formed");
    }
    let bytes = w.to_bytes();
    let file = rocmforge::gguf::GgufFile::parse(&bytes).expect("file parses");
    Tokenizer::from_gguf(&file).expect("tokenizer builds")
}

/// llama.cpp gives the special tokens of a model whose `general.name` says Phi-3 the
/// RSTRIP attribute (except `<unk>`, `<s>` and `<|endoftext|>`; `</s>` too): the
/// whitespace after them is dropped, so Phi-3's own chat markup `<|user|>\nHi` is
/// `<|user|>` then `▁Hi`. Phi 3.5's name does not say "phi-3" or "phi3", so it keeps its
/// whitespace.
#[test]
fn phi3_special_tokens_strip_the_whitespace_after_them_as_in_llama_cpp() {
    let mut tally = Tally::default();
    let mut tokenizers: BTreeMap<String, Tokenizer> = BTreeMap::new();
    for line in read_jsonl(&format!("{PHI3_RSTRIP}/tokenize.jsonl")) {
        let name = line["name"].as_str().expect("name").to_owned();
        let tokenizer = tokenizers
            .entry(name.clone())
            .or_insert_with(|| phi3_like(&name));
        check_line(
            &mut tally,
            tokenizer,
            &line,
            &format!("{name}: "),
            |add, parse| format!("{name} add_special={add} parse_special={parse}"),
        );
    }
    tally.finish(PHI3_RSTRIP);
}

const MASK_LSTRIP: &str = "tokenizer/mask-lstrip";

/// GPT-2's 256 byte symbols in its vocabulary's order (the printable bytes, then the
/// others from U+0100), the user-defined `<mask>` and `[MASK]`, `<|endoftext|>` and ` a`,
/// with this pre-tokenizer and `general.name`. The fixture's llama.cpp answers come from the
/// same vocabulary written from llama.cpp's ggml-vocab-gpt-2.gguf.
fn mask_vocab(pre: &str, name: &str) -> Tokenizer {
    let printable = (0x21..=0x7e).chain(0xa1..=0xac).chain(0xae..=0xff);
    let mut tokens: Vec<String> = printable
        .chain(0x100..0x144)
        .filter_map(char::from_u32)
        .map(String::from)
        .collect();
    tokens.extend(["<mask>", "[MASK]", "<|endoftext|>", "Ġa"].map(String::from));
    let mut types = vec![1; 256];
    types.extend([4, 4, 3, 1]);
    from_metadata(vec![
        ("general.architecture", OwnedValue::String("gpt2".into())),
        ("general.name", OwnedValue::String(name.into())),
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String(pre.into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        ("tokenizer.ggml.merges", OwnedValue::string_array(["Ġ a"])),
        ("tokenizer.ggml.bos_token_id", OwnedValue::U32(258)),
        ("tokenizer.ggml.eos_token_id", OwnedValue::U32(258)),
    ])
}

/// llama.cpp strips the whitespace before `<mask>` where the pre-tokenizer is one of
/// jina-v2's, and before `[MASK]` where `general.name` says ModernBERT.
#[test]
fn mask_tokens_strip_the_whitespace_before_them_as_in_llama_cpp() {
    let mut tally = Tally::default();
    let mut tokenizers: BTreeMap<(String, String), Tokenizer> = BTreeMap::new();
    for line in read_jsonl(&format!("{MASK_LSTRIP}/tokenize.jsonl")) {
        let pre = line["pre"].as_str().expect("pre").to_owned();
        let name = line["name"].as_str().expect("name").to_owned();
        let what = format!("{pre} {name}");
        let tokenizer = tokenizers
            .entry((pre.clone(), name.clone()))
            .or_insert_with(|| mask_vocab(&pre, &name));
        check_line(
            &mut tally,
            tokenizer,
            &line,
            &format!("{what}: "),
            |add, parse| format!("{what} add_special={add} parse_special={parse}"),
        );
    }
    tally.finish(MASK_LSTRIP);
}
