//! Encryption at rest for credentials, sessions and tokens.
//!
//! The vault seals records with XChaCha20-Poly1305 (an AEAD from the
//! RustCrypto `chacha20poly1305` crate, picked because it is audited, pure
//! Rust and needs no nonce bookkeeping with 192-bit random nonces). Every
//! record names what it belongs to in its associated data (the account id,
//! plus `/session` for a login session), so a sealed blob copied onto
//! another account or another column does not open.
//!
//! # Key sources
//!
//! - **Key file** (default): `vault.key`, 32 random bytes, created on first
//!   use with mode 0600 ([`Vault::open_or_create`]).
//! - **Passphrase**: `vault.header` holds a random salt, the Argon2id
//!   parameters and a *verifier* (the AEAD of a known constant under the
//!   derived key), so a wrong passphrase is reported as
//!   `vault: wrong passphrase` and never yields garbage
//!   ([`Vault::create_with_passphrase`], [`Vault::open_with_passphrase`]).
//!   The default parameters ([`KdfParams::LAPTOP`]: m = 19 MiB, t = 2,
//!   p = 1, OWASP's first recommendation for Argon2id) take a fraction of a
//!   second on a laptop.
//! - The OS keyring is not wired yet (see `docs/security.md`).
//!
//! # Records
//!
//! A record is `GLV2 | key id (8 bytes) | nonce (24) | ciphertext+tag`. The
//! key id is the first 8 bytes of SHA-256 over a domain string and the key:
//! it tells which key a record was sealed with (so "wrong key" is told
//! apart from "tampered"), and the store keeps the id of the key its
//! records use, which is how an interrupted rotation is detected and
//! finished (see [`VaultLocation::recover`]). Records from before key ids
//! (`GLV1`) still open.
//!
//! # Rotation
//!
//! [`VaultLocation::prepare_rotation`] writes the new key (or header) to a
//! `.new` file, the store re-seals every sealed column and records the new
//! key id **in one transaction**, then [`PendingRotation::commit`] renames
//! the `.new` file into place. At every point the pair (key file, store) is
//! consistent or recoverable: before the commit the store still names the
//! old key (the `.new` file is stale and removed); after it the store names
//! the new key, and if the process died before the rename, the next open
//! finds the `.new` file whose id the store names and renames it.
//!
//! A wrong key or a tampered record gives an error, never garbage.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{ErrorSource, KonnectorError, SourceKind};
use crate::secret::Secret;

pub mod envelope;

const MAGIC_V1: &[u8; 4] = b"GLV1";
const MAGIC_V2: &[u8; 4] = b"GLV2";
const NONCE_LEN: usize = 24;
const KEY_ID_LEN: usize = 8;
const KEY_LEN: usize = 32;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "vault.key";
/// The passphrase header's name in the data directory.
pub const HEADER_FILE: &str = "vault.header";
/// The suffix of a key or header written by a rotation not yet finished.
pub const NEW_SUFFIX: &str = ".new";

/// What the verifier in a passphrase header seals.
const VERIFIER_PLAIN: &[u8] = b"gleaner vault verifier v1";
const VERIFIER_AAD: &[u8] = b"gleaner-vault-header";

/// Where a vault's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// 32 random bytes in a file (mode 0600).
    KeyFile,
    /// Derived from a passphrase with Argon2id.
    Passphrase,
    /// A tenant's data key, sealed by the installation's key
    /// ([`envelope::TenantKeys`]).
    TenantKey,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::KeyFile => "key file",
            Self::Passphrase => "passphrase",
            Self::TenantKey => "tenant data key",
        })
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default: 19 MiB, 2 passes, 1 lane (OWASP's Argon2id baseline);
    /// about 50 ms of one core on a recent laptop.
    pub const LAPTOP: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Cheap parameters for tests only: never for a real vault.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
}

/// The passphrase header file (`vault.header`), JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    version: u32,
    kdf: String,
    params: KdfParams,
    salt: String,
    verifier: String,
    key_id: String,
}

/// Seals and opens records with one key.
pub struct Vault {
    cipher: XChaCha20Poly1305,
    key_path: PathBuf,
    key_id: [u8; KEY_ID_LEN],
    source: KeySource,
}

impl Vault {
    /// Opens the vault whose key lives at `key_path`, creating a new random
    /// key (mode 0600) when the file does not exist.
    pub fn open_or_create(key_path: &Path) -> Result<Self, KonnectorError> {
        let key_bytes = match std::fs::read(key_path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_key();
                match create_private_file(key_path, &key) {
                    Ok(()) => key,
                    // Another process made it first (several commands
                    // started at once on a new data directory): its key,
                    // complete, is the installation's.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Zeroizing::new(std::fs::read(key_path).map_err(|e| {
                            vault_io_error(
                                format!("cannot read the key file {}: {e}", key_path.display()),
                                e,
                            )
                        })?)
                    }
                    Err(e) => {
                        return Err(vault_io_error(
                            format!("cannot create {}: {e}", key_path.display()),
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(vault_io_error(
                    format!("cannot read the key file {}: {e}", key_path.display()),
                    e,
                ));
            }
        };
        Self::from_key_file_bytes(key_path, &key_bytes)
    }

    fn from_key_file_bytes(key_path: &Path, key_bytes: &[u8]) -> Result<Self, KonnectorError> {
        if key_bytes.len() != KEY_LEN {
            return Err(vault_error(format!(
                "the key file {} holds {} bytes, not 32: it is corrupt or not a Gleaner key",
                key_path.display(),
                key_bytes.len()
            )));
        }
        Ok(Self::from_key(key_bytes, key_path, KeySource::KeyFile))
    }

    fn from_key(key: &[u8], path: &Path, source: KeySource) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
            key_path: path.to_owned(),
            key_id: key_id(key),
            source,
        }
    }

    /// Creates a passphrase vault: a new random salt and a header at
    /// `header_path` (mode 0600). Fails if the header exists.
    pub fn create_with_passphrase(
        header_path: &Path,
        passphrase: &Secret,
        params: KdfParams,
    ) -> Result<Self, KonnectorError> {
        let (vault, header) = Self::new_passphrase_vault(header_path, passphrase, params)?;
        write_private_file(header_path, header.as_bytes(), false)?;
        Ok(vault)
    }

    fn new_passphrase_vault(
        header_path: &Path,
        passphrase: &Secret,
        params: KdfParams,
    ) -> Result<(Self, String), KonnectorError> {
        if passphrase.expose().is_empty() {
            return Err(vault_error("vault: the passphrase is empty".into()));
        }
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let key = derive_key(passphrase, &salt, params)?;
        let vault = Self::from_key(key.as_slice(), header_path, KeySource::Passphrase);
        let verifier = vault.seal_bytes(VERIFIER_AAD, VERIFIER_PLAIN)?;
        let header = Header {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: b64(&salt),
            verifier: b64(&verifier),
            key_id: vault.key_id(),
        };
        let text = serde_json::to_string_pretty(&header)
            .map_err(|e| vault_error(format!("cannot encode the vault header: {e}")))?;
        Ok((vault, text))
    }

    /// Opens a passphrase vault from its header. A wrong passphrase is
    /// `vault: wrong passphrase`.
    pub fn open_with_passphrase(
        header_path: &Path,
        passphrase: &Secret,
    ) -> Result<Self, KonnectorError> {
        let header = read_header(header_path)?;
        let bad = |what: &str| {
            vault_error(format!(
                "the vault header {} is corrupt ({what})",
                header_path.display()
            ))
        };
        if header.version != 1 || header.kdf != "argon2id" {
            return Err(bad("unknown version or KDF"));
        }
        let salt = unb64(&header.salt).ok_or_else(|| bad("salt"))?;
        let verifier = unb64(&header.verifier).ok_or_else(|| bad("verifier"))?;
        let key = derive_key(passphrase, &salt, header.params)?;
        let vault = Self::from_key(key.as_slice(), header_path, KeySource::Passphrase);
        match vault.open_bytes(VERIFIER_AAD, &verifier, "the vault header") {
            Ok(plain) if plain.as_slice() == VERIFIER_PLAIN => Ok(vault),
            _ => Err(vault_error("vault: wrong passphrase".into())),
        }
    }

    /// Where the key material is: the key file, or the passphrase header.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Where the key comes from.
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// The key's id (16 hex digits): a fingerprint that names the key
    /// without revealing it.
    pub fn key_id(&self) -> String {
        hex::encode(self.key_id)
    }

    /// Seals arbitrary bytes; `aad` names what they belong to and must be
    /// given again to open them.
    pub fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KonnectorError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .map_err(|_| vault_error("encryption failed".into()))?;
        let mut out = Vec::with_capacity(MAGIC_V2.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC_V2);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Vault::seal_bytes`] sealed with the same `aad`. `what`
    /// names the record in errors ("the session of account x").
    pub fn open_bytes(
        &self,
        aad: &[u8],
        blob: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KonnectorError> {
        let (nonce, body) = if blob.starts_with(MAGIC_V2)
            && blob.len() >= MAGIC_V2.len() + KEY_ID_LEN + NONCE_LEN
        {
            let id = &blob[MAGIC_V2.len()..MAGIC_V2.len() + KEY_ID_LEN];
            if id != self.key_id {
                return Err(vault_error(format!(
                    "{what} was sealed with key {}, not with the vault's key {} ({}): wrong key file or passphrase, or a store restored from elsewhere",
                    hex::encode(id),
                    self.key_id(),
                    self.key_path.display()
                )));
            }
            let start = MAGIC_V2.len() + KEY_ID_LEN;
            (&blob[start..start + NONCE_LEN], &blob[start + NONCE_LEN..])
        } else if blob.starts_with(MAGIC_V1) && blob.len() >= MAGIC_V1.len() + NONCE_LEN {
            let start = MAGIC_V1.len();
            (&blob[start..start + NONCE_LEN], &blob[start + NONCE_LEN..])
        } else {
            return Err(vault_error(format!("{what} is not a Gleaner vault record")));
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                vault_error(format!(
                    "{what} does not open with the key in {}: wrong key or tampered record",
                    self.key_path.display()
                ))
            })
    }

    /// Seals named secrets for one account (the account id is the AAD).
    pub fn seal(
        &self,
        account_id: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<Vec<u8>, KonnectorError> {
        // A tiny length-prefixed encoding, in a buffer zeroed on drop.
        let mut plain = Zeroizing::new(Vec::new());
        for (name, value) in secrets {
            for part in [name.as_bytes(), value.expose().as_bytes()] {
                let len = u32::try_from(part.len())
                    .map_err(|_| vault_error("a secret is too long".into()))?;
                plain.extend_from_slice(&len.to_le_bytes());
                plain.extend_from_slice(part);
            }
        }
        self.seal_bytes(account_id.as_bytes(), &plain)
    }

    /// Opens what [`Vault::seal`] sealed for the same account.
    pub fn open(
        &self,
        account_id: &str,
        blob: &[u8],
    ) -> Result<BTreeMap<String, Secret>, KonnectorError> {
        let what = format!("the credentials of account {account_id}");
        let plain = self.open_bytes(account_id.as_bytes(), blob, &what)?;
        decode(&plain).ok_or_else(|| vault_error(format!("{what} are malformed")))
    }
}

fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"gleaner vault key id v1\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

fn random_key() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(XChaCha20Poly1305::generate_key(&mut OsRng).to_vec())
}

fn derive_key(
    passphrase: &Secret,
    salt: &[u8],
    p: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KonnectorError> {
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(KEY_LEN))
        .map_err(|e| vault_error(format!("bad Argon2 parameters in the vault header: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase.expose().as_bytes(), salt, key.as_mut())
        .map_err(|e| vault_error(format!("cannot derive the vault key: {e}")))?;
    Ok(key)
}

fn read_header(path: &Path) -> Result<Header, KonnectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vault_io_error(
            format!("cannot read the vault header {}: {e}", path.display()),
            e,
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        vault_error(format!(
            "the vault header {} is corrupt: {e}",
            path.display()
        ))
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
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

/// Writes `bytes` to a new file with mode 0600 and syncs it. With
/// `replace`, an existing file is truncated; otherwise it is an error.
fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> Result<(), KonnectorError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| vault_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    if !replace {
        return create_private_file(path, bytes)
            .map_err(|e| vault_error(format!("cannot create {}: {e}", path.display())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| vault_error(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| vault_error(format!("cannot write {}: {e}", path.display())))
}

/// Creates `path` holding `bytes` (mode 0600), all at once: the bytes are
/// written and synced to a temporary file beside it, which then takes the
/// name only if nothing holds it yet (`persist_noclobber`: a no-replace
/// rename or a link). Another process never reads a partial file, and two
/// that create at once get one file: the second gets `AlreadyExists`.
fn create_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".gleaner-new-")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Makes renames durable; not supported everywhere, and a failure only
    // weakens durability against power loss, so it is logged, not fatal.
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync the directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn vault_error(message: String) -> KonnectorError {
    KonnectorError::vault(message)
}

/// A vault error whose source keeps the I/O error on the key material.
fn vault_io_error(message: String, e: std::io::Error) -> KonnectorError {
    KonnectorError::vault(message).with_source(ErrorSource::caused_by(SourceKind::Vault, e))
}

/// The key id a key file or header on disk holds, without opening it.
fn file_key_id(path: &Path) -> Result<Option<String>, KonnectorError> {
    if !path.exists() {
        return Ok(None);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with(HEADER_FILE) {
        Ok(Some(read_header(path)?.key_id))
    } else {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            vault_io_error(
                format!("cannot read the key file {}: {e}", path.display()),
                e,
            )
        })?);
        if bytes.len() != KEY_LEN {
            return Ok(None);
        }
        Ok(Some(hex::encode(key_id(&bytes))))
    }
}

/// Where a data directory keeps its vault files; opens, recovers and
/// rotates them.
#[derive(Debug, Clone)]
pub struct VaultLocation {
    dir: PathBuf,
}

/// What a rotation moves to.
pub enum RotationTarget {
    /// A new random key in the key file.
    KeyFile,
    /// A key derived from this passphrase (a new salt, so a new key even
    /// with the same passphrase).
    Passphrase(Secret, KdfParams),
}

impl VaultLocation {
    /// The vault files of the data directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The key file's path.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The passphrase header's path.
    pub fn header_file(&self) -> PathBuf {
        self.dir.join(HEADER_FILE)
    }

    fn staged(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(NEW_SUFFIX);
        PathBuf::from(name)
    }

    /// Which key source the directory uses, if any vault exists yet. A
    /// header wins over a key file (a switch to a passphrase removes the
    /// key file last).
    pub fn detect(&self) -> Option<KeySource> {
        if self.header_file().exists() {
            Some(KeySource::Passphrase)
        } else if self.key_file().exists() {
            Some(KeySource::KeyFile)
        } else {
            None
        }
    }

    /// Finishes or cleans up an interrupted rotation, given the id of the
    /// key the store's records use. Returns what it did, if anything.
    ///
    /// - a `.new` file whose id is `expected` while the file in place is
    ///   not: the store committed and the process stopped before the
    ///   rename; the `.new` file is moved into place (and the other
    ///   source's file, which a mode switch removes, is removed);
    /// - a `.new` file with another id: the rotation never committed; it
    ///   is removed;
    /// - in-place files of both sources: the one whose id is not
    ///   `expected` is a leftover of a finished mode switch; it is removed.
    ///
    /// Nothing is removed unless some file on disk holds `expected`.
    pub fn recover(&self, expected: &str) -> Result<Vec<String>, KonnectorError> {
        let mut done = Vec::new();
        let key = self.key_file();
        let header = self.header_file();
        let candidates = [
            key.clone(),
            header.clone(),
            Self::staged(&key),
            Self::staged(&header),
        ];
        let mut ids = Vec::new();
        for path in &candidates {
            ids.push(file_key_id(path)?);
        }
        let Some(winner) = ids.iter().position(|id| id.as_deref() == Some(expected)) else {
            // No file holds the store's key: leave everything as it is;
            // opening will report the mismatch.
            return Ok(done);
        };
        let remove = |path: &Path, done: &mut Vec<String>, why: &str| {
            if path.exists() {
                match std::fs::remove_file(path) {
                    Ok(()) => done.push(format!("removed {} ({why})", path.display())),
                    Err(e) => done.push(format!("could not remove {}: {e}", path.display())),
                }
            }
        };
        if winner >= 2 {
            let target = &candidates[winner - 2];
            std::fs::rename(&candidates[winner], target).map_err(|e| {
                vault_error(format!(
                    "cannot finish the interrupted key rotation (rename {} to {}): {e}",
                    candidates[winner].display(),
                    target.display()
                ))
            })?;
            sync_dir(&self.dir);
            done.push(format!(
                "finished an interrupted key rotation: {} is now in place",
                target.display()
            ));
        }
        let in_place = if winner == 0 || winner == 2 { 0 } else { 1 };
        for (i, path) in candidates.iter().enumerate() {
            if i == in_place || (winner >= 2 && i == winner) {
                continue;
            }
            if i >= 2 {
                remove(path, &mut done, "left by a rotation that did not commit");
            } else {
                remove(path, &mut done, "the key of a finished rotation");
            }
        }
        Ok(done)
    }

    /// Writes the new key (or header) of a rotation to a `.new` file and
    /// returns the new vault; see [`PendingRotation`].
    pub fn prepare_rotation(
        &self,
        target: RotationTarget,
    ) -> Result<PendingRotation, KonnectorError> {
        let (vault, bytes, final_path, other) = match target {
            RotationTarget::KeyFile => {
                let key = random_key();
                let path = self.key_file();
                let vault = Vault::from_key(&key, &path, KeySource::KeyFile);
                (vault, key, path, self.header_file())
            }
            RotationTarget::Passphrase(passphrase, params) => {
                let path = self.header_file();
                let (vault, header) = Vault::new_passphrase_vault(&path, &passphrase, params)?;
                (
                    vault,
                    Zeroizing::new(header.into_bytes()),
                    path,
                    self.key_file(),
                )
            }
        };
        let staged = Self::staged(&final_path);
        write_private_file(&staged, &bytes, true)?;
        sync_dir(&self.dir);
        Ok(PendingRotation {
            vault,
            staged: StagedKey {
                path: staged,
                armed: true,
            },
            final_path,
            other,
            dir: self.dir.clone(),
        })
    }
}

/// What [`open_for_store`] did besides opening.
#[derive(Debug, Default)]
pub struct OpenNotes {
    /// Recovery steps and warnings, for the log.
    pub notes: Vec<String>,
    /// What the person may do about them (worded by the front end), such
    /// as [`crate::UserAction::SwitchVaultToPassphrase`] when a passphrase
    /// was given to a key-file vault.
    pub next_steps: Vec<crate::UserAction>,
}

/// Opens the vault of a data directory for its store:
///
/// 1. if the store names a key id, finishes or cleans up an interrupted
///    rotation ([`VaultLocation::recover`]);
/// 2. picks the key source from the files on disk: a passphrase header
///    (the passphrase is `env_passphrase`, else `prompt()`, else an error
///    saying how to give it), else the key file; with neither, a new vault
///    is created, passphrase-based if `env_passphrase` is given (Argon2id
///    with `params`), else a new key file;
/// 3. checks the key against the id the store recorded: a mismatch is an
///    error naming both ids, unless the store holds no sealed record (then
///    the new id is recorded). A store with no id yet records this key's.
pub async fn open_for_store(
    loc: &VaultLocation,
    store: &dyn crate::store::SealedStore,
    env_passphrase: Option<Secret>,
    prompt: &(dyn Fn() -> Result<Option<Secret>, KonnectorError> + Sync),
    params: KdfParams,
) -> Result<(Vault, OpenNotes), KonnectorError> {
    let mut notes = OpenNotes::default();
    let expected = store.vault_key_id().await?;
    if let Some(expected) = &expected {
        notes.notes.extend(loc.recover(expected)?);
    }
    // A loop only for the race of a new data directory: another process
    // may make the key (and seal with it) between this one's look for it
    // and its count of sealed records; the key is then looked for again.
    let mut env_passphrase = env_passphrase;
    let vault = loop {
        break match loc.detect() {
            Some(KeySource::Passphrase) => {
                let passphrase = match env_passphrase.take() {
                    Some(p) => p,
                    None => prompt()?.ok_or_else(|| {
                        vault_error(format!(
                            "vault: {} is locked with a passphrase: set GLEANER_PASSPHRASE or run from a terminal",
                            loc.header_file().display()
                        ))
                    })?,
                };
                Vault::open_with_passphrase(&loc.header_file(), &passphrase)?
            }
            Some(_) => {
                if env_passphrase.is_some() {
                    notes.notes.push(format!(
                        "GLEANER_PASSPHRASE is set but this vault uses the key file {}; ignored",
                        loc.key_file().display()
                    ));
                    notes
                        .next_steps
                        .push(crate::UserAction::SwitchVaultToPassphrase);
                }
                Vault::open_or_create(&loc.key_file())?
            }
            None => {
                // No key on disk. A new key is made only for a store with
                // nothing sealed: one for a store whose records need the lost
                // key would open nothing and hide what happened.
                let counts = store.sealed_counts().await?;
                let sealed: u64 = counts.values().sum();
                if sealed > 0 {
                    if loc.detect().is_some() {
                        // Made meanwhile by another process, which then
                        // sealed with it: open that key.
                        continue;
                    }
                    let detail = counts
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(t, n)| format!("{t}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(vault_error(format!(
                        "vault: the key is missing: neither {} nor {} exists, and the store holds {sealed} sealed record(s) ({detail}) sealed with key {}; no new key was made. Restore the key file (or the passphrase header) from a backup; without it those credentials, sessions and tokens are lost and their accounts must be removed and added again",
                        loc.key_file().display(),
                        loc.header_file().display(),
                        expected.as_deref().unwrap_or("unknown"),
                    )));
                }
                match env_passphrase.take() {
                    Some(p) => Vault::create_with_passphrase(&loc.header_file(), &p, params)?,
                    None => Vault::open_or_create(&loc.key_file())?,
                }
            }
        };
    };
    match expected {
        Some(id) if id != vault.key_id() => {
            let sealed: u64 = store.sealed_counts().await?.values().sum();
            if sealed > 0 {
                return Err(vault_error(format!(
                    "vault: the store's {sealed} sealed record(s) use key {id}, but {} holds key {}: restore the right key file (or passphrase), or remove the accounts",
                    vault.key_path().display(),
                    vault.key_id()
                )));
            }
            store.set_vault_key_id(&vault.key_id()).await?;
        }
        Some(_) => {}
        None => store.set_vault_key_id(&vault.key_id()).await?,
    }
    Ok((vault, notes))
}

/// Rotates the vault of `loc` for `store`: prepares the new key, re-seals
/// every sealed record in one transaction, then moves the key into place.
/// Returns the new vault and how many records were re-sealed per table.
pub async fn rotate(
    loc: &VaultLocation,
    store: &dyn crate::store::SealedStore,
    current: &Vault,
    target: RotationTarget,
) -> Result<(Vault, BTreeMap<String, u64>), KonnectorError> {
    rotate_with_tenants(loc, store, current, target, None).await
}

/// [`rotate`], and with `tenants` the tenants' data keys re-sealed by the
/// new key too (envelope encryption: their records stay as they are). The
/// re-sealed data keys are staged before the store's transaction, so that
/// nothing can fail between that commit and the keys' move into place but
/// a rename, which the next open finishes. Returns the count of re-sealed
/// data keys under `tenant data keys`.
pub async fn rotate_with_tenants(
    loc: &VaultLocation,
    store: &dyn crate::store::SealedStore,
    current: &Vault,
    target: RotationTarget,
    tenants: Option<&envelope::TenantKeys>,
) -> Result<(Vault, BTreeMap<String, u64>), KonnectorError> {
    let pending = loc.prepare_rotation(target)?;
    let staged = match tenants {
        Some(keys) => Some(keys.stage_rewrap(current, pending.vault())?),
        None => None,
    };
    // On error the pending rotation is dropped: its `.new` file goes (and
    // the staged data keys), the transaction rolled back, the old key stays.
    let mut counts = store.reseal_all(current, pending.vault()).await?;
    let vault = pending.commit()?;
    if let Some(staged) = staged {
        counts.insert("tenant data keys".into(), staged.len() as u64);
        staged.commit()?;
    }
    Ok((vault, counts))
}

/// A rotation whose new key is written to a `.new` file.
///
/// Re-seal the store with [`PendingRotation::vault`] (one transaction that
/// also records the new key id), then call [`PendingRotation::commit`].
/// Dropping it without committing removes the `.new` file: the store was
/// not re-sealed, the old key stays.
pub struct PendingRotation {
    vault: Vault,
    staged: StagedKey,
    final_path: PathBuf,
    other: PathBuf,
    dir: PathBuf,
}

/// The `.new` file of a pending rotation, removed on drop while armed.
struct StagedKey {
    path: PathBuf,
    armed: bool,
}

impl Drop for StagedKey {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl PendingRotation {
    /// The new vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Leaves the `.new` file on disk, as a crash would (for tests of the
    /// recovery path).
    pub fn abandon(mut self) {
        self.staged.armed = false;
    }

    /// Moves the new key into place and removes the other source's file
    /// (after a switch between key file and passphrase), then returns the
    /// new vault. Call it only after the store committed the re-sealed
    /// records.
    pub fn commit(mut self) -> Result<Vault, KonnectorError> {
        self.staged.armed = false;
        std::fs::rename(&self.staged.path, &self.final_path).map_err(|e| {
            vault_error(format!(
                "the store is re-sealed, but {} could not be renamed to {}: {e}; the next start finishes the rotation",
                self.staged.path.display(),
                self.final_path.display()
            ))
        })?;
        sync_dir(&self.dir);
        if self.other.exists()
            && let Err(e) = std::fs::remove_file(&self.other)
        {
            tracing::warn!(file = %self.other.display(), error = %e, "cannot remove the previous key");
        }
        Ok(self.vault)
    }
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

    /// Several commands started at once on a new data directory: one key
    /// is made, every one of them opens it, none fails on the file the
    /// other is writing (it failed with "File exists", or read a key file
    /// still empty).
    #[test]
    fn processes_creating_the_key_at_once_all_get_the_same_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("vault.key");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let ids: Vec<String> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), std::sync::Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        Vault::open_or_create(&path).map(|v| v.key_id())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect();
            assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["vault.key"], "no temporary file left");
        }
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
        let err = vault.open("acc1", &bad).err().unwrap();
        assert!(err.message.contains("tampered"), "{}", err.message);
        let err = other.open("acc1", &blob).err().unwrap();
        assert!(err.message.contains("sealed with key"), "{}", err.message);
        assert!(vault.open("acc2", &blob).is_err());
        assert!(vault.open("acc1", b"garbage").is_err());
    }

    #[test]
    fn every_failure_to_open_is_vault_failed_with_the_vault_as_source() {
        use crate::error::{ErrorCode, SourceKind};
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_create(&dir.path().join("a.key")).unwrap();
        let other = Vault::open_or_create(&dir.path().join("b.key")).unwrap();
        let blob = vault.seal("acc1", &secrets()).unwrap();
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        for err in [
            other.open("acc1", &blob).err().unwrap(),
            vault.open("acc1", &tampered).err().unwrap(),
            vault.open("acc2", &blob).err().unwrap(),
            vault.open("acc1", b"garbage").err().unwrap(),
            vault.open("acc1", b"").err().unwrap(),
        ] {
            assert_eq!(err.code, ErrorCode::VaultFailed, "{}", err.message);
            assert_eq!(err.source_kind(), Some(SourceKind::Vault));
            assert!(!err.needs_user(), "{}", err.message);
        }
        // A key file that cannot be read keeps the I/O error as the cause.
        let unreadable = dir.path().join("dir.key");
        std::fs::create_dir(&unreadable).unwrap();
        let err = Vault::open_or_create(&unreadable).err().unwrap();
        assert_eq!(err.source_kind(), Some(SourceKind::Vault));
        let cause = err.source.as_ref().and_then(|s| s.cause()).unwrap();
        assert!(cause.downcast_ref::<std::io::Error>().is_some(), "{cause}");
    }

    #[test]
    fn legacy_v1_records_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_create(&dir.path().join("vault.key")).unwrap();
        let v2 = vault.seal_bytes(b"acc", b"plain").unwrap();
        // A v1 record is the same without the key id.
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&v2[MAGIC_V2.len() + KEY_ID_LEN..]);
        assert_eq!(
            vault.open_bytes(b"acc", &v1, "r").unwrap().as_slice(),
            b"plain"
        );
    }

    #[test]
    fn a_truncated_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        std::fs::write(&path, b"short").unwrap();
        let err = Vault::open_or_create(&path).err().unwrap();
        assert!(err.message.contains("corrupt"));
    }

    #[test]
    fn passphrase_vault_opens_with_the_right_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join(HEADER_FILE);
        let pass = Secret::new("correct horse battery");
        let vault =
            Vault::create_with_passphrase(&header, &pass, KdfParams::INSECURE_FOR_TESTS).unwrap();
        let blob = vault.seal("acc", &secrets()).unwrap();
        let again = Vault::open_with_passphrase(&header, &pass).unwrap();
        assert_eq!(again.key_id(), vault.key_id());
        assert_eq!(
            again.open("acc", &blob).unwrap()["password"].expose(),
            "hunter2-zebra"
        );
        let err = Vault::open_with_passphrase(&header, &Secret::new("wrong horse battery"))
            .err()
            .unwrap();
        assert_eq!(err.message, "vault: wrong passphrase");
        // The header holds no plaintext and has mode 0600.
        let text = std::fs::read_to_string(&header).unwrap();
        assert!(!text.contains("correct horse"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&header).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second create refuses to overwrite.
        assert!(
            Vault::create_with_passphrase(&header, &pass, KdfParams::INSECURE_FOR_TESTS).is_err()
        );
    }

    #[test]
    fn a_tampered_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join(HEADER_FILE);
        let pass = Secret::new("tamper-pass-1");
        Vault::create_with_passphrase(&header, &pass, KdfParams::INSECURE_FOR_TESTS).unwrap();
        let mut h: Header =
            serde_json::from_str(&std::fs::read_to_string(&header).unwrap()).unwrap();
        h.salt = b64(&[7u8; 16]);
        std::fs::write(&header, serde_json::to_string(&h).unwrap()).unwrap();
        let err = Vault::open_with_passphrase(&header, &pass).err().unwrap();
        assert_eq!(err.message, "vault: wrong passphrase");
        std::fs::write(&header, "{not json").unwrap();
        let err = Vault::open_with_passphrase(&header, &pass).err().unwrap();
        assert!(err.message.contains("corrupt"), "{}", err.message);
    }

    #[test]
    fn the_laptop_parameters_are_the_documented_ones() {
        assert_eq!(KdfParams::LAPTOP.m_cost_kib, 19456);
        assert_eq!(KdfParams::LAPTOP.t_cost, 2);
    }
}
