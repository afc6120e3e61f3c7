//! A path that names no regular file is no model: a FIFO, a character device or a
//! directory is an I/O error at once, mapped or read. Never an open that waits for a
//! writer to come (a FIFO), nor a read without end (`/dev/zero`, whose length is 0).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rocmforge::Error;
use rocmforge::gguf::OwnedGguf;

fn fifo() -> PathBuf {
    let path = std::env::temp_dir().join(format!("rocmforge-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let made = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
    path
}

/// Should an open wait on the FIFO after all, a writer comes after a while so that the
/// test fails (on the error's text) instead of hanging.
fn release_after(path: PathBuf, delay: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
    });
}

/// How a model file is loaded: mapped, or read into memory.
type Load = fn(&Path) -> rocmforge::Result<OwnedGguf>;

fn assert_refused(path: &Path) {
    let loaders: [(&str, Load); 2] = [("mapped", OwnedGguf::open), ("read", OwnedGguf::read)];
    for (how, load) in loaders {
        match load(path) {
            Err(Error::Io { source, .. }) => assert!(
                source.to_string().contains("not a regular file"),
                "{} {how}: {source}",
                path.display()
            ),
            Err(other) => panic!("{} {how}: {other}", path.display()),
            Ok(_) => panic!("{} {how}: loaded", path.display()),
        }
    }
}

#[test]
fn a_fifo_a_device_or_a_directory_is_no_model() {
    let fifo = fifo();
    release_after(fifo.clone(), Duration::from_secs(10));
    for path in [
        fifo.as_path(),
        Path::new("/dev/zero"),
        &std::env::temp_dir(),
    ] {
        assert_refused(path);
    }
    std::fs::remove_file(&fifo).unwrap();
}
