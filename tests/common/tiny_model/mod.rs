//! The tiny-model harness: small llama GGUF files built in memory with the project's
//! writer (random weights of every weight type the CPU runs, odd sizes, several K/V-head
//! ratios and head sizes, tied and untied output heads), an independent float64 forward
//! pass to hold them to, and a macro that runs a check on every backend. Nothing is
//! downloaded.
//!
//! A check is a scenario (prefill, decode, sequence operations) written once against
//! [`engine::Engine`]; [`check::check_every_model`] runs it on every tiny model, on the
//! backend and on the backend's oracle, and compares the logits of every step. The
//! `on_every_backend!` macro (in `backends`) makes one test per backend of a check.

pub mod backends;
pub mod check;
pub mod engine;
pub mod reference;
pub mod tolerance;
pub mod variants;
pub mod vocabulary;
