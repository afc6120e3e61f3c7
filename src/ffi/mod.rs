//! The C ABI: the only module that knows about C. Opaque handles (`rf_model` shared and
//! immutable; `rf_context` and `rf_sampler` one thread at a time), status codes with fixed
//! values, a panic boundary and a thread-local last-error message around every entry
//! point, `struct_size`-versioned parameter structs. Nothing here prints.
#![allow(non_camel_case_types)]

mod args;
mod boundary;
mod chat;
mod context;
mod device;
mod estimate;
mod generate;
mod library;
mod log;
mod model;
mod sampler;
mod shares;
mod state;
mod status;
mod tokens;

pub use chat::*;
pub use context::*;
pub use device::*;
pub use estimate::*;
pub use generate::*;
pub use library::*;
pub use log::*;
pub use model::*;
pub use sampler::*;
pub use shares::*;
pub use state::*;
pub use status::rf_status;
pub use tokens::*;
