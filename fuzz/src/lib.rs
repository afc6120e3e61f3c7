//! What the fuzz targets share: readers of fuzzer bytes (and the writers that turn a
//! scenario into seed bytes), the vocabularies and tiny models built in memory with the
//! library's own GGUF writer, and the C-ABI helpers every target uses.
//!
//! Each target's input format is written down next to its reader, and `gen_seeds`
//! writes the committed seed corpora with the matching writers, so a seed is a scenario
//! that means something (a prefill, a fork, a rollback) for the fuzzer to mutate.

pub mod bytes;
pub mod chat_input;
pub mod decode_program;
pub mod decode_run;
pub mod host;
pub mod kv_shadow;
pub mod models;
pub mod state_blob;
pub mod tokenize_input;
pub mod vocabularies;
