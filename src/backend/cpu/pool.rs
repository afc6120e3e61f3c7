//! A persistent pool of worker threads for parallel loops of short tasks.
//!
//! A decode step runs about 200 matmuls of tens of microseconds each, so threads cannot be
//! spawned per call. The workers live as long as the pool; between jobs they spin for a
//! short while (the next job usually comes within microseconds) and then sleep on a
//! condition variable, so an idle pool costs no CPU. The calling thread takes tasks too:
//! a pool of `n_threads` spawns `n_threads - 1` workers.
//!
//! A worker joins a job only while it is open, and the caller closes it once every task has
//! been taken, then waits just for the workers that joined. So a worker that is asleep,
//! descheduled or sharing the caller's core never delays a job: the threads that are
//! running do all its tasks.
//!
//! A panic in a task on a worker is caught there, kept quiet (the hook of `quiet_panics`
//! does not pass it on, so the host's hook never prints it) and raised again on the
//! calling thread once the job is over: the caller sees it as a panic of its own call,
//! which the C boundary reports as `RF_ERR_PANIC`. The worker lives on for the next job.

use std::any::Any;
use std::hint;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::lock;
use crate::{Error, Result, quiet_panics};

/// How long an idle worker spins before it sleeps. Longer than the gap between two matmuls
/// of a forward pass (the norms, RoPE and attention between them), far shorter than the gap
/// between two requests.
const SPIN_TIME: Duration = Duration::from_micros(300);

/// Spin iterations between two yields to the scheduler (and looks at the clock).
const SPINS_PER_CHECK: u32 = 256;

/// [`Shared::job_state`]: the job's epoch in the high 32 bits, then a closed flag, then the
/// number of workers running it.
const CLOSED: u64 = 1 << 31;
const JOINED_MASK: u64 = CLOSED - 1;

/// Threads that run `Fn(task_index, thread_index)` closures over a range of task indices.
pub struct WorkerPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// What the caller and the workers share.
struct Shared {
    /// Bumped once per job (and once at shutdown); workers wait for it to change.
    epoch: CacheAligned<AtomicU64>,
    /// Which job workers may join, whether it is still open, and how many have joined.
    job_state: CacheAligned<AtomicU64>,
    /// The current job. It lives on the stack of [`WorkerPool::run`], which does not return
    /// before every worker that joined it has left.
    job: AtomicPtr<Job<'static>>,
    shutdown: AtomicBool,
    /// The first panic a worker caught in the current job.
    panic: Mutex<Option<WorkerPanic>>,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

/// A panic caught on a worker thread, for the caller to raise again.
struct WorkerPanic {
    thread: usize,
    message: String,
    /// Where it was raised, as the panic hook saw it.
    location: Option<String>,
}

impl WorkerPanic {
    /// Raises this panic on the calling thread, where the process's panic hook and the
    /// caller's own handling (the C boundary's `catch_unwind`) see it as the caller's.
    fn raise(self) -> ! {
        let WorkerPanic {
            thread,
            message,
            location,
        } = self;
        match location {
            Some(at) => panic!("{message} (CPU worker thread {thread}, at {at})"),
            None => panic!("{message} (CPU worker thread {thread})"),
        }
    }
}

/// Test-only: the next task a worker thread (not the caller) takes panics, so tests can
/// follow a worker's panic to the caller.
#[cfg(feature = "panic-test")]
static PANIC_IN_NEXT_WORKER_TASK: AtomicBool = AtomicBool::new(false);

/// Keeps a hot atomic on a cache line of its own, so spinning readers of one do not slow
/// down writers of another.
#[repr(align(128))]
struct CacheAligned<T>(T);

/// One parallel loop: tasks `0..n_tasks`, each taken by whichever thread gets to it first.
struct Job<'a> {
    /// `task(task_index, thread_index)`.
    task: &'a (dyn Fn(usize, usize) + Sync + 'a),
    n_tasks: usize,
    next_task: AtomicUsize,
}

impl Job<'_> {
    /// Takes tasks on the thread of index `thread` until none is left.
    fn run_tasks(&self, thread: usize) {
        loop {
            let index = self.next_task.fetch_add(1, Ordering::Relaxed);
            if index >= self.n_tasks {
                return;
            }
            #[cfg(feature = "panic-test")]
            if thread != 0
                && PANIC_IN_NEXT_WORKER_TASK.load(Ordering::Relaxed)
                && PANIC_IN_NEXT_WORKER_TASK.swap(false, Ordering::SeqCst)
            {
                panic!("forced in a CPU worker task by the panic-test feature");
            }
            (self.task)(index, thread);
        }
    }
}

/// The most threads a pool runs: far above any core count a decode step can use, and low
/// enough that a host's `UINT32_MAX` is refused before anything is allocated for it.
pub const MAX_THREADS: usize = 1024;

impl WorkerPool {
    /// A pool of `n_threads` threads in all: the caller of [`WorkerPool::run`] and
    /// `n_threads - 1` workers started now. Errors if `n_threads` is outside
    /// `1..=MAX_THREADS`, or `OutOfMemory` if the system cannot start another thread.
    pub fn new(n_threads: usize) -> Result<WorkerPool> {
        if !(1..=MAX_THREADS).contains(&n_threads) {
            return Err(Error::InvalidArgument(format!(
                "n_threads is {n_threads}, expected 1 to {MAX_THREADS}"
            )));
        }
        let shared = Arc::new(Shared {
            epoch: CacheAligned(AtomicU64::new(0)),
            job_state: CacheAligned(AtomicU64::new(CLOSED)),
            job: AtomicPtr::new(std::ptr::null_mut()),
            shutdown: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        // Workers join the pool as they start, so an error part-way shuts down the ones
        // already running when `pool` drops.
        let mut pool = WorkerPool {
            shared,
            workers: Vec::with_capacity(n_threads - 1),
        };
        for index in 1..n_threads {
            #[cfg(feature = "fault-injection")]
            if crate::host_memory::fault_injection::this_one_fails() {
                return Err(Error::OutOfMemory(format!(
                    "starting CPU worker thread {index} of {n_threads}: injected failure"
                )));
            }
            let shared = Arc::clone(&pool.shared);
            let worker = thread::Builder::new()
                .name(format!("rocmforge-cpu-{index}"))
                .spawn(move || worker_loop(&shared, index))
                .map_err(|e| {
                    Error::OutOfMemory(format!(
                        "starting CPU worker thread {index} of {n_threads}: {e}"
                    ))
                })?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Test-only (feature `panic-test`): the next task a worker thread takes, in whichever
    /// pool, panics.
    #[cfg(feature = "panic-test")]
    pub fn panic_in_next_worker_task() {
        PANIC_IN_NEXT_WORKER_TASK.store(true, Ordering::SeqCst);
    }

    /// Threads that run tasks, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `task(i)` for every `i` in `0..n_tasks` on the pool's threads and the calling
    /// thread, and returns when all have finished. Tasks are handed out in order, one at a
    /// time, to whichever thread is free, so uneven tasks balance themselves.
    ///
    /// A panic in a task is raised again here once every thread has stopped using `task`
    /// (one on a worker as a new panic whose message names the worker and where it was
    /// raised).
    pub fn run(&mut self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        self.run_with_thread(n_tasks, &|index, _| task(index));
    }

    /// [`run`](Self::run), telling each task which thread runs it: `task(i, thread)`, with
    /// `thread` 0 for the caller and below [`n_threads`](Self::n_threads) for all. A thread
    /// runs one task at a time, so scratch memory indexed by `thread` is never used by two
    /// tasks at once.
    pub fn run_with_thread(&mut self, n_tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
        if self.workers.is_empty() || n_tasks <= 1 {
            (0..n_tasks).for_each(|index| task(index, 0));
            return;
        }
        let job = Job {
            task,
            n_tasks,
            next_task: AtomicUsize::new(0),
        };
        let shared = &*self.shared;
        // Erasing the lifetime is what lets workers that outlive this call see a job that
        // borrows from it; `CloseJob` below makes sure none of them still does when `job`
        // goes out of scope.
        let job_ptr: *const Job<'_> = &job;
        shared
            .job
            .store(job_ptr.cast::<Job<'static>>().cast_mut(), Ordering::Relaxed);
        let epoch = shared.epoch.0.load(Ordering::Relaxed).wrapping_add(1);
        // Release: a worker that joins (Acquire) sees `job` above.
        shared
            .job_state
            .0
            .store(epoch_bits(epoch), Ordering::Release);
        // SeqCst pairs with the sleepers' check in `wait_for_epoch`: either a worker about
        // to sleep sees the new epoch, or this thread sees it among the sleepers.
        shared.epoch.0.store(epoch, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders the notification after the sleeper's last epoch check.
            drop(lock(&shared.sleep_lock));
            shared.wake.notify_all();
        }

        let closer = CloseJob(shared);
        job.run_tasks(0);
        drop(closer);

        let caught = lock(&shared.panic).take();
        if let Some(caught) = caught {
            caught.raise();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let shared = &*self.shared;
        shared.shutdown.store(true, Ordering::SeqCst);
        shared.epoch.0.fetch_add(1, Ordering::SeqCst);
        drop(lock(&shared.sleep_lock));
        shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            // Workers catch every task panic, so a join error cannot happen; if it somehow
            // did, there is nothing left to clean up.
            worker.join().ok();
        }
    }
}

/// `v` emptied, as a vector of another element type of the same size and alignment,
/// keeping its allocation (the standard library collects a vector's own iterator in
/// place). A loop that lends each task its part of an output through a vector of `&mut`
/// slices keeps that vector between calls this way: stored empty with `'static` borrows,
/// refilled with the next call's.
pub(super) fn recycle<T, U>(v: Vec<T>) -> Vec<U> {
    const {
        assert!(size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>());
    }
    v.into_iter().filter_map(|_| None).collect()
}

/// The job state that opens the job of `epoch`, with no worker in it yet.
fn epoch_bits(epoch: u64) -> u64 {
    epoch << 32
}

/// Closes the current job to workers that have not joined it, then waits (also while
/// unwinding from a panic in the caller's own tasks) until the ones that did have left.
struct CloseJob<'a>(&'a Shared);

impl Drop for CloseJob<'_> {
    fn drop(&mut self) {
        let state = &self.0.job_state.0;
        let mut joined = state.fetch_or(CLOSED, Ordering::Acquire) & JOINED_MASK;
        let mut spins = 0_u32;
        while joined != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_CHECK) {
                // A worker may share this core (more threads than cores).
                thread::yield_now();
            } else {
                hint::spin_loop();
            }
            joined = state.load(Ordering::Acquire) & JOINED_MASK;
        }
        if thread::panicking() {
            // The caller's own panic is the one that propagates.
            lock(&self.0.panic).take();
        }
    }
}

/// The loop of the worker thread of index `thread` (1 and up; the caller is 0).
fn worker_loop(shared: &Shared, thread: usize) {
    quiet_panics::quiet_this_thread();
    let mut seen_epoch = 0;
    loop {
        seen_epoch = wait_for_epoch(shared, seen_epoch);
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if !join_job(shared, seen_epoch) {
            continue;
        }
        let job_ptr = shared.job.load(Ordering::Relaxed);
        // SAFETY: this worker joined the open job of `seen_epoch`, whose pointer `run` stored
        // before opening it (the Acquire of joining sees that store). `run` keeps the job
        // alive until every worker that joined has left, which this one does below, after
        // its last use of `job`.
        let job = unsafe { &*job_ptr };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| job.run_tasks(thread))) {
            let caught = WorkerPanic {
                thread,
                message: panic_message(payload.as_ref()),
                location: quiet_panics::take_panic_location(),
            };
            lock(&shared.panic).get_or_insert(caught);
        }
        shared.job_state.0.fetch_sub(1, Ordering::Release);
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    quiet_panics::payload_text(payload)
        .unwrap_or_else(|| "a panic with a payload that is not text".into())
}

/// Counts this worker into the job of `epoch` if that job is still open.
fn join_job(shared: &Shared, epoch: u64) -> bool {
    let state = &shared.job_state.0;
    let mut current = state.load(Ordering::Relaxed);
    loop {
        if current & !JOINED_MASK != epoch_bits(epoch) {
            // Closed, or a later job already: this worker has nothing to do for `epoch`.
            return false;
        }
        match state.compare_exchange_weak(
            current,
            current + 1,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(actual) => current = actual,
        }
    }
}

/// Returns the epoch once it differs from `seen`: spinning first, then sleeping.
fn wait_for_epoch(shared: &Shared, seen: u64) -> u64 {
    let spin_start = Instant::now();
    let mut spins = 0_u32;
    loop {
        let epoch = shared.epoch.0.load(Ordering::Acquire);
        if epoch != seen {
            return epoch;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(SPINS_PER_CHECK) {
            hint::spin_loop();
            continue;
        }
        if spin_start.elapsed() < SPIN_TIME {
            // On a busy machine this worker may share a core with the caller: yielding
            // now and then hands the core back instead of spinning out the time slice.
            thread::yield_now();
            continue;
        }
        let mut guard = lock(&shared.sleep_lock);
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        while shared.epoch.0.load(Ordering::SeqCst) == seen {
            guard = shared
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        for n_threads in [1, 2, 3, 5] {
            let mut pool = WorkerPool::new(n_threads).unwrap();
            for n_tasks in [0, 1, 2, 7, 100] {
                let counts: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n_tasks, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            }
        }
    }

    /// Each task learns the thread running it; no two threads share an index, and the
    /// tasks a thread runs never overlap in time.
    #[test]
    fn thread_indices_are_distinct_and_in_range() {
        for n_threads in [1, 2, 4] {
            let mut pool = WorkerPool::new(n_threads).unwrap();
            let busy: Vec<AtomicBool> = (0..n_threads).map(|_| AtomicBool::new(false)).collect();
            let ids: Vec<Mutex<Option<thread::ThreadId>>> =
                (0..n_threads).map(|_| Mutex::new(None)).collect();
            pool.run_with_thread(200, &|_, index| {
                assert!(index < n_threads);
                assert!(
                    !busy[index].swap(true, Ordering::SeqCst),
                    "index {index} in use"
                );
                let id = thread::current().id();
                assert_eq!(*lock(&ids[index]).get_or_insert(id), id);
                thread::sleep(Duration::from_micros(50));
                busy[index].store(false, Ordering::SeqCst);
            });
        }
    }

    #[test]
    fn many_short_jobs_in_a_row() {
        let mut pool = WorkerPool::new(3).unwrap();
        let total = AtomicUsize::new(0);
        for _ in 0..20_000 {
            pool.run(4, &|i| {
                total.fetch_add(i, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 20_000 * 6);
    }

    #[test]
    fn sleeping_workers_wake_up() {
        let mut pool = WorkerPool::new(2).unwrap();
        thread::sleep(SPIN_TIME * 4);
        let threads = Mutex::new(std::collections::HashSet::new());
        // Enough slow tasks that the woken worker takes some of them.
        pool.run(64, &|_| {
            lock(&threads).insert(thread::current().id());
            thread::sleep(Duration::from_millis(1));
        });
        assert_eq!(lock(&threads).len(), 2);
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_still_works() {
        let mut pool = WorkerPool::new(2).unwrap();
        for _ in 0..10 {
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.run(8, &|i| {
                    thread::sleep(Duration::from_micros(200));
                    assert!(i != 5, "task 5 fails");
                })
            }));
            let message = panic_message(result.unwrap_err().as_ref());
            assert!(message.starts_with("task 5 fails"), "{message}");
        }
        let done = AtomicUsize::new(0);
        pool.run(8, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_recycled_vector_keeps_its_allocation() {
        let mut values = [1.0f32, 2.0, 3.0];
        let mut parts: Vec<&mut [f32]> = Vec::with_capacity(8);
        parts.extend(values.chunks_mut(1));
        let kept: Vec<&'static mut [f32]> = recycle(parts);
        assert_eq!((kept.len(), kept.capacity()), (0, 8));
        let again: Vec<&mut [f32]> = recycle(kept);
        assert_eq!(again.capacity(), 8);
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(WorkerPool::new(0), Err(Error::InvalidArgument(_))));
    }
}
