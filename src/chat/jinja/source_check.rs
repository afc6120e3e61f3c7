//! Bounds on what minijinja does with a template before it runs: parsing and compiling,
//! which no fuel limits.
//!
//! - Its parser recurses once per unary operator (`- - - 1`, `not not x`) with no limit:
//!   a long run overflows the stack. Runs are limited by a scan of the tokens first.
//! - A chain of binary operators, filters or attributes parses into an expression as
//!   deep as it is long, and the compiler walks it recursively, trying to fold it into
//!   a constant at every level (work that grows with the square of the depth). The
//!   expressions' depth is limited, and the folding work is charged to the fuel.
//! - A folded constant can be large at no cost (`[1] * 10**8` is a lazy list of 10^8
//!   items), and folding the expression above it (`2 in [1] * 10**8`, two such lists
//!   compared, `~` on one) then walks all of it, for seconds or, nested, without end.
//!   Every constant the compiler would fold is folded here from the leaves up and
//!   refused above [`MAX_FOLDED_ITEMS`] before any expression above it is folded.
//!
//! The template's length is limited so that what the parser builds fits the render
//! thread's stack.

use minijinja::machinery::ast::{CallArg, Expr, Stmt};
use minijinja::machinery::{Token, parse, tokenize};

use super::walk::{Known, Walk};
use crate::error::{Error, Result};

/// The longest template. Chat templates of tool-calling models run to about 30 KiB.
const MAX_TEMPLATE_BYTES: usize = 256 << 10;
/// The most unary operators in a row.
const MAX_UNARY_RUN: usize = 64;
/// How deep an expression may nest. A chat template's longest chains (`'<|' + role +
/// '|>' + ...`, `messages|selectattr(...)|map(...)|list`) are a few dozen deep.
const MAX_EXPRESSION_DEPTH: usize = 256;
/// The most items a folded constant may have. minijinja itself folds strings and tuples
/// only up to 1024 bytes or slots; a list literal in a chat template has a handful.
const MAX_FOLDED_ITEMS: u64 = 1024;

/// Checks the template's length, before anything reads it.
pub(super) fn check_length(template: &str) -> Result<()> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(Error::InvalidModel(format!(
            "chat template has {} bytes, more than the limit of {MAX_TEMPLATE_BYTES}",
            template.len()
        )));
    }
    Ok(())
}

/// Checks `template` (of a length [`check_length`] passed, or at most twice that: the
/// source as jinja2 reads it) within `fuel` and returns the fuel that compiling it
/// spends: a fuel per expression node, and per node and item each time one is folded
/// (here and again by the compiler). `out_of_fuel` is the error for a template that
/// spends more. A template that does not parse is left to the compiler to report.
pub(super) fn check(template: &str, fuel: u64, out_of_fuel: impl Fn() -> Error) -> Result<u64> {
    check_unary_runs(template)?;
    let Ok(ast) = parse(template, "<string>", Default::default()) else {
        return Ok(0);
    };
    let mut compile = Compile {
        fuel,
        spent: 0,
        out_of_fuel: &out_of_fuel,
    };
    compile.stmt(&ast)?;
    Ok(compile.spent)
}

fn check_unary_runs(template: &str) -> Result<()> {
    let mut run = 0;
    for token in tokenize(template, false, Default::default()) {
        let Ok((token, _)) = token else {
            return Ok(());
        };
        run = match token {
            Token::Minus | Token::Ident("not") => run + 1,
            _ => 0,
        };
        if run > MAX_UNARY_RUN {
            return Err(Error::InvalidModel(format!(
                "chat template has more than {MAX_UNARY_RUN} unary operators in a row"
            )));
        }
    }
    Ok(())
}

/// The compiler's work on a template, counted as it is checked.
struct Compile<'a> {
    fuel: u64,
    spent: u64,
    out_of_fuel: &'a dyn Fn() -> Error,
}

impl Compile<'_> {
    fn spend(&mut self, fuel: u64) -> Result<()> {
        self.spent = self.spent.saturating_add(fuel);
        if self.spent > self.fuel {
            return Err((self.out_of_fuel)());
        }
        Ok(())
    }

    fn stmts(&mut self, body: &[Stmt<'_>]) -> Result<()> {
        body.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, node: &Stmt<'_>) -> Result<()> {
        match node {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => Ok(()),
            Stmt::ForLoop(f) => {
                self.exprs([&f.target, &f.iter])?;
                self.exprs(&f.filter_expr)?;
                self.stmts(&f.body)?;
                self.stmts(&f.else_body)
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr)?;
                self.stmts(&i.true_body)?;
                self.stmts(&i.false_body)
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.exprs([target, value])?;
                }
                self.stmts(&w.body)
            }
            Stmt::Set(s) => self.exprs([&s.target, &s.expr]),
            Stmt::SetBlock(s) => {
                self.expr(&s.target)?;
                self.exprs(&s.filter)?;
                self.stmts(&s.body)
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled)?;
                self.stmts(&a.body)
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter)?;
                self.stmts(&f.body)
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => self.exprs([&i.expr, &i.name]),
            Stmt::FromImport(f) => {
                self.expr(&f.expr)?;
                for (name, alias) in &f.names {
                    self.expr(name)?;
                    self.exprs(alias)?;
                }
                Ok(())
            }
            Stmt::Extends(e) => self.expr(&e.name),
            Stmt::Include(i) => self.expr(&i.name),
            Stmt::Macro(m) => {
                self.exprs(m.args.iter().chain(&m.defaults))?;
                self.stmts(&m.body)
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr)?;
                self.args(&c.call.args, 0)?;
                self.exprs(c.macro_decl.args.iter().chain(&c.macro_decl.defaults))?;
                self.stmts(&c.macro_decl.body)
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr)?;
                self.args(&d.call.args, 0)
            }
        }
    }

    fn expr(&mut self, node: &Expr<'_>) -> Result<()> {
        self.fold(node, 0).map(drop)
    }

    fn exprs<'a, 's: 'a>(&mut self, nodes: impl IntoIterator<Item = &'a Expr<'s>>) -> Result<()> {
        nodes.into_iter().try_for_each(|e| self.expr(e))
    }

    fn args(&mut self, args: &[CallArg<'_>], depth: usize) -> Result<()> {
        args.iter()
            .try_for_each(|arg| self.fold(arg_expr(arg), depth).map(drop))
    }

    /// Checks the expressions below `node`, then `node` folded if the compiler folds
    /// it. Returns the nodes that folding `node` visits.
    fn fold(&mut self, node: &Expr<'_>, depth: usize) -> Result<u64> {
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(Error::InvalidModel(format!(
                "chat template has an expression nested deeper than {MAX_EXPRESSION_DEPTH} levels"
            )));
        }
        self.spend(1)?;
        let (children, folds) = children(node);
        let mut below = 0u64;
        for child in children {
            below = below.saturating_add(self.fold(child, depth + 1)?);
        }
        if !folds {
            return Ok(1);
        }
        // Folding `node` visits it and the foldable nodes below it, here and again in
        // the compiler.
        let folded = below.saturating_add(1);
        self.spend(folded.saturating_mul(2))?;
        if let Some(value) = node.as_const() {
            let known = Known::default();
            let mut walk = Walk::new(&known, MAX_FOLDED_ITEMS + 1, u64::MAX);
            match walk.summarize(&value) {
                Ok(summary) if summary.items <= MAX_FOLDED_ITEMS => {}
                _ => {
                    return Err(Error::InvalidModel(format!(
                        "chat template has a constant of more than {MAX_FOLDED_ITEMS} items \
                         (or nested too deep), which would be computed while compiling it"
                    )));
                }
            }
            self.spend(walk.visits.saturating_mul(2))?;
        }
        Ok(folded)
    }
}

/// The expressions right below `node`, and whether the compiler folds `node` (with
/// them) into a constant where they are constants.
fn children<'e, 's>(node: &'e Expr<'s>) -> (Vec<&'e Expr<'s>>, bool) {
    let mut below = Vec::new();
    let folds = match node {
        Expr::Var(_) | Expr::Const(_) => false,
        Expr::UnaryOp(u) => {
            below.push(&u.expr);
            true
        }
        Expr::BinOp(b) => {
            below.extend([&b.left, &b.right]);
            true
        }
        Expr::Compare(c) => {
            below.push(&c.expr);
            below.extend(c.ops.iter().map(|op| &op.expr));
            true
        }
        Expr::List(l) => {
            below.extend(&l.items);
            true
        }
        Expr::Tuple(t) => {
            below.extend(&t.items);
            true
        }
        Expr::Map(m) => {
            below.extend(m.keys.iter().chain(&m.values));
            true
        }
        Expr::Slice(s) => {
            below.push(&s.expr);
            below.extend(s.start.iter().chain(&s.stop).chain(&s.step));
            false
        }
        Expr::IfExpr(i) => {
            below.extend([&i.test_expr, &i.true_expr]);
            below.extend(&i.false_expr);
            false
        }
        Expr::Filter(f) => {
            below.extend(&f.expr);
            below.extend(f.args.iter().map(arg_expr));
            false
        }
        Expr::Test(t) => {
            below.push(&t.expr);
            below.extend(t.args.iter().map(arg_expr));
            false
        }
        Expr::GetAttr(g) => {
            below.push(&g.expr);
            false
        }
        Expr::GetItem(g) => {
            below.extend([&g.expr, &g.subscript_expr]);
            false
        }
        Expr::Call(c) => {
            below.push(&c.expr);
            below.extend(c.args.iter().map(arg_expr));
            false
        }
    };
    (below, folds)
}

fn arg_expr<'e, 's>(arg: &'e CallArg<'s>) -> &'e Expr<'s> {
    match arg {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => e,
    }
}
