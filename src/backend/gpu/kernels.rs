//! The device code compiled into this library by `build.rs` from `kernels/*.hip`, and
//! which of it can run on a given device.

pub mod inspect;

use std::ffi::c_int;
use std::sync::OnceLock;

use super::result::DriverVersion;
use super::safe::{Device, DeviceFacts};
use super::sys::Vendor;
use crate::error::{Error, Result};

/// How the kernels were built for one vendor.
#[derive(Debug)]
pub enum KernelBuild {
    Built(BuiltKernels),
    /// No compiler was found (or it was switched off); why.
    NotBuilt {
        reason: &'static str,
    },
}

#[derive(Debug)]
pub struct BuiltKernels {
    /// The compiler's path and version.
    pub compiler: &'static str,
    /// What the code objects hold: `gfx90a`…, or `sm_80`… plus `compute_90` for PTX.
    pub targets: &'static [&'static str],
    /// The oldest driver that loads them, in the vendor's encoding (0: no limit known).
    pub min_driver: i32,
    /// One per kernel file.
    pub modules: &'static [EmbeddedModule],
}

/// The code object of one kernel file.
#[derive(Debug)]
pub struct EmbeddedModule {
    /// The file's stem: `kernels/runtime_test.hip` is `runtime_test`.
    pub name: &'static str,
    image: &'static Aligned<[u8]>,
}

impl EmbeddedModule {
    /// An offload bundle (AMD) or fatbin (NVIDIA), 64-byte aligned.
    pub fn image(&self) -> &'static [u8] {
        &self.image.0
    }
}

/// Vendor loaders read code-object headers as aligned words; `include_bytes!` alone
/// promises no alignment.
#[repr(C, align(64))]
#[derive(Debug)]
struct Aligned<T: ?Sized>(T);

include!(concat!(env!("OUT_DIR"), "/embedded_kernels.rs"));

/// The kernels built for `vendor`.
pub fn build(vendor: Vendor) -> &'static KernelBuild {
    match vendor {
        Vendor::Hip => &AMD_KERNELS,
        Vendor::Cuda => &CUDA_KERNELS,
    }
}

/// One line on what this library carries, e.g. for logs: "built without GPU kernels" when
/// neither vendor's compiler was found.
pub fn summary() -> String {
    let describe = |vendor| match build(vendor) {
        KernelBuild::Built(built) => Some(format!("{vendor}: {}", built.targets.join(", "))),
        KernelBuild::NotBuilt { .. } => None,
    };
    let built: Vec<String> = Vendor::ALL.into_iter().filter_map(describe).collect();
    if built.is_empty() {
        "built without GPU kernels".to_owned()
    } else {
        format!("GPU kernels for {}", built.join("; "))
    }
}

/// Why this library's kernels cannot run on a device, or `Ok` when they can.
pub fn check_device(facts: &DeviceFacts, driver: DriverVersion) -> Result<(), String> {
    let vendor = facts.vendor;
    let built = match build(vendor) {
        KernelBuild::Built(built) => built,
        KernelBuild::NotBuilt { reason } => {
            return Err(format!(
                "this library was built without {vendor} kernels ({reason})"
            ));
        }
    };
    if built.min_driver > 0 && driver.raw < built.min_driver {
        let needed = DriverVersion::new(vendor, built.min_driver);
        return Err(format!(
            "the {vendor} driver {driver} is older than {needed}, which the kernels need"
        ));
    }
    let runs = match (vendor, facts.arch.as_deref()) {
        (Vendor::Cuda, _) => cuda_code_runs(built.targets, facts.compute_capability),
        // The gfx target could not be read: let the runtime choose from the bundle.
        (Vendor::Hip, None) => true,
        (Vendor::Hip, Some(arch)) => {
            // `gfx90a:sramecc+:xnack-` runs code built for plain `gfx90a`.
            let base = arch.split(':').next().unwrap_or(arch);
            built.targets.contains(&base)
        }
    };
    if runs {
        Ok(())
    } else {
        Err(format!(
            "no kernels for {} (this library has {})",
            facts.arch.as_deref().unwrap_or("this GPU"),
            built.targets.join(", ")
        ))
    }
}

/// Whether a GPU of compute capability `cc` runs some target: machine code for X.y runs
/// on X.z with z >= y; PTX for X.Y is compiled by the driver for any newer GPU.
fn cuda_code_runs(targets: &[&str], cc: (i32, i32)) -> bool {
    chosen_cuda_code(targets, cc).is_some()
}

/// The share of each SM's L1 and shared-memory storage, in percent, that every kernel
/// launched to overlap its neighbours asks to have as shared memory. The blocks an SM
/// holds at once share one split of that storage; left to the driver, the split follows
/// each kernel's own needs (decode attention 17.5 KB a block, the F16 products 64 bytes,
/// the integer add-norm products their quantized input), and as far as the figures tell,
/// blocks of kernels that want different splits land beside each other less well than
/// those of kernels that ask for one. H100, tg128 against the driver's choice, two rounds
/// each (docs/performance.md, "One shared-memory carve-out for every overlapped kernel"):
/// 50% gains 0.1-4.9% on every row but 8B Q8_0 (-1.0%), 8B Q4_0 +2.1% and +2.4%; 25%
/// loses 4.6% on 8B Q8_0, and 100% (the least L1) 11-13% on both Q8_0 rows.
pub(crate) const OVERLAP_SHARED_MEMORY_CARVEOUT: c_int = 50;

/// Whether this build's kernels may start while the kernel before them on `device` is still
/// running (programmatic dependent launch). Every kernel waits for its inputs with
/// `rf_grid_dependency_sync` (`kernels/compat.h`), which is compiled in for NVIDIA's 9.0
/// and newer only, so the code the driver picks for the device must be such code. Off with
/// `ROCMFORGE_GPU_OVERLAP=0` (read once per process), to measure what it gains.
pub(crate) fn launch_overlap(device: &Device) -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    let allowed =
        *ALLOWED.get_or_init(|| std::env::var_os("ROCMFORGE_GPU_OVERLAP").is_none_or(|v| v != "0"));
    let KernelBuild::Built(built) = build(device.vendor()) else {
        return false;
    };
    allowed
        && device.vendor() == Vendor::Cuda
        && device.can_overlap_launches()
        && chosen_cuda_code(built.targets, device.facts().compute_capability)
            .is_some_and(|arch| arch >= (9, 0))
}

/// The architecture of the code the CUDA driver runs on a GPU of compute capability `cc`:
/// machine code of the same major and the highest minor not above cc's, else the newest
/// PTX not newer than `cc` (compiled by the driver).
fn chosen_cuda_code(targets: &[&str], cc: (i32, i32)) -> Option<(i32, i32)> {
    let parsed = |prefix: &'static str| {
        targets
            .iter()
            .filter_map(move |t| t.strip_prefix(prefix).and_then(cuda_version))
    };
    parsed("sm_")
        .filter(|sm| sm.0 == cc.0 && sm.1 <= cc.1)
        .max()
        .or_else(|| parsed("compute_").filter(|ptx| *ptx <= cc).max())
}

/// `"90"` as (9, 0).
fn cuda_version(digits: &str) -> Option<(i32, i32)> {
    let n: i32 = digits.parse().ok()?;
    Some((n / 10, n % 10))
}

/// The image of kernel file `name` for `device`, after checking it can run there.
pub(crate) fn image_for(device: &Device, name: &str) -> Result<&'static [u8]> {
    check_device(device.facts(), device.driver_version()).map_err(Error::Unsupported)?;
    let KernelBuild::Built(built) = build(device.vendor()) else {
        return Err(Error::Unsupported(format!(
            "no {} kernels",
            device.vendor()
        )));
    };
    built
        .modules
        .iter()
        .find(|m| m.name == name)
        .map(EmbeddedModule::image)
        .ok_or_else(|| Error::InvalidArgument(format!("no kernel file kernels/{name}.hip")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FATBIN_TARGETS: &[&str] = &["sm_80", "sm_86", "sm_89", "sm_90", "compute_90"];

    #[test]
    fn cuda_compatibility_follows_the_binary_rules() {
        assert!(cuda_code_runs(FATBIN_TARGETS, (8, 0)));
        assert!(
            cuda_code_runs(FATBIN_TARGETS, (8, 7)),
            "sm_86 code runs on 8.7"
        );
        assert!(cuda_code_runs(FATBIN_TARGETS, (9, 0)));
        assert!(
            cuda_code_runs(FATBIN_TARGETS, (10, 0)),
            "PTX 9.0 compiles for 10.0"
        );
        assert!(cuda_code_runs(FATBIN_TARGETS, (12, 0)));
        assert!(!cuda_code_runs(FATBIN_TARGETS, (7, 5)));
        assert!(
            !cuda_code_runs(&["sm_90"], (10, 0)),
            "machine code does not cross majors"
        );
    }

    #[test]
    fn the_driver_prefers_machine_code_then_the_newest_fitting_ptx() {
        assert_eq!(chosen_cuda_code(FATBIN_TARGETS, (9, 0)), Some((9, 0)));
        assert_eq!(chosen_cuda_code(FATBIN_TARGETS, (8, 7)), Some((8, 6)));
        assert_eq!(chosen_cuda_code(FATBIN_TARGETS, (12, 0)), Some((9, 0)));
        assert_eq!(
            chosen_cuda_code(&["sm_80", "compute_80"], (9, 0)),
            Some((8, 0)),
            "an 8.0-only build runs as 8.0 code on a 9.0 GPU: no overlapped launches"
        );
        assert_eq!(chosen_cuda_code(&["sm_90"], (8, 0)), None);
    }
}
