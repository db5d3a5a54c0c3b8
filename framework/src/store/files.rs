//! The file store: a directory tree per account, like Cozy's
//! `$administrative/$konnector/$account` folders.
//!
//! A run never writes into the visible tree directly. Downloads are checked
//! (not empty, the declared type, not truncated), written to
//! `.staging/<run id>/` and fsynced; only when the run succeeds are they
//! renamed into place, just before the documents commit. A failed run
//! discards its staging folder, so nothing half-downloaded is ever visible.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{ErrorCode, KonnectorError};

/// A checked download waiting in the staging folder.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// The final path, relative to the store's root, `/`-separated.
    pub rel_path: String,
    /// Where it waits.
    staging: PathBuf,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub mime: String,
}

/// The root of the files tree.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Opens the tree at `root`, creating it, and removes staging folders
    /// left by runs that died.
    pub fn open(root: &Path) -> Result<Self, KonnectorError> {
        create_private_dir(root).map_err(|e| save_failed(root, &e))?;
        clean_dead_staging(&root.join(".staging"));
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a relative one.
    pub fn absolute(&self, rel_path: &str) -> PathBuf {
        rel_path
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |acc, part| acc.join(part))
    }

    /// Checks a download and writes it to the run's staging folder.
    ///
    /// `rel_dir` is the account's folder (already sanitized parts joined by
    /// `/`); `name` is sanitized here. `source` names where the bytes came
    /// from in errors (a URL without query).
    pub fn stage(
        &self,
        run_id: &str,
        rel_dir: &str,
        name: &str,
        bytes: &[u8],
        expected_mime: &str,
        source: &str,
    ) -> Result<StagedFile, KonnectorError> {
        check_download(bytes, expected_mime, source)?;
        let name = sanitize_name(name);
        let rel_path = format!("{}/{}", rel_dir.trim_matches('/'), name);
        let dir = self.root.join(".staging").join(run_id);
        if !dir.exists() {
            create_private_dir(&dir).map_err(|e| save_failed(&dir, &e))?;
            let owner = dir.join(OWNER_FILE);
            std::fs::write(&owner, crate::liveness::this_process())
                .map_err(|e| save_failed(&owner, &e))?;
        }
        let staging = dir.join(format!("{:06}-{name}", count_files(&dir)));
        write_synced(&staging, bytes)?;
        Ok(StagedFile {
            rel_path,
            staging,
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            mime: expected_mime.to_owned(),
        })
    }

    /// Moves staged files into place. Returns the paths moved, for
    /// [`FileStore::unpromote`] if the document commit then fails.
    pub fn promote(&self, files: &[StagedFile]) -> Result<Vec<PathBuf>, KonnectorError> {
        let mut moved = Vec::with_capacity(files.len());
        for f in files {
            let target = self.absolute(&f.rel_path);
            let result = target
                .parent()
                .map_or(Ok(()), create_private_dir)
                .and_then(|()| std::fs::rename(&f.staging, &target));
            if let Err(e) = result {
                self.unpromote(&moved);
                return Err(save_failed(&target, &e));
            }
            moved.push(target);
        }
        Ok(moved)
    }

    /// Removes files that [`FileStore::promote`] moved in.
    pub fn unpromote(&self, moved: &[PathBuf]) {
        for path in moved {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a file of a failed run");
            }
        }
    }

    /// Drops a run's staging folder.
    pub fn discard(&self, run_id: &str) {
        let dir = self.root.join(".staging").join(run_id);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove a staging folder");
        }
    }
}

/// The file in a run's staging folder that names the process writing it.
const OWNER_FILE: &str = ".owner";

/// Staging folders older than this are removed whoever wrote them.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the staging folders of dead processes (a run killed mid-way),
/// and any older than a day. Folders of live runs (another `gleaner`
/// process working on the same data directory) are left alone.
fn clean_dead_staging(staging: &Path) {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        let dead = std::fs::read_to_string(dir.join(OWNER_FILE))
            .map(|mark| crate::liveness::mark_is_dead(&mark))
            .unwrap_or(false);
        let stale = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if (dead || stale)
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove a dead run's staging folder");
        }
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Creates a folder and its missing parents, readable by the user alone
/// (0700 on Unix): the tree holds personal data. An existing folder keeps
/// its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes an existing file readable and writable by the user alone (0600
/// on Unix); best effort, a missing file is left alone.
pub fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists()
            && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the file private");
        }
    }
}

/// Creates (or truncates) a file readable and writable by the user alone.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Opens (creating, never truncating) a file readable and writable by the
/// user alone: for lock files.
pub fn create_private_file_keep(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), KonnectorError> {
    use std::io::Write;
    let mut f = create_private_file(path).map_err(|e| save_failed(path, &e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| save_failed(path, &e))
}

fn save_failed(path: &Path, e: &std::io::Error) -> KonnectorError {
    let code = if e.raw_os_error() == Some(28) {
        ErrorCode::DiskQuotaExceeded
    } else {
        ErrorCode::SaveFileFailed
    };
    KonnectorError::new(code, format!("cannot write {}: {e}", path.display())).with_source(
        crate::error::ErrorSource::caused_by(
            crate::error::SourceKind::Store,
            // The same error, owned (an `io::Error` is not `Clone`).
            e.raw_os_error().map_or_else(
                || std::io::Error::new(e.kind(), e.to_string()),
                std::io::Error::from_raw_os_error,
            ),
        ),
    )
}

/// Refuses downloads that are empty, of another type than announced, or
/// visibly truncated (a PDF without its `%%EOF` trailer).
pub fn check_download(
    bytes: &[u8],
    expected_mime: &str,
    source: &str,
) -> Result<(), KonnectorError> {
    if bytes.is_empty() {
        return Err(KonnectorError::file_download_failed(format!(
            "{source} sent an empty file"
        )));
    }
    if let Some(kind) = infer::get(bytes) {
        if kind.mime_type() != expected_mime {
            let what = if kind.mime_type() == "text/html" {
                "an HTML page".to_owned()
            } else {
                format!("a {} file", kind.mime_type())
            };
            return Err(KonnectorError::file_download_failed(format!(
                "{source} sent {what} where a {expected_mime} was expected"
            )));
        }
    } else if expected_mime != "text/plain" && expected_mime != "application/octet-stream" {
        let looks_html = bytes
            .iter()
            .take(512)
            .map(|b| b.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .windows(5)
            .any(|w| w == b"<html" || w == b"<!doc");
        let what = if looks_html {
            "an HTML page"
        } else {
            "unrecognised content"
        };
        return Err(KonnectorError::file_download_failed(format!(
            "{source} sent {what} where a {expected_mime} was expected"
        )));
    }
    if expected_mime == "application/pdf" {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(5).any(|w| w == b"%%EOF") {
            return Err(KonnectorError::file_download_failed(format!(
                "the PDF from {source} is truncated ({} bytes, no %%EOF trailer)",
                bytes.len()
            )));
        }
    }
    Ok(())
}

/// Makes a safe file or folder name: no path separators, control or
/// reserved characters, no leading dots, at most 200 bytes, never empty.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    out = out.trim().trim_start_matches('.').trim().to_owned();
    if out.len() > 200 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if out.is_empty() {
        "unnamed".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(sanitize_name("a:b*c?.pdf"), "a_b_c_.pdf");
        assert_eq!(sanitize_name("  ..."), "unnamed");
        assert_eq!(sanitize_name("facture\n\u{0}.pdf"), "facture__.pdf");
        assert!(sanitize_name(&"é".repeat(300)).len() <= 200);
    }

    #[test]
    fn bad_downloads_are_refused() {
        let e = check_download(b"", "application/pdf", "https://x/f").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = check_download(
            b"<!DOCTYPE html><html>login</html>",
            "application/pdf",
            "https://x/f",
        )
        .unwrap_err();
        assert!(e.message.contains("HTML page"), "{}", e.message);
        let e = check_download(&PDF[..20], "application/pdf", "https://x/f").unwrap_err();
        assert!(e.message.contains("truncated"));
        let png = b"\x89PNG\r\n\x1a\n0000000000000000";
        let e = check_download(png, "application/pdf", "https://x/f").unwrap_err();
        assert!(e.message.contains("image/png"));
        assert_eq!(e.code, ErrorCode::FileDownloadFailed);
        check_download(PDF, "application/pdf", "https://x/f").unwrap();
    }

    #[test]
    fn staged_files_appear_only_when_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let f = store
            .stage(
                "run1",
                "Free Mobile/12345678",
                "a/b.pdf",
                PDF,
                "application/pdf",
                "https://x/f",
            )
            .unwrap();
        assert_eq!(f.rel_path, "Free Mobile/12345678/a_b.pdf");
        let target = store.absolute(&f.rel_path);
        assert!(!target.exists());
        let moved = store.promote(&[f]).unwrap();
        assert!(target.exists());
        store.unpromote(&moved);
        assert!(!target.exists());
        store.discard("run1");
        assert!(!dir.path().join(".staging/run1").exists());
    }
}
