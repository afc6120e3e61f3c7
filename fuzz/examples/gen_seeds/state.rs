//! State seeds: blobs the library saves from the state model's contexts, one for each
//! kind of sequence a host saves: short and past the window, with the window cache and
//! `swa_full`, in every K/V type, empty, with a hole, after a rollback.

use rocmforge::ffi::*;
use rocmforge_fuzz::host::{leak, load_model};
use rocmforge_fuzz::state_blob::{N_BATCH, StateContext, WINDOW, model_bytes};

use super::Seeds;

/// Token ids of the byte-level vocabulary: text, as a host decodes it.
fn text(n: usize) -> Vec<i32> {
    b"the thing about windows is that they slide along"
        .iter()
        .cycle()
        .take(n)
        .map(|&b| i32::from(b))
        .collect()
}

/// What a scenario does to sequence 0 after decoding `n` tokens, before it is saved.
enum After {
    Nothing,
    /// Removes positions [p0, p1).
    Remove(i32, i32),
}

fn saved(model: *const rf_model, kv_type: u32, swa_full: bool, n: usize, after: After) -> Vec<u8> {
    // SAFETY: the model is live for the whole run.
    let mut ctx = unsafe { StateContext::new(model, kv_type, swa_full) };
    for chunk in text(n).chunks(N_BATCH as usize) {
        assert_eq!(ctx.decode(0, chunk), rf_status::RF_OK);
    }
    if let After::Remove(p0, p1) = after {
        assert_eq!(ctx.remove(0, p0, p1), rf_status::RF_OK);
    }
    ctx.save(0)
}

pub fn seeds() -> rocmforge::Result<Seeds> {
    let model = load_model(leak(model_bytes()?), false)
        .map_err(|(_, e)| rocmforge::Error::InvalidModel(e))?;
    let window = WINDOW as usize;
    let past = 2 * window + N_BATCH as usize + 3;
    let scenarios = [
        ("short-f16", RF_KV_F16, false, 5, After::Nothing),
        ("past-window-f16", RF_KV_F16, false, past, After::Nothing),
        (
            "past-window-swa-full",
            RF_KV_F16,
            true,
            past,
            After::Nothing,
        ),
        ("past-window-q8_0", RF_KV_Q8_0, false, past, After::Nothing),
        ("short-f32", RF_KV_F32, false, 3, After::Nothing),
        ("empty", RF_KV_F16, false, 0, After::Nothing),
        ("hole", RF_KV_F16, true, window + 4, After::Remove(2, 5)),
        (
            "rolled-back",
            RF_KV_F16,
            false,
            past,
            After::Remove(past as i32 - 3, -1),
        ),
    ];
    let seeds = scenarios
        .into_iter()
        .map(|(name, kv_type, swa_full, n, after)| {
            (name.to_owned(), saved(model, kv_type, swa_full, n, after))
        })
        .collect();
    // SAFETY: loaded above, freed once, after every context.
    unsafe { rf_model_free(model) };
    Ok(seeds)
}
