//! A vendor BLAS handle bound to one stream, and the one product the prefill path needs:
//! `y = x · Wᵀ` with f16 inputs and f32 accumulation, on the tensor cores where the GPU
//! has them.

use half::f16;

use super::super::result::{BlasLibrary, RawGemm};
use super::super::sys::blas::RawBlasHandle;
use super::super::sys::{DevicePtr, RawStream};
use super::device::Device;
use super::memory::{DeviceBuffer, DeviceCopy};
use super::stream::Stream;
use crate::error::{Error, Result};

/// One BLAS handle, queuing its work on the stream it was made for. Drop it before that
/// stream (it holds the stream's handle, not a borrow of it).
pub struct Blas {
    device: Device,
    library: &'static BlasLibrary,
    handle: RawBlasHandle,
    stream: RawStream,
}

// SAFETY: the handle and stream are only passed to the library. The vendors allow a handle
// to be used from any thread, one call at a time: every call through it takes `&mut self`
// (or `self` in `Drop`), so a shared `&Blas` can make none.
unsafe impl Send for Blas {}
// SAFETY: as above.
unsafe impl Sync for Blas {}

/// `y[t, y_offset + r] = Σ_c w[r, c] · x[t, c]` for `r < n_rows`, `t < n_tokens`: `w` is
/// `[n_rows, n_cols]` and `x` `[n_tokens, n_cols]`, both row-major; row `t` of `y` starts
/// at element `t * y_stride`. A weight matrix done in row panels writes each panel's
/// columns of `y` (`y_offset`, with `y_stride` the whole matrix's rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub n_rows: usize,
    pub n_cols: usize,
    pub n_tokens: usize,
    pub y_stride: usize,
    pub y_offset: usize,
}

impl Blas {
    /// A handle of the vendor BLAS of `stream`'s device, queuing on `stream`. Fails with
    /// the reason when the library cannot be found or started: callers fall back to
    /// their own kernels.
    pub fn new(stream: &Stream) -> Result<Blas> {
        let device = stream.device().clone();
        let library = BlasLibrary::load(device.vendor())?;
        // SAFETY: `run` made the device current; the `Blas` below owns the handle.
        let handle = device.run(|_| Ok(unsafe { library.create_handle() }))??;
        let blas = Blas {
            device,
            library,
            handle,
            stream: stream.raw(),
        };
        let raw = stream.raw();
        // SAFETY: the handle is live and on the stream's device; the caller drops the
        // `Blas` before the stream (see the type's documentation).
        let bound = |_| Ok(unsafe { library.set_stream(handle, raw) });
        blas.device.run(bound)??;
        Ok(blas)
    }

    /// The library that was opened, for logs.
    pub fn library_path(&self) -> &str {
        self.library.path()
    }

    /// Queues the product `shape` describes on `stream` (the stream this handle was made
    /// for); returns without waiting. `w` holds the f16 weights as f16 values or as their
    /// bytes (an F16 model's tensor as uploaded): every bit pattern is an f16, and device
    /// allocations are aligned far beyond 2 bytes. Every length is checked first: an
    /// [`Error::InvalidArgument`] says which.
    pub fn gemm_f16<W: DeviceCopy>(
        &mut self,
        stream: &Stream,
        shape: &GemmShape,
        w: &DeviceBuffer<W>,
        x: &DeviceBuffer<f16>,
        y: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        if stream.raw() != self.stream || !self.device.same_device(stream.device()) {
            return Err(Error::InvalidArgument(
                "gemm_f16: the stream is not the one this BLAS handle queues on".into(),
            ));
        }
        let GemmShape {
            n_rows,
            n_cols,
            n_tokens,
            y_stride,
            y_offset,
        } = *shape;
        if n_cols == 0 {
            return Err(Error::InvalidArgument(format!(
                "gemm_f16 {shape:?}: no columns"
            )));
        }
        if y_offset
            .checked_add(n_rows)
            .is_none_or(|end| end > y_stride)
        {
            return Err(Error::InvalidArgument(format!(
                "gemm_f16 {shape:?}: the rows written do not fit a row of y"
            )));
        }
        if n_rows == 0 || n_tokens == 0 {
            return Ok(());
        }
        let y_len = (n_tokens - 1)
            .checked_mul(y_stride)
            .and_then(|v| v.checked_add(y_offset + n_rows));
        let weight_bytes = n_rows
            .checked_mul(n_cols)
            .and_then(|v| v.checked_mul(size_of::<f16>()));
        self.check_buffer(
            "gemm_f16 weights",
            w,
            weight_bytes.map(|b| b.div_ceil(size_of::<W>())),
        )?;
        self.check_buffer("gemm_f16 input", x, n_tokens.checked_mul(n_cols))?;
        self.check_buffer("gemm_f16 output", y, y_len)?;
        let int = |what: &str, v: usize| {
            i32::try_from(v).map_err(|_| {
                Error::InvalidArgument(format!("gemm_f16: {what} = {v} exceeds {}", i32::MAX))
            })
        };
        // Column-major BLAS, row-major data: a row-major [R, C] matrix is the column-major
        // [C, R] one with leading dimension C. So W is Wᵀ ([n_cols, n_rows], ld n_cols),
        // x is xᵀ ([n_cols, n_tokens], ld n_cols), and the row-major y we want is the
        // column-major yᵀ = W · xᵀ ([n_rows, n_tokens], ld y_stride): op(A) = (Wᵀ)ᵀ ("T"),
        // op(B) = xᵀ as stored ("N"), m = n_rows, n = n_tokens, k = n_cols. This "TN"
        // form, both operands contiguous along k, is the one the libraries tune most.
        let gemm = RawGemm {
            transpose_a: true,
            m: int("rows", n_rows)?,
            n: int("tokens", n_tokens)?,
            k: int("columns", n_cols)?,
            a: w.device_ptr(),
            lda: int("columns", n_cols)?,
            b: x.device_ptr(),
            ldb: int("columns", n_cols)?,
            c: y.device_ptr() + (y_offset * size_of::<f32>()) as DevicePtr,
            ldc: int("the output stride", y_stride)?,
        };
        let (library, handle) = (self.library, self.handle);
        // SAFETY: `run` made the device current; the handle is live and queues on the
        // stream passed (checked above); w, x and y hold the matrices `gemm` describes
        // (lengths checked above) and, being borrowed here, outlive the queuing; the
        // vendors' free waits for queued work, so dropping them later is safe too.
        let queue = |_| Ok(unsafe { library.gemm_f16_f32(handle, &gemm) });
        self.device.run(queue)?
    }

    /// Fails unless `buffer` is on this handle's device and holds `needed` elements
    /// (`None`: the count overflowed).
    fn check_buffer<T: DeviceCopy>(
        &self,
        what: &str,
        buffer: &DeviceBuffer<T>,
        needed: Option<usize>,
    ) -> Result<()> {
        if !buffer.device().same_device(&self.device) {
            return Err(Error::InvalidArgument(format!(
                "{what}: the buffer is on another device than the BLAS handle"
            )));
        }
        match needed {
            Some(needed) if buffer.len() >= needed => Ok(()),
            Some(needed) => Err(Error::InvalidArgument(format!(
                "{what}: the buffer holds {} elements, the product needs {needed}",
                buffer.len()
            ))),
            None => Err(Error::InvalidArgument(format!(
                "{what}: the element count overflows"
            ))),
        }
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        let (library, handle) = (self.library, self.handle);
        let _ = self.device.run_cleanup(|_| {
            // SAFETY: the handle is not used after this; `run_cleanup` made its device
            // current. A failure leaves nothing to undo.
            let _ = unsafe { library.destroy_handle(handle) };
            Ok(())
        });
    }
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blas({} on {:?})", self.library.path(), self.device)
    }
}
