//! Architecture names: `sm_90` for NVIDIA, `gfx90a` for AMD.
//!
//! NVIDIA's follows from the compute capability attributes. AMD's does not: the integer
//! attributes give only the major and minor ISA version (gfx90a and gfx908 are both
//! 9.0), ROCm 6 retired the `hipDeviceAttributeGcnArch*` attributes (their numbers are now
//! `Unused4`/`Unused5`), and the name itself lives only in `hipDeviceProp_t`, whose layout
//! changed in ROCm 6 (`hipGetDevicePropertiesR0600`). So the gfx target is read from the
//! amdgpu kernel driver's KFD topology in sysfs, a stable text interface, and matched to
//! the HIP device by PCI address, which the attributes do give.

use std::path::Path;

/// Where a GPU sits on the PCI bus; the function number is left out (a GPU is function 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u32,
    pub device: u32,
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}",
            self.domain, self.bus, self.device
        )
    }
}

/// `sm_XY` for compute capability X.Y.
pub fn cuda_arch(major: i32, minor: i32) -> String {
    format!("sm_{major}{minor}")
}

/// Where the amdgpu driver publishes its KFD topology.
pub const KFD_TOPOLOGY: &str = "/sys/class/kfd/kfd/topology/nodes";

/// The gfx target of the AMD GPU at `pci`, from the KFD topology under `nodes_dir`
/// (normally [`KFD_TOPOLOGY`]; tests pass a copy). `None` when no node matches or the
/// files cannot be read.
pub fn amd_arch_from_kfd(nodes_dir: &Path, pci: PciAddress) -> Option<String> {
    let entries = std::fs::read_dir(nodes_dir).ok()?;
    entries.flatten().find_map(|node| {
        let properties = std::fs::read_to_string(node.path().join("properties")).ok()?;
        let value = |key: &str| kfd_property(&properties, key);
        let target_version = value("gfx_target_version")?;
        // location_id is the PCI bus/device/function as bus << 8 | device << 3 | function.
        let location = value("location_id")?;
        let domain = value("domain").unwrap_or(0);
        let matches = domain == u64::from(pci.domain)
            && location >> 8 == u64::from(pci.bus)
            && (location >> 3) & 0x1f == u64::from(pci.device);
        if matches {
            gfx_name(target_version)
        } else {
            None
        }
    })
}

/// A number from a KFD `properties` file (`key value` per line).
fn kfd_property(properties: &str, key: &str) -> Option<u64> {
    properties.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// KFD's `gfx_target_version` (major * 10000 + minor * 100 + stepping) as a gfx target:
/// 90010 is gfx90a, 100300 gfx1030, 90402 gfx942. CPU nodes carry 0: `None`.
pub fn gfx_name(target_version: u64) -> Option<String> {
    let major = target_version / 10_000;
    let minor = (target_version / 100) % 100;
    let stepping = target_version % 100;
    // LLVM spells minor and stepping as one hex digit each.
    (major > 0 && minor < 16 && stepping < 16).then(|| format!("gfx{major}{minor:x}{stepping:x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_gfx_targets() {
        assert_eq!(gfx_name(90010).as_deref(), Some("gfx90a"));
        assert_eq!(gfx_name(90008).as_deref(), Some("gfx908"));
        assert_eq!(gfx_name(90402).as_deref(), Some("gfx942"));
        assert_eq!(gfx_name(100300).as_deref(), Some("gfx1030"));
        assert_eq!(gfx_name(110501).as_deref(), Some("gfx1151"));
        assert_eq!(gfx_name(120001).as_deref(), Some("gfx1201"));
        assert_eq!(gfx_name(0), None);
    }

    #[test]
    fn names_cuda_targets() {
        assert_eq!(cuda_arch(9, 0), "sm_90");
        assert_eq!(cuda_arch(8, 6), "sm_86");
        assert_eq!(cuda_arch(12, 0), "sm_120");
    }

    #[test]
    fn finds_the_node_at_the_pci_address() {
        let root = std::env::temp_dir().join(format!("rocmforge-kfd-{}", std::process::id()));
        let node = |n: u32, body: &str| {
            let dir = root.join(n.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("properties"), body).unwrap();
        };
        node(
            0,
            "cpu_cores_count 16\nsimd_count 0\ngfx_target_version 0\nlocation_id 0\ndomain 0\n",
        );
        // Bus 0x03 device 0: location 0x300. Bus 0xc1 device 0: 0xc100.
        node(
            1,
            "simd_count 440\ngfx_target_version 90010\nlocation_id 768\ndomain 0\n",
        );
        node(
            2,
            "simd_count 240\ngfx_target_version 100300\nlocation_id 49408\ndomain 0\n",
        );
        let at = |bus| PciAddress {
            domain: 0,
            bus,
            device: 0,
        };
        assert_eq!(
            amd_arch_from_kfd(&root, at(0x03)).as_deref(),
            Some("gfx90a")
        );
        assert_eq!(
            amd_arch_from_kfd(&root, at(0xc1)).as_deref(),
            Some("gfx1030")
        );
        assert_eq!(amd_arch_from_kfd(&root, at(0x04)), None);
        assert_eq!(amd_arch_from_kfd(&root.join("absent"), at(0x03)), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
