//! Finding the external programs tests and benches drive (stock `iperf3`,
//! Chromium), with a failure that says how to install what is missing.

use std::path::{Path, PathBuf};

/// The first of `candidates` that exists: absolute paths as given, other
/// names looked up on `PATH`.
pub fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().find_map(|c| {
        let path = Path::new(c);
        if path.is_absolute() {
            return path.is_file().then(|| path.to_path_buf());
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(c))
            .find(|p| p.is_file())
    })
}

/// The sentence a missing tool's failure ends with.
pub fn install_hint(package: &str) -> String {
    format!("install it with: apt-get install -y {package}")
}

/// The path of `name` (one of `candidates`), or a failure naming the
/// Debian/Ubuntu `package` to install.
pub fn require(name: &str, candidates: &[&str], package: &str) -> PathBuf {
    find(candidates).unwrap_or_else(|| {
        panic!(
            "this test needs {name}, which is not installed; {}",
            install_hint(package)
        )
    })
}
