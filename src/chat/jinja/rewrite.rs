//! Places the guards (see `guards`) into a compiled template.
//!
//! minijinja has no hook on its operators, so the compiled program is copied with calls
//! to the guard functions around the steps that need them: [`VISIT`] before a step that
//! may visit all of a value (both operands of `~`, comparisons and `in`, the key of a
//! subscript, the argument of a recursive loop, every argument of a filter, test,
//! function, method or macro call, the keys and values of a map literal), [`STORE`]
//! before `set ns.attr`, and [`FLATTEN`] after a step that may make a lazy view (`+`,
//! `*`, slicing, a filter or a call). A guard returns its argument or fails, so each
//! step keeps minijinja's meaning, except that `+`, `*` and slicing give a list where
//! minijinja gives a lazy sequence (one that `is sequence` denies): a list, as in Jinja2.
//! Raw text is printed through the formatter, so that it is counted against the output
//! limit like everything else. Jump targets move with the code.

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::Value;

use super::guards::{FLATTEN, STORE, VISIT};
use crate::error::{Error, Result};

/// `code` with the guards in place.
pub(super) fn guarded<'source>(code: &Instructions<'source>) -> Result<Instructions<'source>> {
    let steps: Vec<Vec<Instruction<'source>>> =
        (0..).map_while(|pc| code.get(pc)).map(guard).collect();
    // Where each old step starts in the new code, and where the code ends.
    let mut starts = Vec::with_capacity(steps.len() + 1);
    let mut end = 0usize;
    for step in &steps {
        starts.push(pc(end)?);
        end += step.len();
    }
    starts.push(pc(end)?);
    let moved = |target: u32| {
        usize::try_from(target)
            .ok()
            .and_then(|t| starts.get(t).copied())
    };
    let mut out = Instructions::new(code.name(), code.source());
    for (old_pc, step) in (0u32..).zip(steps) {
        for instruction in step {
            let instruction = retarget(instruction, &moved);
            if let Some(span) = code.get_span(old_pc) {
                out.add_with_span(instruction, span);
            } else if let Some(line) = code.get_line(old_pc) {
                out.add_with_line(instruction, u16::try_from(line).unwrap_or(u16::MAX));
            } else {
                out.add(instruction);
            }
        }
    }
    Ok(out)
}

fn pc(index: usize) -> Result<u32> {
    u32::try_from(index)
        .map_err(|_| Error::InvalidModel("chat template compiles to too many steps".into()))
}

/// The steps that replace `step`: the guards before it, `step`, the guards after it.
fn guard<'source>(step: &Instruction<'source>) -> Vec<Instruction<'source>> {
    use Instruction as I;
    let step = step.clone();
    match step {
        I::StringConcat
        | I::Eq
        | I::Ne
        | I::Lt
        | I::Lte
        | I::Gt
        | I::Gte
        | I::In
        | I::CompareAndPreserve(_) => vec![I::Swap, visit(), I::Swap, visit(), step],
        I::GetItem | I::FastRecurse => vec![visit(), step],
        I::Add | I::Mul | I::Slice => vec![step, flatten()],
        I::BuildMap(pairs) => vec![
            I::BuildList(Some(pairs.saturating_mul(2))),
            visit(),
            I::UnpackLists(1),
            I::DiscardTop,
            step,
        ],
        I::SetAttr(_) => vec![I::Swap, call(STORE), I::Swap, step],
        I::PerformTest(name, args, local) => checked_args(args, I::PerformTest(name, None, local)),
        I::ApplyFilter(name, args, local) => {
            flattened(checked_args(args, I::ApplyFilter(name, None, local)))
        }
        I::CallFunction(name, args) => flattened(checked_args(args, I::CallFunction(name, None))),
        I::CallMethod(name, args) => flattened(checked_args(args, I::CallMethod(name, None))),
        I::CallObject(args) => flattened(checked_args(args, I::CallObject(None))),
        I::EmitRaw(text) => vec![I::LoadConst(Value::from_safe_string(text.into())), I::Emit],
        step => vec![step],
    }
}

fn call(guard: &'static str) -> Instruction<'static> {
    Instruction::CallFunction(guard, Some(1))
}

fn visit() -> Instruction<'static> {
    call(VISIT)
}

fn flatten() -> Instruction<'static> {
    call(FLATTEN)
}

/// A call with its arguments gathered in a list, checked and spread again, and the
/// call told their number on the stack (as minijinja does for calls with `*args`).
fn checked_args<'source>(
    args: Option<u16>,
    call: Instruction<'source>,
) -> Vec<Instruction<'source>> {
    vec![
        Instruction::BuildList(args.map(usize::from)),
        visit(),
        Instruction::UnpackLists(1),
        call,
    ]
}

/// `steps`, then their result flattened.
fn flattened(mut steps: Vec<Instruction<'_>>) -> Vec<Instruction<'_>> {
    steps.push(flatten());
    steps
}

/// `step`, its jump target (if any) moved to where the step it jumps to now starts.
fn retarget<'source>(
    step: Instruction<'source>,
    moved: &impl Fn(u32) -> Option<u32>,
) -> Instruction<'source> {
    use Instruction as I;
    let to = |target: u32| moved(target).unwrap_or(target);
    match step {
        I::Jump(target) => I::Jump(to(target)),
        I::JumpIfFalse(target) => I::JumpIfFalse(to(target)),
        I::JumpIfFalseOrPop(target) => I::JumpIfFalseOrPop(to(target)),
        I::JumpIfTrueOrPop(target) => I::JumpIfTrueOrPop(to(target)),
        I::Iterate(target) => I::Iterate(to(target)),
        I::BuildMacro(name, target, flags) => I::BuildMacro(name, to(target), flags),
        step => step,
    }
}
