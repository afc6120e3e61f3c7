//! The instruction set the CPU kernels use, chosen once at run time so one binary runs on
//! every x86-64 (and other) CPU and still uses AVX2 where it exists.

use std::fmt;

/// A family of CPU kernels. Every level computes the same integer dot products; only the
/// order of the f32 additions differs, so results agree to rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    /// Portable Rust: the reference the other levels are tested against.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C (Intel Haswell, AMD Zen and later).
    Avx2,
}

impl SimdLevel {
    /// The fastest level this CPU supports.
    pub fn detect() -> SimdLevel {
        if SimdLevel::Avx2.is_supported() {
            SimdLevel::Avx2
        } else {
            SimdLevel::Scalar
        }
    }

    /// Whether this CPU can run the level's kernels.
    pub fn is_supported(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            SimdLevel::Avx2 => avx2_fma_f16c_detected(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "AVX2+FMA+F16C",
        }
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_f16c_detected() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_f16c_detected() -> bool {
    false
}
