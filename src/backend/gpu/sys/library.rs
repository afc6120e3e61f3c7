//! Finding and opening the vendor runtime. A library that is opened is never closed:
//! vendor runtimes start threads and register exit handlers that would run unmapped code
//! after `dlclose`, and the function pointers in `Api` stay valid only while it is mapped.

use std::path::Path;

use libloading::Library;

use super::Vendor;

/// A vendor runtime opened with `dlopen`, and the name or path it was found under.
pub struct OpenedLibrary {
    pub library: Library,
    pub path: String,
}

/// Where to look for `vendor`'s runtime, in order: the installation the environment
/// names, then the dynamic loader's own search (LD_LIBRARY_PATH, the ld.so cache), then
/// the vendors' default install locations.
pub fn candidates(vendor: Vendor) -> Vec<String> {
    let mut paths = Vec::new();
    match vendor {
        Vendor::Hip => {
            for var in ["HIP_PATH", "ROCM_PATH"] {
                if let Some(root) = std::env::var_os(var) {
                    let lib = Path::new(&root).join("lib/libamdhip64.so");
                    paths.push(lib.to_string_lossy().into_owned());
                }
            }
            // The unversioned name comes with development packages only; runtimes
            // install the versioned sonames.
            for name in [
                "libamdhip64.so",
                "libamdhip64.so.7",
                "libamdhip64.so.6",
                "libamdhip64.so.5",
                "/opt/rocm/lib/libamdhip64.so",
            ] {
                paths.push(name.to_owned());
            }
        }
        Vendor::Cuda => {
            // Only the driver's own library: the CUDA toolkit's lib64/stubs/libcuda.so
            // links but answers every call with CUDA_ERROR_STUB_LIBRARY.
            for name in [
                "libcuda.so.1",
                "libcuda.so",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                "/usr/lib64/libcuda.so.1",
                "/usr/local/nvidia/lib64/libcuda.so.1",
                "/usr/lib/wsl/lib/libcuda.so.1",
            ] {
                paths.push(name.to_owned());
            }
        }
    }
    paths
}

/// Opens the first of `candidates` that loads. On failure, every candidate with the
/// loader's reason, so the caller can say what was tried.
pub fn open_first(candidates: &[String]) -> Result<OpenedLibrary, Vec<(String, String)>> {
    let mut failures = Vec::new();
    for path in candidates {
        // SAFETY: opening runs the library's initialisers. The candidates are the vendor
        // runtimes (or a path the caller chose), whose initialisers only set up the
        // runtime and have no preconditions on the calling program.
        match unsafe { Library::new(path) } {
            Ok(library) => {
                return Ok(OpenedLibrary {
                    library,
                    path: path.clone(),
                });
            }
            Err(e) => failures.push((path.clone(), e.to_string())),
        }
    }
    Err(failures)
}
