//! [`CpuMatmul`]: `y = W · x` for a batch of tokens, split over a pool of threads by rows of
//! `W`.
//!
//! One call quantizes the activations once (when the weight type takes quantized ones), then
//! hands each thread a range of rows. Within it, a block of rows is crossed with tiles of
//! [`TOKEN_TILE`] tokens, so in prefill a block's weights stay in L1 while every token passes
//! over them and each weight block is unpacked once per tile rather than once per token.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use super::activations::{Q8Activations, Q8KActivations};
use super::dot::dequantized::dequantized_rows;
use super::dot::{self, RowsKernel, TOKEN_TILE};
use super::pool::recycle;
use super::{SimdLevel, WorkerPool, lock};
use crate::host_memory::reserve;
use crate::tensor::WeightMatrix;
use crate::{Error, Result};

/// The most rows a kernel call covers.
const MAX_ROWS_PER_BLOCK: usize = 64;

/// Weight bytes a block of rows should stay within in prefill, so it stays in L1 while
/// the token tiles pass over it.
const BLOCK_BYTES_TARGET: usize = 16 * 1024;

/// The least work a task is worth, in weight bytes times tokens: below it, handing the task
/// to another thread costs more than it saves.
const MIN_TASK_WORK: usize = 32 * 1024;

/// Tasks per thread: enough to even out threads that start late or run slow.
const TASKS_PER_THREAD: usize = 4;

/// Tasks cover whole multiples of this many rows, so two tasks never write to the same
/// 64-byte cache line of `y`.
const TASK_ROW_ALIGN: usize = 16;

/// The CPU quantized matrix multiply, with the thread pool it runs on.
///
/// Every weight type with a dequantizer works: F32, F16, BF16, the 32-value legacy types,
/// the K-quants, IQ4_NL, IQ4_XS and MXFP4 have integer or f32 kernels (AVX2 ones for most);
/// F64 and the integer types are dequantized piece by piece.
pub struct CpuMatmul {
    simd: SimdLevel,
    n_threads: usize,
    state: Mutex<State>,
}

/// What one call needs exclusively: the pool, and the activation buffers and task lists
/// kept from call to call so a decode step does not allocate.
struct State {
    pool: WorkerPool,
    q8: Q8Activations,
    q8k: Q8KActivations,
    tasks: Tasks,
}

/// `dots(rows, tokens, out)`: the dot products of a block of rows (its bytes) with a tile of
/// tokens, into `out` (`[rows, tokens]`).
type BlockDots<'a> = dyn Fn(&[u8], Range<usize>, &mut [f32]) + Sync + 'a;

/// How a call's rows are split: into tasks (one thread each), and within a task into
/// blocks (one kernel call per block and token tile).
struct Split {
    n_rows: usize,
    rows_per_task: usize,
    rows_per_block: usize,
}

impl CpuMatmul {
    /// A matmul on `n_threads` threads (the calling thread and `n_threads - 1` workers)
    /// with the best SIMD level this CPU supports.
    pub fn new(n_threads: usize) -> Result<CpuMatmul> {
        CpuMatmul::with_simd(n_threads, SimdLevel::detect())
    }

    /// Like [`CpuMatmul::new`] with the given SIMD level, which must be supported (tests
    /// use it to run the scalar reference).
    pub fn with_simd(n_threads: usize, simd: SimdLevel) -> Result<CpuMatmul> {
        if !simd.is_supported() {
            return Err(Error::Unsupported(format!(
                "{simd} kernels on this CPU ({} is the best it supports)",
                SimdLevel::detect()
            )));
        }
        Ok(CpuMatmul {
            simd,
            n_threads,
            state: Mutex::new(State {
                pool: WorkerPool::new(n_threads)?,
                q8: Q8Activations::default(),
                q8k: Q8KActivations::default(),
                tasks: Tasks::default(),
            }),
        })
    }

    pub fn simd(&self) -> SimdLevel {
        self.simd
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// `y[t][r] = W[r] · x[t]` for `n_tokens` tokens: `x` is `[n_tokens, w.n_cols]` and `y`
    /// `[n_tokens, w.n_rows]`, both row-major.
    ///
    /// Quantized weights take the activations quantized to 8 bits per block (as llama.cpp
    /// does) and accumulate in f32; F32, F16 and BF16 weights take them as they are.
    /// Errors with [`Error::InvalidArgument`] for a bad matrix or slice lengths and with
    /// [`Error::Unsupported`] for weight types without a kernel or dequantizer.
    pub fn matmul(
        &self,
        w: &WeightMatrix<'_>,
        x: &[f32],
        n_tokens: usize,
        y: &mut [f32],
    ) -> Result<()> {
        self.matmul_many(&[*w], x, n_tokens, &mut [y])
    }

    /// [`matmul`](Self::matmul) of several matrices with the same input: `ys[i] = ws[i] · x`.
    /// The matrices share a type and a row length, so `x` is quantized once and all their
    /// rows go to the threads in one dispatch (a layer's Q, K and V projections cost one
    /// wait for the pool instead of three).
    pub fn matmul_many(
        &self,
        ws: &[WeightMatrix<'_>],
        x: &[f32],
        n_tokens: usize,
        ys: &mut [&mut [f32]],
    ) -> Result<()> {
        let Some(w) = ws.first() else {
            return Ok(());
        };
        if ys.len() != ws.len() {
            return Err(Error::InvalidArgument(format!(
                "{} matrices but {} outputs",
                ws.len(),
                ys.len()
            )));
        }
        for (m, y) in ws.iter().zip(ys.iter()) {
            m.check()?;
            if m.dtype != w.dtype || m.n_cols != w.n_cols {
                return Err(Error::InvalidArgument(format!(
                    "one call's matrices share a type and a row length: {} x {} and {} x {}",
                    w.dtype, w.n_cols, m.dtype, m.n_cols
                )));
            }
            check_len("y", y.len(), n_tokens, m.n_rows)?;
        }
        check_len("x", x.len(), n_tokens, w.n_cols)?;
        let kernel = dot::select(w.dtype, self.simd)?;
        if n_tokens == 0 {
            return Ok(());
        }
        let mut state = lock(&self.state);
        let State {
            pool,
            q8,
            q8k,
            tasks,
        } = &mut *state;
        tasks.plan(ws, n_tokens, pool.n_threads())?;
        let simd = self.simd;
        let x_token = |t: usize| &x[t * w.n_cols..][..w.n_cols];
        match kernel {
            RowsKernel::Q8(rows_dot) => {
                q8.quantize(x, w.n_cols, simd)?;
                let q8 = &*q8;
                tasks.run(pool, ws, ys, n_tokens, &|rows, tokens, out| {
                    let tile = tile_of(tokens, |t| q8.token(t));
                    // SAFETY: `simd` was checked supported in `with_simd`, and the kernel
                    // was selected for it.
                    unsafe { rows_dot(rows, w.row_bytes(), tile.as_slice(), out) };
                })
            }
            RowsKernel::Q8K(rows_dot) => {
                q8k.quantize(x, w.n_cols, simd)?;
                let q8k = &*q8k;
                tasks.run(pool, ws, ys, n_tokens, &|rows, tokens, out| {
                    let tile = tile_of(tokens, |t| q8k.token(t));
                    // SAFETY: as above.
                    unsafe { rows_dot(rows, w.row_bytes(), tile.as_slice(), out) };
                })
            }
            RowsKernel::Float(rows_dot) => {
                tasks.run(pool, ws, ys, n_tokens, &|rows, tokens, out| {
                    let tile = tile_of(tokens, x_token);
                    // SAFETY: as above.
                    unsafe { rows_dot(rows, w.row_bytes(), tile.as_slice(), out) };
                })
            }
            RowsKernel::Dequantized => {
                let first_error = Mutex::new(None);
                tasks.run(pool, ws, ys, n_tokens, &|rows, tokens, out| {
                    let tile = tile_of(tokens, x_token);
                    let result =
                        dequantized_rows(w.dtype, rows, w.row_bytes(), tile.as_slice(), out);
                    if let Err(error) = result {
                        lock(&first_error).get_or_insert(error);
                    }
                })?;
                let first_error = first_error.into_inner();
                match first_error.unwrap_or_else(PoisonError::into_inner) {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
        }
    }

    /// Runs `task(i)` for every `i` in `0..n_tasks` on this matmul's threads, for other
    /// operations of a forward pass that split well (attention heads, say). Waits for a
    /// matmul running on another thread to finish first.
    pub fn run_parallel(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        lock(&self.state).pool.run(n_tasks, task);
    }

    /// [`run_parallel`](Self::run_parallel), telling each task which thread runs it:
    /// `task(i, thread)` with `thread` below [`n_threads`](Self::n_threads), never two
    /// tasks at once on one thread, so per-thread scratch needs no sharing.
    pub fn run_parallel_with_thread(&self, n_tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
        lock(&self.state).pool.run_with_thread(n_tasks, task);
    }
}

impl Split {
    fn new(w: &WeightMatrix<'_>, n_tokens: usize, n_threads: usize) -> Split {
        let row_bytes = w.row_bytes();
        let rows_per_block = if n_tokens <= TOKEN_TILE {
            // One tile: nothing to keep in cache between tiles, so fewer, longer calls.
            MAX_ROWS_PER_BLOCK
        } else {
            (BLOCK_BYTES_TARGET / row_bytes).clamp(1, MAX_ROWS_PER_BLOCK)
        };
        let min_rows = MIN_TASK_WORK.div_ceil(row_bytes * n_tokens);
        let even_rows = w.n_rows.div_ceil(n_threads * TASKS_PER_THREAD);
        let rows_per_task = even_rows.max(min_rows).next_multiple_of(TASK_ROW_ALIGN);
        Split {
            n_rows: w.n_rows,
            rows_per_task,
            rows_per_block,
        }
    }

    fn n_tasks(&self) -> usize {
        self.n_rows.div_ceil(self.rows_per_task)
    }

    /// One task: its rows crossed with every tile of tokens, into its `share`.
    fn run_task(
        &self,
        w: &WeightMatrix<'_>,
        task: usize,
        n_tokens: usize,
        share: &mut [&mut [f32]],
        dots: &BlockDots<'_>,
    ) {
        let task_rows = self.task_rows(task);
        let row_bytes = w.row_bytes();
        let mut tile_out = [0.0; MAX_ROWS_PER_BLOCK * TOKEN_TILE];
        for block_start in task_rows.clone().step_by(self.rows_per_block) {
            let block = block_start..(block_start + self.rows_per_block).min(task_rows.end);
            let bytes = &w.data[block.start * row_bytes..block.end * row_bytes];
            for first_token in (0..n_tokens).step_by(TOKEN_TILE) {
                let tokens = first_token..(first_token + TOKEN_TILE).min(n_tokens);
                let out = &mut tile_out[..block.len() * tokens.len()];
                dots(bytes, tokens.clone(), out);
                let block_in_task = block.start - task_rows.start..block.end - task_rows.start;
                for (i, t) in tokens.clone().enumerate() {
                    let token_out = &mut share[t][block_in_task.clone()];
                    for (y, row_out) in token_out.iter_mut().zip(out.chunks_exact(tokens.len())) {
                        *y = row_out[i];
                    }
                }
            }
        }
    }

    fn task_rows(&self, task: usize) -> Range<usize> {
        let start = task * self.rows_per_task;
        start..(start + self.rows_per_task).min(self.n_rows)
    }
}

/// The rows of several matrices with one input, split into tasks together. Its vectors
/// are kept from call to call, so a call allocates only when it needs more tasks than
/// any before it.
#[derive(Default)]
struct Tasks {
    /// Per matrix, the split of its rows.
    splits: Vec<Split>,
    /// Per task: which matrix, and which of that matrix's tasks.
    tasks: Vec<(usize, usize)>,
    /// Empty between calls (see [`recycle`]); during one, `[n_tasks, n_tokens]`: each
    /// task's rows of every token's output.
    shares: Vec<&'static mut [f32]>,
    /// Empty between calls; during one, per task its row of `shares`, locked by that task
    /// alone, once.
    task_shares: Vec<Mutex<&'static mut [&'static mut [f32]]>>,
}

/// What the task lists are, in an out-of-memory message.
const TASK_LISTS: &str = "a matmul's task lists";

impl Tasks {
    /// Splits the rows of `ws` into tasks for `n_tokens` tokens on `n_threads` threads.
    fn plan(&mut self, ws: &[WeightMatrix<'_>], n_tokens: usize, n_threads: usize) -> Result<()> {
        self.splits.clear();
        reserve(&mut self.splits, ws.len(), TASK_LISTS)?;
        self.splits
            .extend(ws.iter().map(|w| Split::new(w, n_tokens, n_threads)));
        let n_tasks = self.splits.iter().map(Split::n_tasks).sum();
        self.tasks.clear();
        reserve(&mut self.tasks, n_tasks, TASK_LISTS)?;
        for (m, split) in self.splits.iter().enumerate() {
            self.tasks
                .extend((0..split.n_tasks()).map(|task| (m, task)));
        }
        Ok(())
    }

    /// Runs `dots` over every block of rows and tile of tokens of every matrix of the last
    /// [`plan`](Self::plan), on the pool, and gathers the results into `ys`.
    fn run(
        &mut self,
        pool: &mut WorkerPool,
        ws: &[WeightMatrix<'_>],
        ys: &mut [&mut [f32]],
        n_tokens: usize,
        dots: &BlockDots<'_>,
    ) -> Result<()> {
        let n_tasks = self.tasks.len();
        let mut shares = recycle(std::mem::take(&mut self.shares));
        reserve(&mut shares, n_tasks * n_tokens, TASK_LISTS)?;
        shares.resize_with(n_tasks * n_tokens, Default::default);
        let mut first_task = 0;
        for (split, y) in self.splits.iter().zip(ys.iter_mut()) {
            for (t, token_row) in y.chunks_exact_mut(split.n_rows).enumerate() {
                for (task, rows) in token_row.chunks_mut(split.rows_per_task).enumerate() {
                    shares[(first_task + task) * n_tokens + t] = rows;
                }
            }
            first_task += split.n_tasks();
        }
        let mut task_shares = recycle(std::mem::take(&mut self.task_shares));
        reserve(&mut task_shares, n_tasks, TASK_LISTS)?;
        task_shares.extend(shares.chunks_mut(n_tokens).map(Mutex::new));
        pool.run(n_tasks, &|task| {
            let (m, local) = self.tasks[task];
            let mut share = lock(&task_shares[task]);
            self.splits[m].run_task(&ws[m], local, n_tokens, &mut share, dots);
        });
        self.task_shares = recycle(task_shares);
        self.shares = recycle(shares);
        Ok(())
    }
}

/// The activations of the tokens in `tokens` (at most [`TOKEN_TILE`]), built without
/// allocating.
fn tile_of<A>(tokens: Range<usize>, token: impl Fn(usize) -> A) -> TokenTile<A> {
    let last = tokens.end - 1;
    TokenTile {
        items: std::array::from_fn(|i| token((tokens.start + i).min(last))),
        len: tokens.len(),
    }
}

/// Up to [`TOKEN_TILE`] tokens' activations on the stack.
struct TokenTile<A> {
    items: [A; TOKEN_TILE],
    len: usize,
}

impl<A> TokenTile<A> {
    fn as_slice(&self) -> &[A] {
        &self.items[..self.len]
    }
}

fn check_len(name: &str, len: usize, n_tokens: usize, per_token: usize) -> Result<()> {
    match n_tokens.checked_mul(per_token) {
        Some(expected) if expected == len => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "{name} holds {len} values; {n_tokens} tokens of {per_token} need {}",
            n_tokens as u128 * per_token as u128
        ))),
    }
}
