//! The sums of a tensor split's partial results over its GPUs (`kernels/peer_sum.hip`):
//! each GPU's exchange memory, the table of the group's addresses its kernel reads, and
//! the launch. The kernels of the group's GPUs meet through that memory, with no host call
//! between them, so a sum can sit inside each GPU's captured decode graph.

use std::sync::Arc;

use super::super::safe::{
    DeviceBuffer, Function, KernelArgs, LaunchConfig, MappedHost, Module, Stream,
};
use super::{GpuOps, check_buffer};
use crate::error::{Error, Result};

/// The most GPUs a sum spans (`RF_PEER_SUM_RANKS`).
pub const MAX_PEER_SUM_RANKS: usize = 8;
/// The blocks of every sum (`RF_PEER_SUM_BLOCKS`): each block counts the sums it took part
/// in, so every launch has all of them.
const BLOCKS: u32 = 64;
const THREADS: u32 = 256;
/// A rank's flags: one for each block and each other rank.
const FLAGS: usize = BLOCKS as usize * MAX_PEER_SUM_RANKS;

pub(super) struct PeerSumKernels {
    sum: Function,
    clear: Function,
}

impl PeerSumKernels {
    pub(super) fn load(module: &Module) -> Result<PeerSumKernels> {
        Ok(PeerSumKernels {
            sum: module.function("rf_peer_sum_f32")?,
            clear: module.function("rf_peer_sum_clear")?,
        })
    }
}

/// A GPU's memory that the other GPUs of its group write: their parts of each sum, and
/// their flags that say a part is there.
struct PostedMemory {
    /// Two slots of one part of `capacity` values a rank: consecutive sums alternate
    /// between them.
    values: DeviceBuffer<f32>,
    flags: DeviceBuffer<u32>,
}

/// One GPU's part in its group's sums: rank `rank` of `group.len()`.
pub struct PeerExchange {
    rank: usize,
    /// Every rank's posted memory, by rank. This GPU's kernels write all of them (through
    /// `table`), so each rank holds them all: none is freed while a rank that can still
    /// reach it lives.
    group: Vec<Arc<PostedMemory>>,
    /// Every rank's `values` address, then every rank's `flags` address.
    table: DeviceBuffer<u64>,
    /// This rank's count of sums, per block.
    epochs: DeviceBuffer<u32>,
    /// Nonzero: stop waiting for the other ranks (their part of the step never came). In
    /// host memory, so that raising it waits for nothing on the device.
    abort: MappedHost<u32>,
    capacity: usize,
}

impl PeerExchange {
    /// The exchanges of a group of GPUs, rank `r` on `streams[r]`'s device, for sums of up
    /// to `capacity` values. Each GPU must reach every other one's memory directly (peer
    /// access enabled; a GPU named twice is its own peer).
    pub fn group(streams: &[&Stream], capacity: usize) -> Result<Vec<PeerExchange>> {
        if streams.is_empty() || streams.len() > MAX_PEER_SUM_RANKS {
            return Err(Error::InvalidArgument(format!(
                "a sum over {} GPUs: expected 1 to {MAX_PEER_SUM_RANKS}",
                streams.len()
            )));
        }
        let overflow =
            || Error::DeviceOutOfMemory(format!("a sum's exchange of {capacity} values overflows"));
        // Whole groups of four, so that every part begins 16-byte aligned.
        let capacity = capacity.checked_next_multiple_of(4).ok_or_else(overflow)?;
        let slots = exchange_values(streams.len(), capacity).ok_or_else(overflow)?;
        let group = streams
            .iter()
            .map(|stream| {
                let device = stream.device();
                Ok(Arc::new(PostedMemory {
                    values: device.alloc_zeroed(slots)?,
                    flags: device.alloc_zeroed(FLAGS)?,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        let addresses: Vec<u64> = (group.iter().map(|m| m.values.device_ptr()))
            .chain(group.iter().map(|m| m.flags.device_ptr()))
            .collect();
        streams
            .iter()
            .enumerate()
            .map(|(rank, stream)| {
                let device = stream.device();
                Ok(PeerExchange {
                    rank,
                    group: group.clone(),
                    table: device.upload(stream, &addresses)?,
                    epochs: device.alloc_zeroed(BLOCKS as usize)?,
                    abort: MappedHost::new(device, 1)?,
                    capacity,
                })
            })
            .collect()
    }

    /// Device bytes this rank holds for the group: its posted memory, table and counts.
    pub fn device_bytes(&self) -> u64 {
        let posted = &self.group[self.rank];
        [
            posted.values.size_bytes(),
            posted.flags.size_bytes(),
            self.table.size_bytes(),
            self.epochs.size_bytes(),
        ]
        .iter()
        .sum::<usize>() as u64
    }

    /// Device bytes [`PeerExchange::group`] allocates on each GPU for `n_ranks` ranks and
    /// sums of `capacity` values.
    pub fn planned_bytes(n_ranks: usize, capacity: usize) -> u128 {
        let values = 2 * n_ranks as u128 * (capacity as u128).next_multiple_of(4);
        let words = FLAGS + BLOCKS as usize;
        4 * values + 4 * words as u128 + 16 * n_ranks as u128
    }

    /// Lets this rank's sums stop waiting for the other ranks: the way out of a step that
    /// failed on another GPU before it queued its part.
    pub fn abort(&self) {
        self.abort.store(0, 1);
    }
}

/// Values of a rank's exchange: two slots of a part of `capacity` values for each rank.
fn exchange_values(n_ranks: usize, capacity: usize) -> Option<usize> {
    capacity.checked_mul(n_ranks)?.checked_mul(2)
}

impl GpuOps {
    /// `out[i] += Σ_r partial_r[i]` for the first `n` values, over the ranks of
    /// `exchange`'s group: queued on every GPU of the group, the kernels wait for each
    /// other, and every GPU gets the same bits (the ranks' values added in rank order).
    pub fn peer_sum_into(
        &self,
        stream: &Stream,
        exchange: &mut PeerExchange,
        out: &mut DeviceBuffer<f32>,
        partial: &DeviceBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        check_buffer("peer sum output", out, n, stream)?;
        self.launch_peer_sum(stream, exchange, out.device_ptr(), partial, n, true)
    }

    /// `x[i] = Σ_r x_r[i]` for the first `n` values; see [`GpuOps::peer_sum_into`].
    pub fn peer_sum_in_place(
        &self,
        stream: &Stream,
        exchange: &mut PeerExchange,
        x: &mut DeviceBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        self.launch_peer_sum(stream, exchange, x.device_ptr(), x, n, false)
    }

    /// Queues the sum writing `out` (the address of a buffer the caller holds mutably or
    /// `partial` itself, of at least `n` values, checked by the caller where it is not
    /// `partial`).
    fn launch_peer_sum(
        &self,
        stream: &Stream,
        exchange: &mut PeerExchange,
        out: u64,
        partial: &DeviceBuffer<f32>,
        n: usize,
        accumulate: bool,
    ) -> Result<()> {
        check_buffer("peer sum partial", partial, n, stream)?;
        check_buffer("peer sum counts", &exchange.epochs, 0, stream)?;
        if n > exchange.capacity {
            return Err(Error::InvalidArgument(format!(
                "a peer sum of {n} values in an exchange of {}",
                exchange.capacity
            )));
        }
        let n_ranks = exchange.group.len();
        // Four values at a time where every part and both buffers begin 16-byte aligned
        // (`capacity` is whole groups of four).
        let vector = n.is_multiple_of(4)
            && out.is_multiple_of(16)
            && partial.device_ptr().is_multiple_of(16);
        let flags = u32::from(accumulate) | (u32::from(vector) << 1);
        let mut args = KernelArgs::new();
        args.push(out)
            .push(partial)
            .push(&exchange.table)
            .push(&mut exchange.epochs)
            .push(&exchange.abort)
            .push(n as u64)
            .push(exchange.capacity as u64)
            .push(n_ranks as u32)
            .push(exchange.rank as u32)
            .push(flags);
        // SAFETY: the arguments match rf_peer_sum_f32(out, partial, peers, epochs, abort,
        // n, capacity, n_ranks, rank, flags_accumulate_vector). out and partial hold n
        // floats on this device (checked), 16-byte aligned where `vector` says so; the
        // table holds the addresses of every rank's posted memory (2 * n_ranks * capacity
        // values, FLAGS flags), which `exchange.group` keeps allocated, with n <= capacity
        // (checked), capacity a multiple of 4, and n_ranks <= RF_PEER_SUM_RANKS (`group`);
        // epochs holds BLOCKS counts, one per block of this grid of exactly BLOCKS blocks;
        // the abort word is host memory `exchange` owns, mapped into the device.
        unsafe {
            self.peer_sum
                .sum
                .launch(stream, &LaunchConfig::linear(BLOCKS, THREADS), &args)
        }
    }

    /// Zeroes `exchange`'s flags and counts, in `stream` order, and its abort word: once
    /// every rank of the group has stopped, after a failed step (see
    /// [`PeerExchange::abort`]).
    pub fn peer_sum_clear(&self, stream: &Stream, exchange: &mut PeerExchange) -> Result<()> {
        let posted = &exchange.group[exchange.rank];
        check_buffer("peer sum flags", &posted.flags, FLAGS, stream)?;
        check_buffer("peer sum counts", &exchange.epochs, BLOCKS as usize, stream)?;
        exchange.abort.store(0, 0);
        let mut args = KernelArgs::new();
        args.push(&posted.flags).push(&mut exchange.epochs);
        // SAFETY: the arguments match rf_peer_sum_clear(flags, epochs), which writes
        // FLAGS flags and BLOCKS counts, each buffer that long (checked). The flags are
        // this rank's own, which the other ranks write only in a sum, and the caller
        // clears once every rank has stopped.
        unsafe {
            self.peer_sum
                .clear
                .launch(stream, &LaunchConfig::linear(1, THREADS), &args)
        }
    }
}
