//! The Cozy Node test konnector (`fixtures/cozy/freemobile/`), as the tests
//! and the bench find it: its bundle, built with npm when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace's root (this crate is `testing/` in it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A fixture konnector's folder: `fixtures/cozy/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("fixtures/cozy").join(name)
}

/// Whether `program --version` runs.
pub fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The test konnector's bundle (`fixtures/cozy/freemobile/build`), built
/// with `npm ci && npm run build` when it is missing and npm is there. The
/// error says what is missing (node, npm, or a failed npm step), for a
/// `skipped:` line.
pub fn freemobile_bundle() -> Result<PathBuf, String> {
    let dir = fixture("freemobile");
    let out = dir.join("build");
    if !has("node") {
        return Err("node not found (apt-get install -y nodejs)".into());
    }
    if out.join("index.js").is_file() {
        return Ok(out);
    }
    if !has("npm") {
        return Err("npm not found, and fixtures/cozy/freemobile/build is not built".into());
    }
    eprintln!("building fixtures/cozy/freemobile (npm ci && npm run build)");
    for args in [
        &["ci", "--no-audit", "--no-fund"][..],
        &["run", "build"][..],
    ] {
        let status = Command::new("npm")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm {args:?} failed in {}", dir.display()));
        }
    }
    Ok(out)
}
