//! A grammar bound to one model's vocabulary, following the tokens drawn under it.

use super::mask_worker::{Computed, MaskWorker, compute_mask};
use super::{Grammar, GrammarVocabulary, reason};
use crate::error::{Error, Result};
use llguidance::Matcher;
use llguidance::toktrie::SimpleVob;
use std::sync::Arc;

/// The grammar's place in the output so far and the tokens it allows next. The next
/// mask is computed on a helper thread from the moment a token is committed, so it is
/// ready, or nearly, when the host has decoded that token and samples again.
pub struct Constraint {
    vocabulary: Arc<GrammarVocabulary>,
    worker: MaskWorker,
    /// `None` while the helper thread holds the matcher; an error once the grammar
    /// cannot go on (every later call gives it).
    next: Option<std::result::Result<Ready, String>>,
    /// Tokens the matcher has consumed.
    consumed: usize,
}

struct Ready {
    matcher: Box<Matcher>,
    mask: SimpleVob,
}

impl Constraint {
    /// Starts `grammar` at the beginning of an output, over `vocabulary`.
    pub fn new(grammar: &Grammar, vocabulary: &Arc<GrammarVocabulary>) -> Result<Constraint> {
        let parser = vocabulary
            .factory()
            .create_parser(grammar.top_level.clone());
        let matcher = Box::new(Matcher::new(parser));
        if let Some(message) = matcher.get_error() {
            return Err(Error::InvalidArgument(format!(
                "the {} does not fit this model's vocabulary: {message}",
                grammar.kind()
            )));
        }
        let mut constraint = Constraint {
            vocabulary: Arc::clone(vocabulary),
            worker: MaskWorker::start()?,
            next: None,
            consumed: 0,
        };
        constraint.start_next_mask(matcher);
        Ok(constraint)
    }

    /// Whether this constraint reads `vocabulary` (the model it was bound to).
    pub fn is_over(&self, vocabulary: &Arc<GrammarVocabulary>) -> bool {
        Arc::ptr_eq(&self.vocabulary, vocabulary)
    }

    /// The tokens the grammar allows next, waiting for the helper thread if it is still
    /// computing them. Once the grammar is complete only end-of-generation tokens are.
    pub fn allowed(&mut self) -> Result<&SimpleVob> {
        match self.settled() {
            Ok(ready) => Ok(&ready.mask),
            Err(message) => Err(Error::InvalidArgument(message.clone())),
        }
    }

    /// Moves the grammar past `token`, which [`allowed`](Self::allowed) permitted, and
    /// starts computing the next mask. After the grammar has finished, the
    /// end-of-generation token it allows changes nothing.
    pub fn commit(&mut self, token: u32) -> Result<()> {
        let ready = self
            .settled()
            .as_mut()
            .map_err(|message| Error::InvalidArgument(message.clone()))?;
        if ready.matcher.is_stopped() {
            let allowed = (token as usize) < ready.mask.len() && ready.mask.is_allowed(token);
            return if allowed {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "token {token} after the grammar's end, where only end-of-generation \
                     tokens are allowed"
                )))
            };
        }
        if let Err(e) = ready.matcher.consume_token(token) {
            let message = format!(
                "the grammar refused token {token}: {}",
                reason(&e.to_string())
            );
            self.next = Some(Err(message.clone()));
            return Err(Error::InvalidArgument(message));
        }
        self.consumed += 1;
        self.restart_mask();
        Ok(())
    }

    /// Tokens consumed so far: a mark [`rewind`](Self::rewind) goes back to.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Takes back the tokens consumed since `mark`, as when a generation's last tokens
    /// never reach the cache (an error, a stop string); false when the matcher cannot.
    pub fn rewind(&mut self, mark: usize) -> bool {
        let n = self.consumed.saturating_sub(mark);
        if n == 0 {
            return true;
        }
        let Ok(ready) = self.settled() else {
            return false;
        };
        if ready.matcher.rollback(n).is_err() {
            return false;
        }
        self.consumed -= n;
        self.restart_mask();
        true
    }

    /// Starts computing the mask of a matcher that has moved.
    fn restart_mask(&mut self) {
        if let Some(Ok(ready)) = self.next.take() {
            self.start_next_mask(ready.matcher);
        }
    }

    /// The matcher and its mask, waiting for the helper thread when it holds them.
    fn settled(&mut self) -> &mut std::result::Result<Ready, String> {
        let worker = &self.worker;
        self.next.get_or_insert_with(|| match worker.collect() {
            Some(computed) => ready(computed),
            None => Err("the grammar's mask thread is gone".into()),
        })
    }

    fn start_next_mask(&mut self, matcher: Box<Matcher>) {
        self.next = match self.worker.submit(matcher) {
            Ok(()) => None,
            Err(mut matcher) => {
                let mask = compute_mask(&mut matcher);
                Some(ready((matcher, mask)))
            }
        };
    }
}

fn ready((matcher, mask): Computed) -> std::result::Result<Ready, String> {
    mask.map(|mask| Ready { matcher, mask })
}
