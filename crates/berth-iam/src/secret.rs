//! The master key and what is derived from it: encryption of secrets at rest, the key
//! that signs authorization tokens, and the key that signs presigned blob URLs.
//!
//! The master key is 32 random bytes kept outside the metadata database: in
//! `<data-dir>/master.key` (created with mode 0600 on first start) or given by
//! configuration / the `BERTH_MASTER_KEY` environment variable (base64). Subkeys are
//! derived with HKDF-SHA256 (RFC 5869) under distinct labels, so no key serves two
//! purposes. Secrets are sealed with AES-256-GCM (NIST SP 800-38D) with a random 96-bit
//! nonce stored in front of the ciphertext.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Errors loading the master key or opening a sealed secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file or value is not 32 bytes (raw or base64).
    #[error("master key {0}: must be 32 bytes (raw, or base64 of 32 bytes)")]
    BadKey(String),
    /// Reading or creating the key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A sealed secret failed authentication: it was encrypted under another master key
    /// or was altered.
    #[error(
        "a stored secret cannot be decrypted with this master key (wrong key, or altered data)"
    )]
    Unseal,
}

/// The master key and its derived subkeys. `Debug` never shows key material.
#[derive(Clone)]
pub struct Keys {
    seal: Aes256Gcm,
    token: Zeroizing<[u8; 32]>,
    presign: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

fn derive(master: &[u8], label: &str) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"berth"), master);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    hk.expand(label.as_bytes(), out.as_mut())
        .expect("32 bytes is a valid HKDF output length");
    out
}

impl Keys {
    /// Keys from 32 bytes of master key.
    pub fn from_master(master: &[u8; MASTER_KEY_LEN]) -> Keys {
        let seal_key = derive(master, "secrets-at-rest v1");
        Keys {
            seal: Aes256Gcm::new_from_slice(seal_key.as_ref()).expect("32-byte AES-256 key"),
            token: derive(master, "authorization-token v1"),
            presign: derive(master, "presigned-url v1"),
        }
    }

    /// Keys from a base64 (standard alphabet) master key, as given by configuration.
    /// Errors: [`SecretError::BadKey`] when it does not decode to 32 bytes.
    pub fn from_base64(value: &str) -> Result<Keys, SecretError> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| SecretError::BadKey("value is not base64".into()))?,
        );
        let arr: [u8; MASTER_KEY_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey(format!("value decodes to {} bytes", raw.len())))?;
        Ok(Keys::from_master(&arr))
    }

    /// Loads the master key from `path`, creating it (32 random bytes, mode 0600,
    /// fsynced) when absent. Returns the keys and whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Keys, bool), SecretError> {
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; MASTER_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    SecretError::BadKey(format!("{} holds {} bytes", path.display(), bytes.len()))
                })?;
                Ok((Keys::from_master(&arr), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                rand::fill(master.as_mut_slice());
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(master.as_ref()).map_err(io)?;
                f.sync_all().map_err(io)?;
                if let Some(dir) = path.parent() {
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok((Keys::from_master(&master), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts a secret for storage: `nonce (12 bytes) || AES-256-GCM ciphertext+tag`.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ct = self
            .seal
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`Keys::seal`] produced. Errors: [`SecretError::Unseal`].
    pub fn unseal(&self, sealed: &[u8]) -> Result<Zeroizing<String>, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let pt = self
            .seal
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(pt)
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Unseal)
    }

    /// The key that signs authorization tokens.
    pub fn token_key(&self) -> &[u8] {
        self.token.as_ref()
    }

    /// The key that signs presigned blob URLs.
    pub fn presign_key(&self) -> &[u8] {
        self.presign.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_wrong_key_refused() {
        let k = Keys::from_master(&[7u8; 32]);
        let sealed = k.seal("wJalrXUtnFEMI/K7MDENG");
        assert!(
            !sealed.windows(5).any(|w| w == b"wJalr"),
            "ciphertext must not contain the secret"
        );
        assert_eq!(k.unseal(&sealed).unwrap().as_str(), "wJalrXUtnFEMI/K7MDENG");
        let other = Keys::from_master(&[8u8; 32]);
        assert!(matches!(other.unseal(&sealed), Err(SecretError::Unseal)));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(k.unseal(&altered), Err(SecretError::Unseal)));
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let (k1, created) = Keys::load_or_create(&p).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (k2, created) = Keys::load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(k2.unseal(&k1.seal("s")).unwrap().as_str(), "s");
        assert_ne!(k1.token_key(), k1.presign_key());
    }

    #[test]
    fn base64_key_must_be_32_bytes() {
        assert!(Keys::from_base64("AAAA").is_err());
        assert!(
            Keys::from_base64(&base64::engine::general_purpose::STANDARD.encode([1u8; 32])).is_ok()
        );
    }
}
