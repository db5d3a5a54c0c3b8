//! Installing a Cozy konnector's build into the data directory, and
//! finding the installed ones.
//!
//! A build (a konnector's `build` branch, as a folder or a `.tar.gz`) holds
//! `manifest.konnector`, `index.js` and its assets. It is copied to
//! `<data dir>/konnectors/<slug>/` through a temporary folder renamed into
//! place, so a failed install leaves the previous one as it was. Beside it,
//! `gleaner-install.json` records where it came from, when, the SHA-256 of
//! its `index.js`, the run time limit and the allow-list of hosts.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::{CozyManifest, MANIFEST_FILE, ManifestError};

/// The script a build runs.
pub const ENTRY_FILE: &str = "index.js";

/// The record Gleaner keeps beside an installed build.
pub const RECORD_FILE: &str = "gleaner-install.json";

/// The folder of installed konnectors inside the data directory.
pub const INSTALL_DIR: &str = "konnectors";

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The source is neither a folder nor a `.tar.gz`.
    #[error("{0}: not a folder or a .tar.gz file")]
    NotABuild(PathBuf),
    /// A file every build has is missing.
    #[error(
        "{source_path}: the build has no {file} (a konnector's build branch has manifest.konnector and index.js at its top)"
    )]
    Missing {
        /// The source.
        source_path: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// The manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The archive is damaged or holds a path leaving its folder.
    #[error("{path}: {reason}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A host of the allow-list is not a host name.
    #[error("--allow-host `{0}`: not a host name or host:port")]
    BadHost(String),
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |error| InstallError::Io {
        path: path.to_owned(),
        error,
    }
}

/// What `gleaner-install.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// The konnector's slug.
    pub slug: String,
    /// Where the build was installed from, as given.
    pub source: String,
    /// When.
    pub installed_at: DateTime<Utc>,
    /// SHA-256 of `index.js`, in hex.
    pub sha256: String,
    /// The run time limit, in seconds (`COZY_TIME_LIMIT`).
    pub timeout_secs: u64,
    /// The hosts the konnector may contact through the proxy; `None`: any
    /// (every contact is still recorded).
    pub allow_hosts: Option<Vec<String>>,
}

/// An installed konnector: its folder, manifest and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    /// `<data dir>/konnectors/<slug>`.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: CozyManifest,
    /// Gleaner's record.
    pub record: InstallRecord,
}

/// How to install.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The allow-list (`None`: any host, recorded).
    pub allow_hosts: Option<Vec<String>>,
    /// The run time limit (default [`crate::manifest::DEFAULT_TIMEOUT_SECS`]).
    pub timeout_secs: Option<u64>,
}

/// Reads the manifest of a build (a folder or a `.tar.gz`) without
/// installing it (to propose an allow-list before installing).
pub fn inspect(source: &Path) -> Result<CozyManifest, InstallError> {
    let staged = tempfile::tempdir().map_err(io(source))?;
    let root = unpack(source, staged.path())?;
    read_manifest(source, &root)
}

/// Installs a build into `data_dir/konnectors/<slug>`, replacing an
/// earlier install of the same slug.
pub fn install(
    source: &Path,
    data_dir: &Path,
    options: &InstallOptions,
) -> Result<Installed, InstallError> {
    if let Some(hosts) = &options.allow_hosts {
        for h in hosts {
            check_host(h)?;
        }
    }
    let base = data_dir.join(INSTALL_DIR);
    std::fs::create_dir_all(&base).map_err(io(&base))?;
    let staged = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(&base)
        .map_err(io(&base))?;
    let root = unpack(source, staged.path())?;
    let manifest = read_manifest(source, &root)?;
    let entry = root.join(ENTRY_FILE);
    let script = std::fs::read(&entry).map_err(io(&entry))?;
    let record = InstallRecord {
        slug: manifest.slug.clone(),
        source: source.display().to_string(),
        installed_at: Utc::now(),
        sha256: hex::encode(Sha256::digest(&script)),
        timeout_secs: options
            .timeout_secs
            .unwrap_or(crate::manifest::DEFAULT_TIMEOUT_SECS),
        allow_hosts: options.allow_hosts.clone(),
    };
    let record_path = root.join(RECORD_FILE);
    let text = serde_json::to_vec_pretty(&record).map_err(|e| InstallError::Io {
        path: record_path.clone(),
        error: std::io::Error::other(e),
    })?;
    std::fs::write(&record_path, text).map_err(io(&record_path))?;
    let target = base.join(&manifest.slug);
    let old = base.join(format!(".old-{}", manifest.slug));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if target.exists() {
        std::fs::rename(&target, &old).map_err(io(&target))?;
    }
    if let Err(e) = std::fs::rename(&root, &target) {
        if old.exists() {
            let _ = std::fs::rename(&old, &target);
        }
        return Err(InstallError::Io {
            path: target,
            error: e,
        });
    }
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(Installed {
        dir: target,
        manifest,
        record,
    })
}

/// Removes an installed konnector's folder. Returns whether it existed.
pub fn uninstall(data_dir: &Path, slug: &str) -> Result<bool, InstallError> {
    if slug.is_empty() || slug.contains(['/', '.']) {
        return Ok(false);
    }
    let dir = data_dir.join(INSTALL_DIR).join(slug);
    if !dir.join(RECORD_FILE).is_file() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    Ok(true)
}

/// Every installed konnector, sorted by slug. A folder whose manifest or
/// record no longer reads is reported as an error naming it, beside the
/// others.
pub fn installed(data_dir: &Path) -> (Vec<Installed>, Vec<InstallError>) {
    let base = data_dir.join(INSTALL_DIR);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(&base) else {
        return (found, errors);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !dir.is_dir() {
            continue;
        }
        match load(&dir) {
            Ok(i) => found.push(i),
            Err(e) => errors.push(e),
        }
    }
    found.sort_by(|a, b| a.manifest.slug.cmp(&b.manifest.slug));
    (found, errors)
}

/// The konnector installed under `slug`, read from its folder now.
pub fn load_slug(data_dir: &Path, slug: &str) -> Result<Installed, InstallError> {
    let dir = data_dir.join(INSTALL_DIR).join(slug);
    if slug.is_empty() || slug.contains(['/', '.']) || !dir.join(RECORD_FILE).is_file() {
        return Err(InstallError::NotABuild(dir));
    }
    load(&dir)
}

/// An installed konnector's folder, read now (manifest and record).
pub fn load(dir: &Path) -> Result<Installed, InstallError> {
    let manifest = read_manifest(dir, dir)?;
    let record_path = dir.join(RECORD_FILE);
    let text = std::fs::read(&record_path).map_err(io(&record_path))?;
    let record: InstallRecord = serde_json::from_slice(&text).map_err(|e| InstallError::Io {
        path: record_path.clone(),
        error: std::io::Error::other(e),
    })?;
    Ok(Installed {
        dir: dir.to_owned(),
        manifest,
        record,
    })
}

fn read_manifest(source: &Path, root: &Path) -> Result<CozyManifest, InstallError> {
    let path = root.join(MANIFEST_FILE);
    if !path.is_file() {
        return Err(InstallError::Missing {
            source_path: source.to_owned(),
            file: MANIFEST_FILE,
        });
    }
    if !root.join(ENTRY_FILE).is_file() {
        return Err(InstallError::Missing {
            source_path: source.to_owned(),
            file: ENTRY_FILE,
        });
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    Ok(CozyManifest::parse(
        &source.join(MANIFEST_FILE).display().to_string(),
        &text,
    )?)
}

/// Copies or extracts `source` under `into`; returns the build's root
/// (an archive's single top folder, as GitHub's tarballs have, is its
/// root).
fn unpack(source: &Path, into: &Path) -> Result<PathBuf, InstallError> {
    let root = into.join("build");
    if source.is_dir() {
        copy_tree(source, &root)?;
        return Ok(root);
    }
    let name = source.to_string_lossy();
    if !(source.is_file() && (name.ends_with(".tar.gz") || name.ends_with(".tgz"))) {
        return Err(InstallError::NotABuild(source.to_owned()));
    }
    let file = std::fs::File::open(source).map_err(io(source))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let bad = |reason: String| InstallError::Archive {
        path: source.to_owned(),
        reason,
    };
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a readable .tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("damaged archive: {e}")))?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| bad(format!("damaged archive: {e}")))?
            .into_owned();
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad(format!(
                "the entry `{}` leaves the archive's folder",
                path.display()
            )));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(bad(format!(
                "the entry `{}` is a link; a konnector build has only files and folders",
                path.display()
            )));
        }
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        // `unpack_in` refuses paths leaving `root` as well.
        let unpacked = entry
            .unpack_in(&root)
            .map_err(|e| bad(format!("cannot extract `{}`: {e}", path.display())))?;
        if !unpacked {
            return Err(bad(format!(
                "the entry `{}` leaves the archive's folder",
                path.display()
            )));
        }
    }
    // A single top folder (`freemobile-build/manifest.konnector`) is the root.
    if !root.join(MANIFEST_FILE).exists() {
        let mut children = std::fs::read_dir(&root)
            .map_err(io(&root))?
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>();
        if children.len() == 1 && children[0].is_dir() {
            return Ok(children.remove(0));
        }
    }
    Ok(root)
}

/// Copies a folder: files and folders only (links refused), `.git` left
/// out.
fn copy_tree(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let path = entry.path();
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        let target = to.join(&name);
        if kind.is_symlink() {
            return Err(InstallError::Archive {
                path,
                reason: "a symbolic link; a konnector build has only files and folders".into(),
            });
        } else if kind.is_dir() {
            copy_tree(&path, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Checks one allow-list entry: `host`, `host:port` or `*.domain`.
pub fn check_host(entry: &str) -> Result<(), InstallError> {
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (entry, None),
    };
    let host_ok = {
        let h = host.strip_prefix("*.").unwrap_or(host);
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(InstallError::BadHost(entry.to_owned()))
    }
}

/// The SHA-256 of a file, in hex (to tell whether an installed script
/// changed).
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn build(dir: &Path, slug: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(MANIFEST_FILE),
            format!(r#"{{"slug":"{slug}","name":"T","version":"1.0.0","permissions":{{"b":{{"type":"io.cozy.bills"}}}}}}"#),
        )
        .unwrap();
        std::fs::write(dir.join(ENTRY_FILE), "process.exit(0)\n").unwrap();
    }

    #[test]
    fn a_folder_installs_lists_replaces_and_uninstalls() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        build(src.path(), "t-one");
        std::fs::create_dir_all(src.path().join(".git")).unwrap();
        let opts = InstallOptions {
            allow_hosts: Some(vec!["example.org".into(), "127.0.0.1:8080".into()]),
            timeout_secs: Some(30),
        };
        let i = install(src.path(), data.path(), &opts).unwrap();
        assert_eq!(i.dir, data.path().join("konnectors/t-one"));
        assert!(!i.dir.join(".git").exists());
        assert_eq!(i.record.timeout_secs, 30);
        install(src.path(), data.path(), &InstallOptions::default()).unwrap();
        let (list, errors) = installed(data.path());
        assert!(errors.is_empty());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].record.allow_hosts, None);
        assert!(uninstall(data.path(), "t-one").unwrap());
        assert!(installed(data.path()).0.is_empty());
    }

    #[test]
    fn a_tarball_with_a_top_folder_installs() {
        let src = tempfile::tempdir().unwrap();
        build(&src.path().join("t-two-build"), "t-two");
        let tgz = src.path().join("b.tar.gz");
        let file = std::fs::File::create(&tgz).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        tar.append_dir_all("t-two-build", src.path().join("t-two-build"))
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let data = tempfile::tempdir().unwrap();
        let i = install(&tgz, data.path(), &InstallOptions::default()).unwrap();
        assert_eq!(i.manifest.slug, "t-two");
        assert!(i.dir.join(ENTRY_FILE).is_file());
    }

    #[test]
    fn broken_builds_are_refused_and_leave_the_old_install() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        build(src.path(), "t-three");
        install(src.path(), data.path(), &InstallOptions::default()).unwrap();
        std::fs::remove_file(src.path().join(ENTRY_FILE)).unwrap();
        let err = install(src.path(), data.path(), &InstallOptions::default()).unwrap_err();
        assert!(err.to_string().contains("index.js"), "{err}");
        std::fs::write(src.path().join(ENTRY_FILE), "").unwrap();
        std::fs::write(
            src.path().join(MANIFEST_FILE),
            r#"{"slug":"t-three","name":"T"}"#,
        )
        .unwrap();
        let err = install(src.path(), data.path(), &InstallOptions::default()).unwrap_err();
        assert!(err.to_string().contains("version: is missing"), "{err}");
        assert!(
            data.path()
                .join("konnectors/t-three")
                .join(ENTRY_FILE)
                .is_file()
        );
        let err = install(
            src.path(),
            data.path(),
            &InstallOptions {
                allow_hosts: Some(vec!["http://x".into()]),
                timeout_secs: None,
            },
        )
        .unwrap_err();
        assert!(matches!(err, InstallError::BadHost(_)));
        let err = install(
            &src.path().join("nope.zip"),
            data.path(),
            &InstallOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, InstallError::NotABuild(_)));
    }
}
