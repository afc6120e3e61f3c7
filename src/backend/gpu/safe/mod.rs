//! The owning layer: devices, memory, streams, events, modules and graphs as Rust values
//! that release what they hold when they drop.

mod blas;
mod collectives;
mod device;
mod event;
mod graph;
mod launch;
mod mapped_host;
mod memory;
mod module;
mod page_locked;
mod staging;
mod stream;
mod tracker;

pub use blas::{Blas, GemmShape};
pub use collectives::Communicators;
pub use device::{Device, DeviceFacts, MemoryInfo};
pub use event::Event;
pub use graph::Graph;
pub use launch::{Dim3, KernelArg, KernelArgs, LaunchConfig, MAX_THREADS_PER_BLOCK};
pub use mapped_host::MappedHost;
pub use memory::{DeviceBuffer, DeviceCopy};
pub use module::{Function, Module};
pub use staging::{MAX_UPLOADS, STAGING_HEADER_BYTES, StagedUploads, UploadSet, UploadStaging};
pub use stream::Stream;
pub use tracker::MemoryStats;
