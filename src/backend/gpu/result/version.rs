//! Driver versions as the vendors encode them, comparable and printable.

use std::cmp::Ordering;
use std::fmt;

use super::super::sys::Vendor;

/// `cuDriverGetVersion` gives `major * 1000 + minor * 10` (13000 is 13.0);
/// `hipDriverGetVersion` gives `major * 10^7 + minor * 10^5 + patch` (50221153 is
/// 5.2.21153).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverVersion {
    pub vendor: Vendor,
    pub raw: i32,
}

impl DriverVersion {
    pub fn new(vendor: Vendor, raw: i32) -> DriverVersion {
        DriverVersion { vendor, raw }
    }

    /// (major, minor, patch).
    pub fn parts(self) -> (i32, i32, i32) {
        match self.vendor {
            Vendor::Cuda => (self.raw / 1000, (self.raw % 1000) / 10, 0),
            Vendor::Hip => (
                self.raw / 10_000_000,
                (self.raw / 100_000) % 100,
                self.raw % 100_000,
            ),
        }
    }
}

impl PartialOrd for DriverVersion {
    /// Versions of different vendors do not compare.
    fn partial_cmp(&self, other: &DriverVersion) -> Option<Ordering> {
        (self.vendor == other.vendor).then(|| self.raw.cmp(&other.raw))
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.parts();
        match self.vendor {
            Vendor::Cuda => write!(f, "{major}.{minor}"),
            Vendor::Hip => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_vendors() {
        assert_eq!(DriverVersion::new(Vendor::Cuda, 13000).to_string(), "13.0");
        assert_eq!(DriverVersion::new(Vendor::Cuda, 12080).to_string(), "12.8");
        assert_eq!(
            DriverVersion::new(Vendor::Hip, 50221153).to_string(),
            "5.2.21153"
        );
        assert_eq!(
            DriverVersion::new(Vendor::Hip, 60032830).parts(),
            (6, 0, 32830)
        );
    }

    #[test]
    fn orders_within_a_vendor_only() {
        let cuda = |raw| DriverVersion::new(Vendor::Cuda, raw);
        assert!(cuda(12080) < cuda(13000));
        assert!(
            DriverVersion::new(Vendor::Hip, 1)
                .partial_cmp(&cuda(1))
                .is_none()
        );
    }
}
