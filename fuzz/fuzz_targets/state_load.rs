//! `rf_state_seq_load` on any blob of a tiny Gemma 3 model (see `state_blob`), its
//! checksum rewritten so that mutations reach the header, token and K/V checks. Each blob
//! goes into a window-cache context and a `swa_full` one (in the blob's K/V type) beside
//! another sequence.
//!
//! Checks: a load succeeds or is refused as `RF_ERR_INVALID_ARGUMENT` or
//! `RF_ERR_CONTEXT_FULL`; a refused one leaves the sequence empty and the other sequence
//! as it was; a loaded one ends at the blob's last position, and what the context saves
//! of it loads again into a third sequence with the same logits, bit for bit; the
//! sequence then decodes on (or its context is full).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rocmforge::ffi::*;
use rocmforge_fuzz::host::{abort_on_panic, last_error, leak, load_model};
use rocmforge_fuzz::state_blob::{StateContext, kv_type_of, last_position, model_bytes, sealed};

const LOADED: i32 = 0;
const BYSTANDER: i32 = 1;
const RELOADED: i32 = 2;
const BYSTANDER_TOKENS: [i32; 3] = [116, 104, 101];

struct Fixture(*mut rf_model);

// SAFETY: an `rf_model` is immutable and may be shared by any number of threads (the C
// API's promise); the fixture is never freed.
unsafe impl Sync for Fixture {}
// SAFETY: as above.
unsafe impl Send for Fixture {}

fn model() -> *mut rf_model {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            abort_on_panic();
            let bytes = model_bytes().expect("the state model");
            Fixture(load_model(leak(bytes), false).expect("the state model loads"))
        })
        .0
}

fn load_into(ctx: &mut StateContext, blob: &[u8]) {
    assert_eq!(ctx.decode(BYSTANDER, &BYSTANDER_TOKENS), rf_status::RF_OK);
    let bystander_end = ctx.pos_max(BYSTANDER);
    let status = ctx.load(LOADED, blob);
    assert_eq!(
        ctx.pos_max(BYSTANDER),
        bystander_end,
        "a load into another sequence left this one alone"
    );
    match status {
        rf_status::RF_OK => {}
        rf_status::RF_ERR_INVALID_ARGUMENT | rf_status::RF_ERR_CONTEXT_FULL => {
            assert_eq!(ctx.pos_max(LOADED), -1, "a refused load leaves nothing");
            return;
        }
        other => panic!("a load gave {other:?}: {}", last_error()),
    }
    let (n_tokens, last) = last_position(blob).expect("a loaded blob has a header");
    assert_eq!(
        ctx.pos_max(LOADED),
        last,
        "the sequence ends where the blob does"
    );
    if n_tokens == 0 {
        return;
    }
    let logits = ctx.last_logits();
    let saved = ctx.save(LOADED);
    match ctx.load(RELOADED, &saved) {
        rf_status::RF_OK => assert!(
            ctx.last_logits()
                .iter()
                .zip(&logits)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the state saved from a loaded one gives the same logits"
        ),
        rf_status::RF_ERR_CONTEXT_FULL => {}
        other => panic!(
            "what the context saved loads again, not {other:?}: {}",
            last_error()
        ),
    }
    let status = ctx.decode(LOADED, &BYSTANDER_TOKENS[..1]);
    assert!(
        matches!(status, rf_status::RF_OK | rf_status::RF_ERR_CONTEXT_FULL),
        "decoding after a load gave {status:?}: {}",
        last_error()
    );
}

fuzz_target!(|data: &[u8]| {
    let model = model();
    let blob = sealed(data);
    for swa_full in [false, true] {
        // SAFETY: the fixture's model is never freed.
        let mut ctx = unsafe { StateContext::new(model, kv_type_of(&blob), swa_full) };
        load_into(&mut ctx, &blob);
    }
});
