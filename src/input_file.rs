//! Opening a file the library reads whole, named by the host (a model, a saved state):
//! only a regular file. The open never waits: a FIFO would block it until some writer
//! came, and a character device (`/dev/zero`) reads without end.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The regular file at `path`, open for reading, and its length.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let io_error = |source| Error::io(path, source);
    // Non-blocking, so that opening a FIFO returns at once; for a regular file the flag
    // changes nothing. Never the process's controlling terminal, should the path be one.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO, socket or device)",
        )));
    }
    Ok((file, metadata.len()))
}
