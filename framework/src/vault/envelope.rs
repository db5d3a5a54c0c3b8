//! Envelope encryption for tenants: each tenant's secrets are sealed with
//! its own random **data key**, and that key is kept sealed by the
//! installation's vault key ([`TenantKeys`]).
//!
//! The sealed data keys live in the data directory
//! (`tenants/<tenant>/data.key`), not in the database: a database backup
//! holds sealed rows but never a key that opens them. Removing a tenant
//! overwrites and deletes its key file ([`TenantKeys::destroy`]), so its
//! sealed rows, wherever a copy of them survives, no longer open.
//! Rotating the installation key re-seals the data keys only
//! ([`TenantKeys::stage_rewrap`]): the tenants' records are untouched.
//!
//! The default tenant has no data key: its records are sealed by the
//! installation's key directly, as on SQLite.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{
    KEY_LEN, KeySource, NEW_SUFFIX, Vault, random_key, sync_dir, vault_error, write_private_file,
};
use crate::error::KonnectorError;
use crate::tenant::TenantId;

/// The folder of tenants' own things in the data directory.
pub const TENANTS_DIR: &str = "tenants";
/// A tenant's sealed data key, in its folder.
pub const DATA_KEY_FILE: &str = "data.key";

/// The tenants' data keys of one installation, sealed by its vault.
#[derive(Debug, Clone)]
pub struct TenantKeys {
    root: PathBuf,
}

/// Re-sealed data keys written beside the current ones (`data.key.new`),
/// by a rotation of the installation key not yet committed. Dropping it
/// without [`StagedRewrap::commit`] removes them.
pub struct StagedRewrap {
    staged: Vec<(PathBuf, PathBuf)>,
    armed: bool,
}

impl StagedRewrap {
    /// How many data keys were re-sealed.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether there was no tenant key to re-seal.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Moves the re-sealed keys into place; call it once the installation's
    /// new key is in place. A key that cannot be moved is finished at its
    /// next open ([`TenantKeys::open`]).
    pub fn commit(mut self) -> Result<(), KonnectorError> {
        self.armed = false;
        for (staged, final_path) in &self.staged {
            std::fs::rename(staged, final_path).map_err(|e| {
                vault_error(format!(
                    "{} could not be renamed to {}: {e}; the next open finishes it",
                    staged.display(),
                    final_path.display()
                ))
            })?;
            if let Some(dir) = final_path.parent() {
                sync_dir(dir);
            }
        }
        Ok(())
    }
}

impl Drop for StagedRewrap {
    fn drop(&mut self) {
        if self.armed {
            for (staged, _) in &self.staged {
                let _ = std::fs::remove_file(staged);
            }
        }
    }
}

impl TenantKeys {
    /// The keys of the installation in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join(TENANTS_DIR),
        }
    }

    /// A tenant's folder in the data directory (its key, its files).
    pub fn dir(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(tenant.as_str())
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        self.dir(tenant).join(DATA_KEY_FILE)
    }

    fn staged_path(&self, tenant: &TenantId) -> PathBuf {
        self.dir(tenant)
            .join(format!("{DATA_KEY_FILE}{NEW_SUFFIX}"))
    }

    /// What a data key is sealed under: the tenant's name, so that one
    /// tenant's key file copied into another's folder does not open.
    fn aad(tenant: &TenantId) -> Vec<u8> {
        format!("gleaner tenant data key v1/{tenant}").into_bytes()
    }

    /// Whether `tenant` has a data key.
    pub fn exists(&self, tenant: &TenantId) -> bool {
        self.path(tenant).exists()
    }

    /// Makes `tenant`'s data key: 32 random bytes sealed by `installation`
    /// into a new file (mode 0600; an existing one is refused, never
    /// replaced). Returns the tenant's vault.
    pub fn create(&self, installation: &Vault, tenant: &TenantId) -> Result<Vault, KonnectorError> {
        if tenant.is_default() {
            return Err(vault_error(
                "the default tenant has no data key: the installation's key seals its records"
                    .into(),
            ));
        }
        let key = random_key();
        let sealed = installation.seal_bytes(&Self::aad(tenant), &key)?;
        let path = self.path(tenant);
        write_private_file(&path, &sealed, false)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir);
        }
        Ok(Self::vault_of(&key, &path))
    }

    fn vault_of(key: &[u8], path: &Path) -> Vault {
        Vault::from_key(key, path, KeySource::TenantKey)
    }

    /// Opens `tenant`'s vault with the installation's. A rotation that
    /// stopped after the installation's new key was in place is finished
    /// here (the re-sealed `data.key.new` replaces `data.key`); one that
    /// stopped before leaves a `.new` that does not open and is removed.
    pub fn open(&self, installation: &Vault, tenant: &TenantId) -> Result<Vault, KonnectorError> {
        let path = self.path(tenant);
        let staged = self.staged_path(tenant);
        let what = format!("the data key of tenant `{tenant}`");
        let aad = Self::aad(tenant);
        let read = |p: &Path| -> Result<Option<Vec<u8>>, KonnectorError> {
            match std::fs::read(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(vault_error(format!("cannot read {}: {e}", p.display()))),
            }
        };
        if let Some(blob) = read(&staged)? {
            match installation.open_bytes(&aad, &blob, &what) {
                Ok(key) => {
                    std::fs::rename(&staged, &path).map_err(|e| {
                        vault_error(format!(
                            "cannot finish the re-sealing of {what} ({} to {}): {e}",
                            staged.display(),
                            path.display()
                        ))
                    })?;
                    return Self::checked(&key, &path, &what);
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&staged);
                }
            }
        }
        let Some(blob) = read(&path)? else {
            return Err(vault_error(format!(
                "{what} is missing ({}): the tenant was removed, or its folder was not restored with the data directory; its sealed records cannot be opened",
                path.display()
            )));
        };
        let key = installation.open_bytes(&aad, &blob, &what)?;
        Self::checked(&key, &path, &what)
    }

    fn checked(key: &Zeroizing<Vec<u8>>, path: &Path, what: &str) -> Result<Vault, KonnectorError> {
        if key.len() != KEY_LEN {
            return Err(vault_error(format!(
                "{what} ({}) is malformed",
                path.display()
            )));
        }
        Ok(Self::vault_of(key, path))
    }

    /// Destroys `tenant`'s data key: the file is overwritten with zeros,
    /// synced, then removed (with any staged re-sealing). Returns whether
    /// there was one. Its sealed records no longer open anywhere.
    pub fn destroy(&self, tenant: &TenantId) -> Result<bool, KonnectorError> {
        let mut found = false;
        for p in [self.staged_path(tenant), self.path(tenant)] {
            let len = match std::fs::metadata(&p) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(vault_error(format!("cannot read {}: {e}", p.display()))),
            };
            found = true;
            let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
            write_private_file(&p, &zeros, true)?;
            std::fs::remove_file(&p)
                .map_err(|e| vault_error(format!("cannot remove {}: {e}", p.display())))?;
        }
        if let Some(dir) = self.path(tenant).parent()
            && dir.exists()
        {
            sync_dir(dir);
        }
        Ok(found)
    }

    /// The tenants that have a data key in this data directory.
    pub fn tenants(&self) -> Result<Vec<TenantId>, KonnectorError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(vault_error(format!(
                    "cannot list {}: {e}",
                    self.root.display()
                )));
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if let Some(t) = entry
                .file_name()
                .to_str()
                .and_then(|n| TenantId::parse(n).ok())
                && self.exists(&t)
            {
                out.push(t);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-seals every tenant's data key from `old` to `new` (a rotation of
    /// the installation's key) into `data.key.new` files. Commit them once
    /// the installation's new key is in place; dropped, they are removed.
    pub fn stage_rewrap(&self, old: &Vault, new: &Vault) -> Result<StagedRewrap, KonnectorError> {
        let mut staged = StagedRewrap {
            staged: Vec::new(),
            armed: true,
        };
        for tenant in self.tenants()? {
            let vault_key = {
                let blob = std::fs::read(self.path(&tenant)).map_err(|e| {
                    vault_error(format!("cannot read {}: {e}", self.path(&tenant).display()))
                })?;
                old.open_bytes(
                    &Self::aad(&tenant),
                    &blob,
                    &format!("the data key of tenant `{tenant}`"),
                )?
            };
            let sealed = new.seal_bytes(&Self::aad(&tenant), &vault_key)?;
            let target = self.staged_path(&tenant);
            write_private_file(&target, &sealed, true)?;
            staged.staged.push((target, self.path(&tenant)));
        }
        Ok(staged)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn a_data_key_opens_with_its_installation_and_not_once_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let installation = Vault::open_or_create(&dir.path().join("vault.key")).unwrap();
        let keys = TenantKeys::new(dir.path());
        let alice = tenant("alice");
        let made = keys.create(&installation, &alice).unwrap();
        assert_eq!(made.source(), KeySource::TenantKey);
        let sealed = made.seal_bytes(b"a1", b"hunter2").unwrap();
        // A second creation never replaces the key.
        assert!(keys.create(&installation, &alice).is_err());
        let opened = keys.open(&installation, &alice).unwrap();
        assert_eq!(opened.key_id(), made.key_id());
        assert_eq!(
            &*opened.open_bytes(b"a1", &sealed, "x").unwrap(),
            b"hunter2"
        );
        // Not the installation's key, and another installation's key does
        // not open it.
        assert_ne!(made.key_id(), installation.key_id());
        let other = Vault::open_or_create(&dir.path().join("other.key")).unwrap();
        assert!(keys.open(&other, &alice).is_err());
        // Copied into another tenant's folder, it does not open there.
        let bob = tenant("bob");
        std::fs::create_dir_all(keys.dir(&bob)).unwrap();
        std::fs::copy(keys.path(&alice), keys.path(&bob)).unwrap();
        assert!(keys.open(&installation, &bob).is_err());
        assert_eq!(keys.tenants().unwrap(), vec![alice.clone(), bob]);
        // Destroyed: gone, and the sealed record opens with nothing left.
        assert!(keys.destroy(&alice).unwrap());
        assert!(!keys.exists(&alice));
        let Err(e) = keys.open(&installation, &alice) else {
            panic!("a destroyed key opened");
        };
        assert!(e.message.contains("is missing"), "{}", e.message);
        assert!(!keys.destroy(&alice).unwrap());
        assert!(
            keys.create(&installation, &TenantId::default_tenant())
                .is_err()
        );
    }

    #[test]
    fn a_rotation_re_seals_the_data_keys_and_an_unfinished_one_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let old = Vault::open_or_create(&dir.path().join("old.key")).unwrap();
        let new = Vault::open_or_create(&dir.path().join("new.key")).unwrap();
        let keys = TenantKeys::new(dir.path());
        let alice = tenant("alice");
        let id = keys.create(&old, &alice).unwrap().key_id();
        // Dropped before commit: nothing changes.
        drop(keys.stage_rewrap(&old, &new).unwrap());
        assert!(!keys.staged_path(&alice).exists());
        assert_eq!(keys.open(&old, &alice).unwrap().key_id(), id);
        // Committed: opens with the new installation key only.
        let staged = keys.stage_rewrap(&old, &new).unwrap();
        assert_eq!(staged.len(), 1);
        staged.commit().unwrap();
        assert_eq!(keys.open(&new, &alice).unwrap().key_id(), id);
        assert!(keys.open(&old, &alice).is_err());
        // Staged but not moved (a crash after the installation key moved):
        // the next open with the new key finishes it.
        let newer = Vault::open_or_create(&dir.path().join("newer.key")).unwrap();
        let staged = keys.stage_rewrap(&new, &newer).unwrap();
        std::mem::forget(staged);
        assert_eq!(keys.open(&newer, &alice).unwrap().key_id(), id);
        assert!(!keys.staged_path(&alice).exists());
        // Staged, and the installation key did not move: the stale `.new`
        // is dropped at open.
        let staged = keys.stage_rewrap(&newer, &old).unwrap();
        std::mem::forget(staged);
        assert_eq!(keys.open(&newer, &alice).unwrap().key_id(), id);
        assert!(!keys.staged_path(&alice).exists());
    }
}
