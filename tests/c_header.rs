//! include/rocmforge.h is what cbindgen generates from src/ffi/ with cbindgen.toml: any
//! difference fails. `ROCMFORGE_BLESS=1` rewrites the header instead.

use std::path::Path;

#[test]
fn header_matches_the_rust_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_src(root.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = root.join("include/rocmforge.h");
    if std::env::var_os("ROCMFORGE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rocmforge.h is out of date: run ROCMFORGE_BLESS=1 cargo test --test c_header"
    );
}
