//! What the decoder tests share: where `../shared/data` is, and how to report past the test harness.
use std::io::Write;
use std::path::{Path, PathBuf};

/// `../shared/data`: `ISMS_TEST_SHARED_DATA`, else `shared/data` beside an ancestor of this crate.
/// `None` when absent (a failure when `CI` is set).
pub fn data_root() -> Option<PathBuf> {
    let found = match std::env::var_os("ISMS_TEST_SHARED_DATA") {
        Some(path) => Some(PathBuf::from(path)),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|ancestor| ancestor.join("shared/data"))
            .find(|candidate| candidate.is_dir()),
    };
    match found {
        Some(path) if path.is_dir() => Some(path),
        other if std::env::var_os("CI").is_some() => {
            panic!("the shared test data is missing ({other:?}) and CI is set")
        }
        other => {
            report(&format!(
                "skipping: the shared test data is missing ({other:?})"
            ));
            None
        }
    }
}

/// Writes to the process' stderr directly, past the test harness' capture.
pub fn report(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
