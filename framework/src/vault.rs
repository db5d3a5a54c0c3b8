//! Encryption at rest for credentials.
//!
//! The vault seals an account's secret fields with XChaCha20-Poly1305 (an
//! AEAD from the RustCrypto `chacha20poly1305` crate, picked because it is
//! audited, pure Rust and needs no nonce bookkeeping with 192-bit random
//! nonces). The key is 32 random bytes in a key file created on first use
//! with mode 0600. The account id is the associated data, so a sealed blob
//! copied onto another account does not open.
//!
//! A wrong key or a tampered blob gives an error, never garbage.
//! Passphrase-derived keys, the OS keyring and key rotation build on this
//! module (see the accounts and authentication issue).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{ErrorCode, KonnectorError};
use crate::secret::Secret;

const MAGIC: &[u8; 4] = b"GLV1";
const NONCE_LEN: usize = 24;

/// Seals and opens secrets with one key.
pub struct Vault {
    cipher: XChaCha20Poly1305,
    key_path: PathBuf,
}

impl Vault {
    /// Opens the vault whose key lives at `key_path`, creating a new random
    /// key (mode 0600) when the file does not exist.
    pub fn open_or_create(key_path: &Path) -> Result<Self, KonnectorError> {
        let key_bytes = match std::fs::read(key_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(key_path)?,
            Err(e) => {
                return Err(vault_error(format!(
                    "cannot read the key file {}: {e}",
                    key_path.display()
                )));
            }
        };
        if key_bytes.len() != 32 {
            return Err(vault_error(format!(
                "the key file {} holds {} bytes, not 32: it is corrupt or not a Gleaner key",
                key_path.display(),
                key_bytes.len()
            )));
        }
        Ok(Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key_bytes)),
            key_path: key_path.to_owned(),
        })
    }

    /// Where the key file is.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Seals named secrets for one account.
    pub fn seal(
        &self,
        account_id: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<Vec<u8>, KonnectorError> {
        // The plaintext is a tiny length-prefixed encoding, built in a buffer
        // that is dropped right after encryption.
        let mut plain = Vec::new();
        for (name, value) in secrets {
            for part in [name.as_bytes(), value.expose().as_bytes()] {
                let len = u32::try_from(part.len())
                    .map_err(|_| vault_error("a secret is too long".into()))?;
                plain.extend_from_slice(&len.to_le_bytes());
                plain.extend_from_slice(part);
            }
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: account_id.as_bytes(),
                },
            )
            .map_err(|_| vault_error("encryption failed".into()));
        plain.iter_mut().for_each(|b| *b = 0);
        let sealed = sealed?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Vault::seal`] sealed for the same account.
    pub fn open(
        &self,
        account_id: &str,
        blob: &[u8],
    ) -> Result<BTreeMap<String, Secret>, KonnectorError> {
        if blob.len() < MAGIC.len() + NONCE_LEN || &blob[..MAGIC.len()] != MAGIC {
            return Err(vault_error(format!(
                "the credentials of account {account_id} are not a Gleaner vault record"
            )));
        }
        let nonce = XNonce::from_slice(&blob[MAGIC.len()..MAGIC.len() + NONCE_LEN]);
        let mut plain = self
            .cipher
            .decrypt(nonce, Payload { msg: &blob[MAGIC.len() + NONCE_LEN..], aad: account_id.as_bytes() })
            .map_err(|_| {
                vault_error(format!(
                    "the credentials of account {account_id} do not open with the key in {}: wrong key or tampered record",
                    self.key_path.display()
                ))
            })?;
        let parsed = decode(&plain);
        plain.iter_mut().for_each(|b| *b = 0);
        parsed.ok_or_else(|| {
            vault_error(format!(
                "the credentials of account {account_id} are malformed"
            ))
        })
    }
}

fn decode(mut rest: &[u8]) -> Option<BTreeMap<String, Secret>> {
    let mut out = BTreeMap::new();
    let take = |rest: &mut &[u8]| -> Option<String> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + len)?;
        *rest = &rest[4 + len..];
        String::from_utf8(bytes.to_vec()).ok()
    };
    while !rest.is_empty() {
        let name = take(&mut rest)?;
        let value = take(&mut rest)?;
        out.insert(name, Secret::new(value));
    }
    Some(out)
}

fn create_key_file(path: &Path) -> Result<Vec<u8>, KonnectorError> {
    let key = XChaCha20Poly1305::generate_key(&mut OsRng).to_vec();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| vault_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        vault_error(format!(
            "cannot create the key file {}: {e}",
            path.display()
        ))
    })?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| vault_error(format!("cannot write the key file {}: {e}", path.display())))?;
    Ok(key)
}

fn vault_error(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::LoginFailedNeedsSecret, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets() -> BTreeMap<String, Secret> {
        let mut m = BTreeMap::new();
        m.insert("password".to_owned(), Secret::new("hunter2-zebra"));
        m
    }

    #[test]
    fn seals_and_opens_and_hides_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_create(&dir.path().join("vault.key")).unwrap();
        let blob = vault.seal("acc1", &secrets()).unwrap();
        assert!(!blob.windows(6).any(|w| w == b"hunter"));
        let opened = vault.open("acc1", &blob).unwrap();
        assert_eq!(opened["password"].expose(), "hunter2-zebra");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(vault.key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn tampering_wrong_key_and_wrong_account_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_create(&dir.path().join("a.key")).unwrap();
        let other = Vault::open_or_create(&dir.path().join("b.key")).unwrap();
        let blob = vault.seal("acc1", &secrets()).unwrap();
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(vault.open("acc1", &bad).is_err());
        assert!(other.open("acc1", &blob).is_err());
        assert!(vault.open("acc2", &blob).is_err());
        assert!(vault.open("acc1", b"garbage").is_err());
    }

    #[test]
    fn a_truncated_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        std::fs::write(&path, b"short").unwrap();
        let err = Vault::open_or_create(&path).err().unwrap();
        assert!(err.message.contains("corrupt"));
    }
}
