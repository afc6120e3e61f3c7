//! WordPiece (BERT, `tokenizer.ggml.model = bert`) as llama.cpp's WPM tokenizer does it.
//!
//! The text is normalized and cut into words: whitespace ends a word; NUL, U+FFFD and
//! control characters vanish; punctuation, ASCII symbols and CJK ideographs are words of
//! their own. With `strip_accents` each character first becomes the first code point of
//! its decomposition and marks vanish; with `lowercase` it is lowercased (both one code
//! point to one, as llama.cpp's tables are). Each word, written with a leading `▁` (the
//! converter marks word starts that way and drops WordPiece's `##`), is spelled greedily
//! with the longest token at each position; a word that cannot be spelled to its end
//! becomes the unknown token.
//!
//! llama.cpp tries every length from the longest token's down at each position, hashing
//! each candidate: quadratic in the word and the longest token. Here the spelling walks a
//! byte trie of the vocabulary once over the word, with failure links as in Fast
//! WordPiece (Song et al., 2021, "LinMaxMatch"): where no token continues the bytes read
//! since the last token, the tokens that the greedy longest match would have taken from
//! them are precomputed, and so is the trie node of the bytes it would have left. The
//! output is the same, in time linear in the word, and the tables are linear in the
//! vocabulary's bytes.

use super::spm::SPACE_MARK;
use super::unicode::{class_of, nfd_first, to_lower};
use super::vocab::{TokenId, Vocab};
use crate::error::{Error, Result};
use crate::host_memory;
use rustc_hash::FxHashMap;

#[derive(Debug, Clone)]
pub struct WordPiece {
    trie: Trie,
    lowercase: bool,
    strip_accents: bool,
    unk: Option<TokenId>,
}

/// No node: a failure link that ends the spelling.
const NONE: u32 = u32::MAX;
const ROOT: u32 = 0;

/// What the word buffer is called in an out-of-memory error.
const WORD: &str = "a WordPiece word";

/// The vocabulary's texts as a byte trie with, for each node, what the greedy longest
/// match does when no token continues it.
#[derive(Debug, Clone)]
struct Trie {
    /// (node, byte) to the child node.
    children: FxHashMap<(u32, u8), u32>,
    /// Per node: the node of the bytes left once the greedy match has taken the tokens
    /// of `pops[node]` from the node's bytes, or NONE where the greedy match fails
    /// within them.
    fail: Vec<u32>,
    /// Per node: the index in `pops` of the tokens taken on failure (unused where
    /// `fail` is NONE).
    pops: Vec<u32>,
    /// The token sequences: one token, or the concatenation of earlier sequences.
    seqs: Vec<Seq>,
    /// The parts of the concatenations (indices in `seqs`).
    parts: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Seq {
    Token(TokenId),
    /// `parts[start..start + len]`, at least two.
    Concat {
        start: u32,
        len: u32,
    },
}

/// How a character of the input takes part in the words.
enum Role {
    /// Ends the word before it (whitespace).
    Break,
    /// Dropped.
    Skip,
    /// A word by itself.
    Alone(char),
    /// Continues the current word.
    Part(char),
}

impl WordPiece {
    /// `lowercase` and `strip_accents` are the BertNormalizer options of the vocabulary.
    pub fn new(vocab: &Vocab, lowercase: bool, strip_accents: bool) -> Result<WordPiece> {
        Ok(WordPiece {
            trie: Trie::new(vocab)?,
            lowercase,
            strip_accents,
            unk: vocab.specials.unk,
        })
    }

    fn role(&self, c: char) -> Role {
        let c = if self.strip_accents { nfd_first(c) } else { c };
        let class = class_of(c);
        if class.is_whitespace() {
            return Role::Break;
        }
        let flags = class.flags;
        if c == '\0' || c == '\u{FFFD}' || flags.is_control() {
            return Role::Skip;
        }
        if self.strip_accents && flags.is_mark() {
            return Role::Skip;
        }
        let written = if self.lowercase { to_lower(c) } else { c };
        if flags.is_punctuation() || (c < '\x7f' && flags.is_symbol()) || is_cjk_ideograph(c) {
            Role::Alone(written)
        } else {
            Role::Part(written)
        }
    }

    /// Appends the tokens of `text`, a stretch between special tokens, to `out`.
    pub fn encode(&self, text: &str, word: &mut String, out: &mut Vec<TokenId>) -> Result<()> {
        word.clear();
        word.push_str(SPACE_MARK);
        for c in text.chars() {
            match self.role(c) {
                Role::Break => self.finish(word, out)?,
                Role::Skip => {}
                Role::Alone(c) => {
                    self.finish(word, out)?;
                    host_memory::push_char(word, c, WORD)?;
                    self.finish(word, out)?;
                }
                Role::Part(c) => host_memory::push_char(word, c, WORD)?,
            }
        }
        self.finish(word, out)
    }

    /// Spells the word collected in `word` (after its `▁`), if any, and starts the next.
    fn finish(&self, word: &mut String, out: &mut Vec<TokenId>) -> Result<()> {
        if word.len() > SPACE_MARK.len() {
            self.spell(word, out)?;
            word.truncate(SPACE_MARK.len());
        }
        Ok(())
    }

    /// The longest token at each position, left to right; the unknown token for a word
    /// with a position where no token starts.
    fn spell(&self, word: &str, out: &mut Vec<TokenId>) -> Result<()> {
        let before = out.len();
        if self.trie.spell(word.as_bytes(), out).is_none() {
            out.truncate(before);
            let unk = self.unk.ok_or_else(|| {
                Error::InvalidVocab(format!(
                    "the word {:?} has no spelling and the vocabulary no unknown token",
                    &word[SPACE_MARK.len()..]
                ))
            })?;
            out.push(unk);
        }
        Ok(())
    }
}

impl Trie {
    fn new(vocab: &Vocab) -> Result<Trie> {
        const WHAT: &str = "the WordPiece trie";
        let too_big = || Error::InvalidVocab("the vocabulary's texts are too long".into());
        // One node per byte of the texts at most, and the root.
        let bytes: usize = vocab.iter().map(|(_, t, _)| t.len()).sum();
        let max_nodes = bytes.checked_add(1).ok_or_else(too_big)?;
        if u32::try_from(max_nodes).map_or(true, |n| n == NONE) {
            return Err(too_big());
        }
        let mut children = FxHashMap::default();
        children
            .try_reserve(bytes)
            .map_err(|_| Error::OutOfMemory(format!("{WHAT} needs room for {bytes} edges")))?;
        // Per node: its parent, the byte from it, its depth and its token.
        let mut parent: Vec<u32> = Vec::new();
        let mut byte: Vec<u8> = Vec::new();
        let mut depth: Vec<u32> = Vec::new();
        let mut token: Vec<TokenId> = Vec::new();
        host_memory::reserve(&mut parent, max_nodes, WHAT)?;
        host_memory::reserve(&mut byte, max_nodes, WHAT)?;
        host_memory::reserve(&mut depth, max_nodes, WHAT)?;
        host_memory::reserve(&mut token, max_nodes, WHAT)?;
        parent.push(NONE);
        byte.push(0);
        depth.push(0);
        token.push(NONE);
        for (id, text, _) in vocab.iter() {
            let mut node = ROOT;
            for &b in text.as_bytes() {
                node = match children.get(&(node, b)) {
                    Some(&child) => child,
                    None => {
                        let child = parent.len() as u32;
                        children.insert((node, b), child);
                        parent.push(node);
                        byte.push(b);
                        depth.push(depth[node as usize] + 1);
                        token.push(NONE);
                        child
                    }
                };
            }
            // Texts are distinct and never empty (the vocabulary sees to both).
            token[node as usize] = id;
        }
        let n = parent.len();

        // The nodes by depth (counting sort), so that a node's parent and every node its
        // failure chain visits (all shallower) are done before it.
        let max_depth = depth.iter().copied().max().unwrap_or(0) as usize;
        let mut starts = host_memory::filled_vec(max_depth + 2, 0u32, WHAT)?;
        for &d in &depth {
            starts[d as usize + 1] += 1;
        }
        for d in 1..starts.len() {
            starts[d] += starts[d - 1];
        }
        let mut order = host_memory::filled_vec(n, ROOT, WHAT)?;
        for (node, &d) in depth.iter().enumerate() {
            let slot = &mut starts[d as usize];
            order[*slot as usize] = node as u32;
            *slot += 1;
        }
        drop(depth);

        let mut fail = host_memory::filled_vec(n, NONE, WHAT)?;
        let mut pops = host_memory::filled_vec(n, 0u32, WHAT)?;
        let mut seqs: Vec<Seq> = Vec::new();
        let mut parts: Vec<u32> = Vec::new();
        let mut chain: Vec<u32> = Vec::new();
        for &v in order.iter().skip(1) {
            let v = v as usize;
            if token[v] != NONE {
                // A token: the greedy match takes it whole and starts afresh.
                host_memory::reserve(&mut seqs, 1, WHAT)?;
                pops[v] = seqs.len() as u32;
                seqs.push(Seq::Token(token[v]));
                fail[v] = ROOT;
                continue;
            }
            // The parent's bytes less its tokens are the bytes of `fail[u]`; with this
            // node's byte, follow failures until a node continues with it.
            let u = parent[v] as usize;
            let b = byte[v];
            let mut z = fail[u];
            chain.clear();
            while z != NONE {
                if let Some(&w) = children.get(&(z, b)) {
                    fail[v] = w;
                    break;
                }
                host_memory::reserve(&mut chain, 1, WHAT)?;
                chain.push(pops[z as usize]);
                z = fail[z as usize];
            }
            if fail[v] == NONE {
                continue;
            }
            if chain.is_empty() {
                pops[v] = pops[u];
            } else {
                host_memory::reserve(&mut parts, chain.len() + 1, WHAT)?;
                host_memory::reserve(&mut seqs, 1, WHAT)?;
                let start = parts.len() as u32;
                parts.push(pops[u]);
                parts.extend_from_slice(&chain);
                pops[v] = seqs.len() as u32;
                seqs.push(Seq::Concat {
                    start,
                    len: chain.len() as u32 + 1,
                });
            }
        }
        Ok(Trie {
            children,
            fail,
            pops,
            seqs,
            parts,
        })
    }

    /// Appends the greedy longest-match spelling of `word` to `out`; `None` (with some
    /// tokens appended) where a position has no token.
    fn spell(&self, word: &[u8], out: &mut Vec<TokenId>) -> Option<()> {
        let mut stack = Vec::new();
        let mut node = ROOT;
        for &b in word {
            loop {
                if let Some(&child) = self.children.get(&(node, b)) {
                    node = child;
                    break;
                }
                node = self.pop(node, out, &mut stack)?;
            }
        }
        while node != ROOT {
            node = self.pop(node, out, &mut stack)?;
        }
        Some(())
    }

    /// Appends the tokens the greedy match takes at `node`; the node it goes on from.
    fn pop(&self, node: u32, out: &mut Vec<TokenId>, stack: &mut Vec<u32>) -> Option<u32> {
        let next = self.fail[node as usize];
        if next == NONE {
            return None;
        }
        stack.push(self.pops[node as usize]);
        while let Some(seq) = stack.pop() {
            match self.seqs[seq as usize] {
                Seq::Token(id) => out.push(id),
                Seq::Concat { start, len } => {
                    let parts = &self.parts[start as usize..(start + len) as usize];
                    stack.extend(parts.iter().rev());
                }
            }
        }
        Some(next)
    }
}

/// The ideograph blocks that BERT's tokenizer isolates. The fifth range starts at
/// U+2B920 where the Unicode block starts at U+2B820: Hugging Face's code says so, and
/// llama.cpp follows it.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::VocabParts;
    use crate::tokenizer::vocab::DefaultIds;

    fn vocab(tokens: &[String]) -> Vocab {
        let parts = VocabParts {
            model: "bert".into(),
            tokens: tokens.to_vec(),
            ..VocabParts::default()
        };
        let defaults = DefaultIds {
            bos: None,
            eos: None,
            unk: None,
            sep: None,
        };
        Vocab::new(&parts, defaults).expect("vocabulary")
    }

    /// llama.cpp's search: every length from the longest token's down, at each position.
    fn naive(vocab: &Vocab, word: &[u8]) -> Option<Vec<TokenId>> {
        let longest = vocab.iter().map(|(_, t, _)| t.len()).max().unwrap_or(0);
        let mut out = Vec::new();
        let mut at = 0;
        while at < word.len() {
            let rest = &word[at..];
            let (id, len) = (1..=rest.len().min(longest))
                .rev()
                .find_map(|end| vocab.id_of(&rest[..end]).map(|id| (id, end)))?;
            out.push(id);
            at += len;
        }
        Some(out)
    }

    fn trie_spelling(trie: &Trie, word: &[u8]) -> Option<Vec<TokenId>> {
        let mut out = Vec::new();
        trie.spell(word, &mut out).map(|()| out)
    }

    /// Random vocabularies over a three-letter alphabet and random words: the trie with
    /// failure links spells every word as the longest-first search does.
    #[test]
    fn trie_spells_as_the_longest_first_search() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut spelled = 0;
        for _ in 0..300 {
            let mut tokens: Vec<String> = Vec::new();
            for _ in 0..1 + next(12) {
                let len = 1 + next(6);
                let t: String = (0..len).map(|_| (b'a' + next(3) as u8) as char).collect();
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let vocab = vocab(&tokens);
            let trie = Trie::new(&vocab).expect("trie");
            for _ in 0..40 {
                let len = next(16);
                let word: Vec<u8> = (0..len).map(|_| b'a' + next(3) as u8).collect();
                let expected = naive(&vocab, &word);
                spelled += usize::from(expected.is_some());
                assert_eq!(
                    trie_spelling(&trie, &word),
                    expected,
                    "tokens {tokens:?}, word {:?}",
                    String::from_utf8_lossy(&word)
                );
            }
        }
        // Both outcomes are exercised.
        assert!(spelled > 1000 && spelled < 12000, "{spelled} spelled");
    }

    /// Multi-byte characters: tokens that share a character's first bytes.
    #[test]
    fn trie_spells_multibyte_words() {
        let tokens: Vec<String> = ["▁", "é", "▁é", "éè", "è", "▁éèx", "x"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let vocab = vocab(&tokens);
        let trie = Trie::new(&vocab).expect("trie");
        for word in ["▁éèè", "▁éèxé", "▁éé", "▁x", "▁éèy", "▁"] {
            assert_eq!(
                trie_spelling(&trie, word.as_bytes()),
                naive(&vocab, word.as_bytes()),
                "{word}"
            );
        }
    }
}
