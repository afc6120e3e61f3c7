//! GPUs of one process that all-reduce together: one communicator of the vendor's
//! collectives library (NCCL, RCCL) for each, made and destroyed together.

use std::ffi::c_int;

use super::super::result::CollectiveLibrary;
use super::super::sys::collectives::RawComm;
use super::device::Device;
use super::memory::DeviceBuffer;
use super::stream::Stream;
use crate::error::{Error, Result};

pub struct Communicators {
    library: &'static CollectiveLibrary,
    /// Each GPU of the group with its communicator, in the group's order.
    members: Vec<(Device, RawComm)>,
}

// SAFETY: the communicators are only passed to the library, which allows them to be used
// from any thread one operation at a time: the one operation takes `&mut self`.
unsafe impl Send for Communicators {}
// SAFETY: as above; a shared `&Communicators` can start no operation.
unsafe impl Sync for Communicators {}

impl Communicators {
    /// A communicator for each of `devices`: GPUs of one runtime, each at most once (the
    /// libraries refuse a GPU twice). Without the runtime's collectives library this is
    /// [`Error::Unsupported`], naming where it was looked for.
    pub fn new(devices: &[Device]) -> Result<Communicators> {
        let Some(first) = devices.first() else {
            return Err(Error::InvalidArgument(
                "communicators for no devices".into(),
            ));
        };
        if devices.iter().any(|d| d.vendor() != first.vendor()) {
            return Err(Error::InvalidArgument(
                "communicators across GPUs of different runtimes".into(),
            ));
        }
        let library = CollectiveLibrary::load(first.vendor())?;
        let ordinals = devices
            .iter()
            .map(|d| c_int::try_from(d.facts().ordinal))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::InvalidArgument("a device ordinal past i32".into()))?;
        // SAFETY: `Communicators::drop` destroys each communicator once.
        let comms = first.run(|_| Ok(unsafe { library.comm_init_all(&ordinals) }))??;
        Ok(Communicators {
            library,
            members: devices.iter().cloned().zip(comms).collect(),
        })
    }

    /// The collectives library in use, for logs.
    pub fn library_path(&self) -> &str {
        self.library.path()
    }

    /// Queues, on each member's stream in `streams` (the group's order), the element-wise
    /// sum over the group of `buffers` (one a member, of the same length), leaving the
    /// sum in every one; returns without waiting.
    pub fn all_reduce_sum(
        &mut self,
        buffers: &mut [&mut DeviceBuffer<f32>],
        streams: &[&Stream],
    ) -> Result<()> {
        let n = self.members.len();
        if buffers.len() != n || streams.len() != n {
            return Err(Error::InvalidArgument(format!(
                "an all-reduce over {n} GPUs given {} buffers and {} streams",
                buffers.len(),
                streams.len()
            )));
        }
        let count = buffers[0].len();
        let placed = self.members.iter().zip(buffers.iter()).zip(streams);
        for (((device, _), buffer), stream) in placed {
            if buffer.len() != count
                || !buffer.device().same_device(device)
                || !stream.device().same_device(device)
            {
                return Err(Error::InvalidArgument(
                    "an all-reduce's buffers must be of one length, each with its stream on \
                     its member's GPU"
                        .into(),
                ));
            }
        }
        let library = self.library;
        library.group_start()?;
        let queued = self
            .members
            .iter()
            .zip(buffers.iter())
            .zip(streams)
            .try_for_each(|(((device, comm), buffer), stream)| {
                let (data, raw) = (buffer.device_ptr(), stream.raw());
                // SAFETY: the buffer holds `count` f32 values on the member's GPU and
                // stays borrowed for this call, and the caller keeps it allocated while
                // its stream runs (as every queued operation); the stream is the member's.
                device.run(|_| Ok(unsafe { library.all_reduce_sum(data, count, *comm, raw) }))?
            });
        // The group is ended whatever happened inside it.
        let ended = library.group_end();
        queued.and(ended)
    }
}

impl Drop for Communicators {
    fn drop(&mut self) {
        let library = self.library;
        for (device, comm) in &self.members {
            // A lost device is skipped: its context went with everything on it.
            let _ = device.run_cleanup(|_| {
                // SAFETY: each communicator came from `comm_init_all` and is destroyed
                // once, here, after the owner's last operation.
                let _ = unsafe { library.comm_destroy(*comm) };
                Ok(())
            });
        }
    }
}
