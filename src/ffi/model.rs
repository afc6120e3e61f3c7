//! Models: load from a path or from memory, free, describe, and read metadata.

use std::ffi::{CString, c_char, c_void};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use super::args::{
    bytes, c_string, out, reference, slice, text, versioned, versioned_struct, write_text,
};
use super::boundary::{Failure, call, free_quietly};
use super::device::device_reports;
use super::log::{Logger, RF_LOG_INFO, rf_log_callback};
use super::status::rf_status;
use crate::backend::DeviceChoice;
use crate::backend::cpu::MAX_THREADS;
use crate::error::Error;
use crate::gguf::{GgufFile, OwnedGguf, Value};
use crate::grammar::GrammarVocabulary;
use crate::model::{MAX_SHARES, Model, Placement, SplitMode};
use crate::tokenizer::Tokenizer;

/// `rf_model_params.device`: the best usable GPU, else the CPU.
pub const RF_DEVICE_AUTO: i32 = -1;
/// `rf_model_params.device`: the CPU (device 0).
pub const RF_DEVICE_CPU: i32 = 0;

/// `rf_model_params.split_mode`: each GPU of `devices` holds a contiguous range of the
/// layers and their KV cache; the residual stream crosses between them once a step.
pub const RF_SPLIT_LAYER: u32 = 0;
/// `rf_model_params.split_mode`: each GPU of `devices` (at most 8, each named once, which
/// must reach each other's memory directly) holds its part of every layer: whole K/V heads
/// with their query heads and K/V cache, and a slice of the feed-forward; the GPUs add up
/// their partial results twice a layer, kernel to kernel through each other's memory. A
/// shape whose heads or blocks do not divide over the GPUs is `RF_ERR_INVALID_ARGUMENT`.
/// A cancel (`rf_context_cancel`) is honoured before a step, not between its layers.
pub const RF_SPLIT_TENSOR: u32 = 1;

/// Called with the load progress in [0, 1]; returning false cancels the load.
pub type rf_progress_callback =
    Option<unsafe extern "C" fn(progress: f32, user_data: *mut c_void) -> bool>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_model_params {
    /// `sizeof(rf_model_params)`, set by `rf_model_default_params()`.
    pub struct_size: u32,
    /// `RF_DEVICE_AUTO`, `RF_DEVICE_CPU`, or a device index from `rf_device_info`.
    pub device: i32,
    /// Threads for CPU work; 0 = one per core.
    pub n_threads: u32,
    /// Map the file instead of reading it into memory.
    pub use_mmap: bool,
    /// Load only the vocabulary and metadata: tokenize, no contexts.
    pub vocab_only: bool,
    pub progress_callback: rf_progress_callback,
    pub progress_user_data: *mut c_void,
    /// May be called from any thread that uses the model.
    pub log_callback: rf_log_callback,
    pub log_user_data: *mut c_void,
    /// Lowest `RF_LOG_*` level delivered.
    pub log_level: u32,
    /// Several GPUs for one model: `n_devices` indexes from `rf_device_info`, in layer
    /// order, used instead of `device` when `n_devices` is not 0. An index may repeat
    /// (those shares then run on one GPU, each with its own allocation counters and
    /// `device_memory_limit`). They must be GPUs of one runtime, except that a layer split
    /// over one device, the CPU included, is that device alone; the model must have at
    /// least `n_devices` layers.
    pub devices: *const i32,
    pub n_devices: usize,
    /// `RF_SPLIT_LAYER` or `RF_SPLIT_TENSOR`, for `devices`.
    pub split_mode: u32,
    /// `n_devices` positive numbers: how much of the model each device takes. NULL: in
    /// proportion to each GPU's free memory.
    pub split_proportions: *const f32,
    /// The most memory the model and its contexts may allocate on each GPU they use (on
    /// each share, where `devices` names a GPU more than once), in bytes (weights, KV
    /// caches, activations; not the vendor libraries' workspaces or the kernels' code);
    /// 0 = no limit but the GPU's. A load or context that needs more is
    /// `RF_ERR_DEVICE_OUT_OF_MEMORY`, so a host can keep the rest for itself.
    pub device_memory_limit: u64,
}

versioned_struct!(rf_model_params {
    struct_size,
    device,
    n_threads,
    use_mmap,
    vocab_only,
    progress_callback,
    progress_user_data,
    log_callback,
    log_user_data,
    log_level,
    devices,
    n_devices,
    split_mode,
    split_proportions,
    device_memory_limit
});

/// A loaded model. Immutable: any number of threads and contexts may share it. Contexts
/// keep it alive, so freeing it while they exist is safe.
pub struct rf_model {
    pub(crate) shared: Arc<LoadedModel>,
}

pub(crate) enum Weights {
    Full(Arc<Model>),
    VocabOnly(OwnedGguf),
}

pub(crate) struct LoadedModel {
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub logger: Logger,
    pub n_threads: usize,
    architecture: CString,
    name: CString,
    /// Built by the first sampler with a grammar that draws from this model.
    grammar_vocabulary: Mutex<Option<Arc<GrammarVocabulary>>>,
}

impl LoadedModel {
    pub fn gguf(&self) -> &GgufFile<'_> {
        match &self.weights {
            Weights::Full(model) => model.gguf(),
            Weights::VocabOnly(gguf) => gguf.file(),
        }
    }

    /// The vocabulary as grammars read it, built on first use and shared after.
    pub fn grammar_vocabulary(&self) -> Result<Arc<GrammarVocabulary>, Failure> {
        let mut slot = self
            .grammar_vocabulary
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(vocabulary) = &*slot {
            return Ok(Arc::clone(vocabulary));
        }
        let vocabulary = GrammarVocabulary::new(&self.tokenizer)?;
        *slot = Some(Arc::clone(&vocabulary));
        Ok(vocabulary)
    }

    pub fn model(&self) -> Result<&Arc<Model>, Failure> {
        match &self.weights {
            Weights::Full(model) => Ok(model),
            Weights::VocabOnly(_) => Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                "the model was loaded with vocab_only: it has no weights",
            )),
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn rf_model_default_params() -> rf_model_params {
    rf_model_params {
        struct_size: size_of::<rf_model_params>() as u32,
        device: RF_DEVICE_AUTO,
        n_threads: 0,
        use_mmap: true,
        vocab_only: false,
        progress_callback: None,
        progress_user_data: std::ptr::null_mut(),
        log_callback: None,
        log_user_data: std::ptr::null_mut(),
        log_level: RF_LOG_INFO,
        devices: std::ptr::null(),
        n_devices: 0,
        split_mode: RF_SPLIT_LAYER,
        split_proportions: std::ptr::null(),
        device_memory_limit: 0,
    }
}

/// Loads the GGUF file at `path` (`path_len` bytes of UTF-8). `params` may be NULL for
/// the defaults.
///
/// # Safety
/// Pointers must be NULL or valid as described; `*out` receives a model to free with
/// `rf_model_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_load(
    path: *const c_char,
    path_len: usize,
    params: *const rf_model_params,
    out_model: *mut *mut rf_model,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract for each pointer.
        let (path, params, out_model) = unsafe {
            (
                text(path, path_len, "path")?,
                versioned(params, rf_model_default_params(), "params")?,
                out(out_model, "out_model")?,
            )
        };
        #[cfg(feature = "panic-test")]
        if path == "rocmforge:panic" {
            panic!("forced by the panic-test feature");
        }
        let path = Path::new(path);
        // SAFETY: the caller's contract for `params`.
        let placement = unsafe { choose_devices(&params)? };
        *out_model = load_with(&params, placement, || {
            if params.use_mmap {
                OwnedGguf::open(path)
            } else {
                OwnedGguf::read(path)
            }
        })?;
        Ok(())
    })
}

/// Loads a model from `len` bytes at `data`, which are borrowed, not copied.
///
/// # Safety
/// `data` must stay valid and unchanged until `rf_model_free` (and until every context
/// made from the model is freed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_load_from_memory(
    data: *const c_void,
    len: usize,
    params: *const rf_model_params,
    out_model: *mut *mut rf_model,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract: `data` lives, unchanged, as long as the model.
        let (data, params, out_model): (&'static [u8], _, _) = unsafe {
            (
                bytes(data.cast(), len, "data")?,
                versioned(params, rf_model_default_params(), "params")?,
                out(out_model, "out_model")?,
            )
        };
        // SAFETY: the caller's contract for `params`.
        let placement = unsafe { choose_devices(&params)? };
        *out_model = load_with(&params, placement, || OwnedGguf::from_static(data))?;
        Ok(())
    })
}

/// Reports progress; a host that returns false cancels the load.
fn progress(params: &rf_model_params, fraction: f32) -> Result<(), Failure> {
    if let Some(callback) = params.progress_callback {
        // SAFETY: the host gave this callback and user data for exactly this use.
        if !unsafe { callback(fraction, params.progress_user_data) } {
            return Err(Error::Cancelled.into());
        }
    }
    Ok(())
}

/// The devices `params` select (see [`devices_of`]), under its memory limit.
///
/// # Safety
/// As for [`devices_of`].
pub(super) unsafe fn choose_devices(params: &rf_model_params) -> Result<Placement, Failure> {
    let limit = (params.device_memory_limit != 0).then_some(params.device_memory_limit);
    // SAFETY: forwarded from the caller.
    let placement = unsafe { devices_of(params)? };
    Ok(placement.with_memory_limit(limit))
}

/// The devices `params` select: `device` (`RF_DEVICE_AUTO` or an index), or the layer
/// split over `devices`.
///
/// # Safety
/// `params.devices` and `params.split_proportions` NULL or readable for `n_devices`
/// values each.
unsafe fn devices_of(params: &rf_model_params) -> Result<Placement, Failure> {
    let index = |index: i32| {
        usize::try_from(index).map_err(|_| {
            Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("device {index} does not exist"),
            )
        })
    };
    if params.n_devices == 0 {
        let choice = match params.device {
            RF_DEVICE_AUTO => DeviceChoice::Auto,
            i => DeviceChoice::Index(index(i)?),
        };
        return Ok(Placement::choose(&device_reports(&[]), choice)?);
    }
    // A count past any split is a bad argument, not a length to read memory for.
    if params.n_devices > MAX_SHARES {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!(
                "n_devices is {}, expected at most {MAX_SHARES}",
                params.n_devices
            ),
        ));
    }
    // SAFETY: the caller's contract.
    let (devices, proportions) = unsafe {
        (
            slice(params.devices, params.n_devices, "devices")?,
            match params.split_proportions.is_null() {
                true => None,
                false => Some(slice(
                    params.split_proportions,
                    params.n_devices,
                    "split_proportions",
                )?),
            },
        )
    };
    let mode = match params.split_mode {
        RF_SPLIT_LAYER => SplitMode::Layers,
        RF_SPLIT_TENSOR => SplitMode::Tensors,
        mode => {
            return Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("split_mode {mode}: expected RF_SPLIT_LAYER or RF_SPLIT_TENSOR"),
            ));
        }
    };
    let indexes = devices
        .iter()
        .map(|&i| index(i))
        .collect::<Result<Vec<_>, _>>()?;
    // Two shares of one GPU would wait for each other's kernels on it, which it need not
    // run at once (the Rust API allows it, for tests on one GPU).
    let repeated = (1..indexes.len()).find(|&i| indexes[..i].contains(&indexes[i]));
    if let (SplitMode::Tensors, Some(i)) = (mode, repeated) {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!(
                "RF_SPLIT_TENSOR names device {} twice: a tensor split needs distinct GPUs",
                indexes[i]
            ),
        ));
    }
    // Without proportions the split follows the named devices' free memory, read now.
    let refresh = match proportions {
        None => indexes.as_slice(),
        Some(_) => &[],
    };
    Ok(Placement::split_by(
        mode,
        &device_reports(refresh),
        &indexes,
        proportions,
    )?)
}

/// The CPU threads `params` ask for (0: one per core), checked: `rf_model_load` and
/// `rf_model_estimate` refuse the same values.
pub(super) fn model_threads(params: &rf_model_params) -> Result<usize, Failure> {
    let n_threads = match params.n_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    if n_threads > MAX_THREADS {
        return Err(Error::InvalidArgument(format!(
            "n_threads is {n_threads}, expected at most {MAX_THREADS}"
        ))
        .into());
    }
    Ok(n_threads)
}

fn load_with(
    params: &rf_model_params,
    placement: Placement,
    open: impl FnOnce() -> crate::Result<OwnedGguf>,
) -> Result<*mut rf_model, Failure> {
    let logger = Logger::new(params.log_callback, params.log_user_data, params.log_level);
    let n_threads = model_threads(params)?;
    progress(params, 0.0)?;
    let gguf = open()?;
    for placed in placement.devices() {
        logger.log(
            RF_LOG_INFO,
            &format!(
                "weights on device {}: {} ({})",
                placed.index, placed.device.name, placed.device.arch
            ),
        );
    }
    progress(params, 0.4)?;
    let tokenizer = Tokenizer::from_gguf(gguf.file())?;
    progress(params, 0.6)?;
    let file = gguf.file();
    let text_of = |key: &str| c_string(file.get::<&str>(key).ok().flatten().unwrap_or_default());
    let (architecture, name) = (text_of("general.architecture"), text_of("general.name"));
    let weights = if params.vocab_only {
        Weights::VocabOnly(gguf)
    } else {
        Weights::Full(Arc::new(Model::from_gguf_on(gguf, placement)?))
    };
    progress(params, 1.0)?;
    let loaded = LoadedModel {
        weights,
        tokenizer,
        logger,
        n_threads,
        architecture,
        name,
        grammar_vocabulary: Mutex::new(None),
    };
    let file = loaded.gguf();
    let counts: Vec<String> = file
        .dtype_counts()
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    logger.log(
        RF_LOG_INFO,
        &format!(
            "loaded {} model '{}': {} tensors ({}), {} tokens",
            loaded.architecture.to_string_lossy(),
            loaded.name.to_string_lossy(),
            file.tensors().len(),
            counts.join(", "),
            loaded.tokenizer.n_tokens()
        ),
    );
    Ok(Box::into_raw(Box::new(rf_model {
        shared: Arc::new(loaded),
    })))
}

/// Frees a model. NULL is ignored. Contexts made from it stay usable until freed.
///
/// # Safety
/// `model` must be NULL or a model from `rf_model_load*` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_free(model: *mut rf_model) {
    if !model.is_null() {
        free_quietly(|| {
            // SAFETY: the pointer came from `Box::into_raw` in `load_with` and is freed once.
            drop(unsafe { Box::from_raw(model) });
        });
    }
}

/// What `rf_model_info` reports (a struct name of its own: C cannot give a type and a
/// function the same name).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_model_description {
    /// Set by the caller to `sizeof(rf_model_description)` before the call.
    pub struct_size: u32,
    /// `general.architecture`, NUL-terminated; valid while the model lives.
    pub architecture: *const c_char,
    /// `general.name`, NUL-terminated; valid while the model lives.
    pub name: *const c_char,
    pub n_params: u64,
    pub size_bytes: u64,
    pub n_vocab: u32,
    pub n_ctx_train: u32,
    pub n_embd: u32,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    /// The device that holds the weights and runs the forward pass (of the first layers,
    /// under a layer split): its index for `rf_device_info` (0 = CPU).
    pub device: i32,
    /// Bytes of weights held in that device's memory (0 on the CPU, which reads the
    /// file's mapping in place); under a layer split, on every GPU together.
    pub device_bytes: u64,
    /// The devices the layers are split over: 1 unless loaded with several `devices`;
    /// `rf_model_share_info` describes each. 0 for a `vocab_only` model.
    pub n_shares: u32,
}

versioned_struct!(rf_model_description {
    struct_size,
    architecture,
    name,
    n_params,
    size_bytes,
    n_vocab,
    n_ctx_train,
    n_embd,
    n_layer,
    n_head,
    n_head_kv,
    device,
    device_bytes,
    n_shares
});

/// Describes a model. Set `info->struct_size = sizeof(rf_model_description)` first.
///
/// # Safety
/// `model` must be a live model; `info` must point to a writable `rf_model_description`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_info(
    model: *const rf_model,
    info: *mut rf_model_description,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, info) = unsafe {
            (
                reference(model, "model")?,
                super::args::versioned_out(info, "info")?,
            )
        };
        let m = &model.shared;
        let file = m.gguf();
        let config = m.model().ok().map(|model| model.config().clone());
        let field = |f: fn(&crate::model::ModelConfig) -> usize| {
            config
                .as_ref()
                .map_or(0, |c| u32::try_from(f(c)).unwrap_or(u32::MAX))
        };
        let report = rf_model_description {
            struct_size: 0,
            architecture: m.architecture.as_ptr(),
            name: m.name.as_ptr(),
            n_params: file.tensors().iter().map(|t| t.n_elements()).sum(),
            size_bytes: file.tensors().iter().map(|t| t.n_bytes()).sum(),
            n_vocab: u32::try_from(m.tokenizer.n_tokens()).unwrap_or(u32::MAX),
            n_ctx_train: field(|c| c.n_ctx_train),
            n_embd: field(|c| c.n_embd),
            n_layer: field(|c| c.n_layer),
            n_head: field(|c| c.n_head),
            n_head_kv: field(|c| c.n_head_kv),
            device: m.model().map_or(RF_DEVICE_CPU, |model| {
                i32::try_from(model.placement().first().index).unwrap_or(i32::MAX)
            }),
            device_bytes: m.model().map_or(0, |model| model.device_bytes()),
            n_shares: m.model().map_or(0, |model| {
                u32::try_from(model.shares().len()).unwrap_or(u32::MAX)
            }),
        };
        // SAFETY: `info` is writable for `struct_size` bytes by the caller's contract.
        unsafe { super::args::write_versioned(info, report, "info") }
    })
}

/// Any GGUF metadata value as text: strings as they are, numbers in decimal, arrays as
/// their type, length and first items.
///
/// # Safety
/// `model` live; `key` `key_len` readable bytes; `buf` `cap` writable bytes or NULL
/// when `cap` is 0; `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_meta(
    model: *const rf_model,
    key: *const c_char,
    key_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, key) = unsafe { (reference(model, "model")?, text(key, key_len, "key")?) };
        let value = model.shared.gguf().value(key).ok_or_else(|| {
            Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("the model has no key '{key}'"),
            )
        })?;
        let rendered = match value {
            Value::String(s) => (*s).to_owned(),
            other => other.to_string(),
        };
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_text(rendered.as_bytes(), buf, cap, out_len) }
    })
}
