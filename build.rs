//! Build steps that Cargo cannot express in the manifest.

fn main() {
    // The shared library's soname carries the major version, so a host linked against
    // librocmforge.so.0 never loads an ABI-incompatible librocmforge.so.1.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librocmforge.so.{major}");
    }
}
