//! The helper thread that computes a constraint's next mask while the host decodes.

use super::reason;
use crate::error::{Error, Result};
use llguidance::Matcher;
use llguidance::toktrie::SimpleVob;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// A matcher and the mask of the tokens it allows next, or why there is none.
pub type Computed = (Box<Matcher>, std::result::Result<SimpleVob, String>);

/// One thread per constraint, parked on a channel between tokens. Dropping the worker
/// closes the channel and joins the thread, so nothing outlives the sampler.
pub struct MaskWorker {
    jobs: Option<Sender<Box<Matcher>>>,
    results: Receiver<Computed>,
    thread: Option<JoinHandle<()>>,
}

impl MaskWorker {
    pub fn start() -> Result<MaskWorker> {
        let (jobs, inbox) = channel::<Box<Matcher>>();
        let (outbox, results) = channel();
        let thread = std::thread::Builder::new()
            .name("rocmforge-grammar".into())
            .spawn(move || {
                // compute_mask catches llguidance's panics: none is printed.
                crate::quiet_panics::quiet_this_thread();
                for mut matcher in inbox {
                    let mask = compute_mask(&mut matcher);
                    if outbox.send((matcher, mask)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::OutOfMemory(format!("starting the grammar's mask thread: {e}")))?;
        Ok(MaskWorker {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }

    /// Hands `matcher` to the thread to compute its next mask; gives it back if the
    /// thread is gone.
    pub fn submit(&self, matcher: Box<Matcher>) -> std::result::Result<(), Box<Matcher>> {
        match &self.jobs {
            Some(jobs) => jobs.send(matcher).map_err(|returned| returned.0),
            None => Err(matcher),
        }
    }

    /// Waits for the matcher last submitted and its mask; `None` if the thread is gone.
    pub fn collect(&self) -> Option<Computed> {
        self.results.recv().ok()
    }
}

impl Drop for MaskWorker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // The thread catches its panics, so joining only waits for it to leave.
            let _ = thread.join();
        }
    }
}

/// The mask of the tokens `matcher` allows next: only the end-of-generation tokens once
/// the grammar has finished. A failure, llguidance panic included, is an error naming
/// llguidance's reason: the first line of its message, without the parser state it dumps
/// after it (for a grammar no token of the vocabulary can continue, `NoExtensionBias` and
/// twenty lines of counters).
pub fn compute_mask(matcher: &mut Matcher) -> std::result::Result<SimpleVob, String> {
    match catch_unwind(AssertUnwindSafe(|| matcher.compute_mask_or_eos())) {
        Ok(Ok(mask)) => Ok(mask),
        Ok(Err(e)) => {
            let reason = reason(&e.to_string());
            let why = if reason.starts_with("NoExtensionBias") {
                "no token of this vocabulary can come next"
            } else {
                "llguidance stopped"
            };
            Err(format!("the grammar cannot continue: {why} ({reason})"))
        }
        Err(_) => Err("the grammar cannot continue: llguidance panicked computing its mask".into()),
    }
}
