//! The checks a render runs between a template's steps (placed by `rewrite`) and on
//! everything it prints (see `walk`):
//!
//! - before a step that may visit all of a value (printing it, comparing it, `~`, `in`,
//!   a filter, test or call given it), the value is summarized and refused if it is
//!   larger or deeper than a render may handle, and what the step will visit is charged
//!   to the fuel, as minijinja charges its filters: half a fuel per item, a fuel per 64
//!   bytes of text;
//! - a value stored into a namespace is summarized the same way, charged for the items
//!   the walk visits, and may hold no namespace, so that none can come to hold itself;
//! - a lazy view is made a plain list as it is made;
//! - what is printed or captured is counted against the output limit.
//!
//! minijinja knows these checks only as functions that failed; the limit that stopped a
//! render is kept in [`Stop`] so that the render reports it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use minijinja::machinery::make_string_output;
use minijinja::value::Value;
use minijinja::{Environment, Error as JinjaError, ErrorKind, State, escape_formatter};

use super::RenderLimits;
use super::transformers;
use super::walk::{Breach, Known, MAX_DEPTH, Summary, Walk};

/// The function that checks a value a step is about to visit all of and returns it.
/// The names have a space, so no template can name these functions or shadow them.
pub(super) const VISIT: &str = "rocmforge visit";
/// The function that checks a value about to be stored in a namespace and returns it.
pub(super) const STORE: &str = "rocmforge store";
/// The function that returns its argument with a lazy view made a plain list or map.
pub(super) const FLATTEN: &str = "rocmforge flatten";

/// Items visited for one fuel, and bytes of text: minijinja's rates for its filters.
const ITEMS_PER_FUEL: u64 = 2;
const BYTES_PER_FUEL: u64 = 64;

/// Why the first check or write that failed stopped the render.
pub(super) type Stop = Arc<OnceLock<String>>;

/// Adds the guard functions and a formatter that checks and counts what is printed to
/// `env`, for a render of `input` (the messages).
pub(super) fn install(env: &mut Environment<'_>, limits: RenderLimits, input: &Value) -> Stop {
    let stop = Stop::default();
    let guard = Arc::new(Guard {
        limits,
        stop: stop.clone(),
        known: Known::new(input),
        written: AtomicUsize::new(0),
    });
    let visit = guard.clone();
    env.add_function(VISIT, move |state: &State, value: Value| {
        visit.visit(state, &value).map(|()| value)
    });
    let store = guard.clone();
    env.add_function(STORE, move |state: &State, value: Value| {
        if store.summarize(state, &value)?.namespace {
            return Err(store.refuse(
                "chat template stored a namespace in a namespace, where it could come to \
                 hold itself"
                    .into(),
            ));
        }
        Ok(value)
    });
    let flatten = guard.clone();
    env.add_function(FLATTEN, move |state: &State, value: Value| {
        let flat = flatten.walk(state, |walk| walk.flatten(&value))?;
        Ok(flat.unwrap_or(value))
    });
    transformers::install(env, &guard);
    env.set_formatter(move |out, state, value| {
        guard.visit(state, value)?;
        let mut text = String::new();
        escape_formatter(&mut make_string_output(&mut text), state, value)?;
        guard.write(text.len())?;
        out.write_str(&text)
            .map_err(|e| JinjaError::new(ErrorKind::WriteFailure, e.to_string()))
    });
    stop
}

pub(super) struct Guard {
    limits: RenderLimits,
    stop: Stop,
    known: Known,
    /// Bytes printed so far, text captured by `set` blocks and macros included.
    written: AtomicUsize,
}

impl Guard {
    /// Summarizes `value` and charges all of it: a step is about to visit it.
    pub(super) fn visit(&self, state: &State, value: &Value) -> Result<(), JinjaError> {
        let summary = self.summarize(state, value)?;
        state.consume_fuel(
            (summary.items / ITEMS_PER_FUEL).saturating_add(summary.bytes / BYTES_PER_FUEL),
        )
    }

    /// Summarizes `value`, charging the items the walk visits.
    fn summarize(&self, state: &State, value: &Value) -> Result<Summary, JinjaError> {
        self.walk(state, |walk| walk.summarize(value))
    }

    /// Runs `f` on a walk allowed the items the fuel left pays for and the size of the
    /// output limit, then charges the items it visited.
    fn walk<T>(
        &self,
        state: &State,
        f: impl FnOnce(&mut Walk) -> Result<T, Breach>,
    ) -> Result<T, JinjaError> {
        let fuel_left = state.fuel_levels().map_or(u64::MAX, |(_, left)| left);
        let max_size = u64::try_from(self.limits.output_bytes).unwrap_or(u64::MAX);
        let mut walk = Walk::new(
            &self.known,
            fuel_left.saturating_mul(ITEMS_PER_FUEL),
            max_size,
        );
        let result = f(&mut walk);
        state.consume_fuel(walk.visits.div_ceil(ITEMS_PER_FUEL))?;
        let why = match result {
            Ok(value) => return Ok(value),
            Err(Breach::Visits) => {
                // The fuel is spent: charging the rest fails as running out of fuel does.
                state.consume_fuel(u64::MAX)?;
                return Err(JinjaError::from(ErrorKind::OutOfFuel));
            }
            Err(Breach::Size) => return Err(self.too_large()),
            Err(Breach::Depth) => {
                format!("chat template made a value nested deeper than {MAX_DEPTH} levels")
            }
        };
        Err(self.refuse(why))
    }

    /// Pays for `bytes` of text a step is about to make where it would make them before
    /// any guard saw them; more than a value may hold is refused without making them.
    pub(super) fn pay_ahead(&self, state: &State, bytes: u64) -> Result<(), JinjaError> {
        if bytes > u64::try_from(self.max_value_bytes()).unwrap_or(u64::MAX) {
            return Err(self.too_large());
        }
        state.consume_fuel(bytes / BYTES_PER_FUEL)
    }

    /// The largest size a value may have: a unit per item and per byte of text.
    pub(super) fn max_value_bytes(&self) -> usize {
        self.limits.output_bytes
    }

    /// The refusal of a value larger than [`Guard::max_value_bytes`].
    pub(super) fn too_large(&self) -> JinjaError {
        self.refuse(format!(
            "chat template made a value larger than its limit of {} for this conversation \
             (one per item and per byte of text)",
            self.limits.output_bytes
        ))
    }

    /// Counts `bytes` more of output against the output limit.
    fn write(&self, bytes: usize) -> Result<(), JinjaError> {
        let written = self
            .written
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if written > self.limits.output_bytes {
            return Err(self.refuse(format!(
                "chat template output exceeded its limit of {} bytes for this conversation",
                self.limits.output_bytes
            )));
        }
        Ok(())
    }

    fn refuse(&self, why: String) -> JinjaError {
        let error = JinjaError::new(ErrorKind::InvalidOperation, why.clone());
        // The first refusal is the render's error; any later one follows from it.
        let _ = self.stop.set(why);
        error
    }
}
