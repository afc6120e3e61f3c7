//! Reading which targets a code object holds, without a GPU: the embedded-kernel tests
//! check every requested target is there, and diagnostics can list them.
//!
//! Formats: a CUDA fatbin is a 16-byte header (magic 0xBA55ED50, version, header size,
//! payload size) and entries each with a header (kind 1 = PTX, 2 = ELF; header size;
//! payload size; the `sm` number at byte 28). A clang offload bundle is the magic
//! `__CLANG_OFFLOAD_BUNDLE__`, an entry count, and per entry offset, size and a target id
//! such as `hipv4-amdgcn-amd-amdhsa--gfx90a`.

/// One code object inside a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `sm_90` / `compute_90` for fatbins; the gfx target for offload bundles.
    pub target: String,
    /// Whether the payload starts with the ELF magic (PTX and compressed entries don't).
    pub is_elf: bool,
    pub size: u64,
}

const FATBIN_MAGIC: u32 = 0xBA55_ED50;
const BUNDLE_MAGIC: &[u8] = b"__CLANG_OFFLOAD_BUNDLE__";
const ELF_MAGIC: &[u8] = b"\x7fELF";

fn bytes<const N: usize>(data: &[u8], at: u64) -> Result<[u8; N], String> {
    let start = usize::try_from(at).map_err(|_| format!("offset {at} out of range"))?;
    data.get(start..)
        .and_then(|rest| rest.get(..N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u16_at(data: &[u8], at: u64) -> Result<u16, String> {
    bytes(data, at).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], at: u64) -> Result<u32, String> {
    bytes(data, at).map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], at: u64) -> Result<u64, String> {
    bytes(data, at).map(u64::from_le_bytes)
}

fn starts_with_at(data: &[u8], at: u64, prefix: &[u8]) -> bool {
    usize::try_from(at)
        .ok()
        .and_then(|at| data.get(at..))
        .is_some_and(|rest| rest.starts_with(prefix))
}

/// The entries of a CUDA fatbin.
pub fn fatbin_entries(data: &[u8]) -> Result<Vec<Entry>, String> {
    if u32_at(data, 0)? != FATBIN_MAGIC {
        return Err("not a fatbin (bad magic)".into());
    }
    let header_size = u64::from(u16_at(data, 6)?);
    let payload = u64_at(data, 8)?;
    let end = header_size
        .checked_add(payload)
        .filter(|&end| end <= data.len() as u64)
        .ok_or("fatbin payload runs past the end")?;
    let mut entries = Vec::new();
    let mut at = header_size;
    while at < end {
        let kind = u16_at(data, at)?;
        let entry_header = u64::from(u32_at(data, at + 4)?);
        let size = u64_at(data, at + 8)?;
        let arch = u32_at(data, at + 28)?;
        let target = match kind {
            1 => format!("compute_{arch}"),
            2 => format!("sm_{arch}"),
            other => format!("kind{other}_{arch}"),
        };
        let payload_at = at + entry_header;
        entries.push(Entry {
            target,
            is_elf: starts_with_at(data, payload_at, ELF_MAGIC),
            size,
        });
        let next = payload_at
            .checked_add(size)
            .filter(|&next| next > at && next <= end)
            .ok_or_else(|| format!("fatbin entry at byte {at} runs past the end"))?;
        at = next;
    }
    Ok(entries)
}

/// The device entries of a clang offload bundle (the host entry is left out).
pub fn offload_bundle_entries(data: &[u8]) -> Result<Vec<Entry>, String> {
    if !data.starts_with(BUNDLE_MAGIC) {
        return Err("not an offload bundle (bad magic)".into());
    }
    let count = u64_at(data, BUNDLE_MAGIC.len() as u64)?;
    let mut at = BUNDLE_MAGIC.len() as u64 + 8;
    let mut entries = Vec::new();
    for _ in 0..count {
        let offset = u64_at(data, at)?;
        let size = u64_at(data, at + 8)?;
        let id_len = u64_at(data, at + 16)?;
        at += 24;
        let id_start = usize::try_from(at).map_err(|_| "bundle id out of range")?;
        let id_end = usize::try_from(id_len)
            .ok()
            .and_then(|len| id_start.checked_add(len))
            .filter(|&end| end <= data.len())
            .ok_or("bundle id runs past the end")?;
        let id = String::from_utf8_lossy(&data[id_start..id_end]).into_owned();
        at += id_len;
        if offset
            .checked_add(size)
            .is_none_or(|end| end > data.len() as u64)
        {
            return Err(format!("bundle entry {id} runs past the end"));
        }
        // Device ids end in `--<target>`; the host entry has no target.
        if let Some((_, target)) = id.rsplit_once("--").filter(|(_, t)| !t.is_empty()) {
            entries.push(Entry {
                target: target.to_owned(),
                is_elf: starts_with_at(data, offset, ELF_MAGIC),
                size,
            });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_foreign_and_truncated_data() {
        assert!(fatbin_entries(b"").is_err());
        assert!(fatbin_entries(b"\x7fELF and more bytes than a header").is_err());
        assert!(offload_bundle_entries(b"__CLANG_OFFLOAD_BUNDLE__").is_err());
        let mut lying = FATBIN_MAGIC.to_le_bytes().to_vec();
        lying.extend_from_slice(&[1, 0, 16, 0]);
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(fatbin_entries(&lying).is_err());
    }

    #[test]
    fn reads_a_bundle() {
        let mut data = BUNDLE_MAGIC.to_vec();
        data.extend_from_slice(&2u64.to_le_bytes());
        let ids: [&[u8]; 2] = [
            b"host-x86_64-unknown-linux",
            b"hipv4-amdgcn-amd-amdhsa--gfx90a",
        ];
        let payload_at = (data.len() + 2 * 24 + ids[0].len() + ids[1].len()) as u64;
        for (i, id) in ids.iter().enumerate() {
            let size = if i == 0 { 0u64 } else { 8 };
            data.extend_from_slice(&payload_at.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
            data.extend_from_slice(&(id.len() as u64).to_le_bytes());
            data.extend_from_slice(id);
        }
        data.extend_from_slice(b"\x7fELFxxxx");
        let entries = offload_bundle_entries(&data).unwrap();
        assert_eq!(
            entries,
            vec![Entry {
                target: "gfx90a".into(),
                is_elf: true,
                size: 8
            }]
        );
    }
}
