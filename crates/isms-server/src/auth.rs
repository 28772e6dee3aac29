//! API keys: how every ingestion and API call proves who it is.
//!
//! A key is a random secret shown once. The store keeps only its argon2 hash and a public id derived from
//! the key text (`blake3("isms key id" ‖ key)`, 16 hex digits), so a presented key finds its record
//! without scanning and without trying every hash. Argon2 is deliberately slow (tens of milliseconds), so
//! a key that verified once is remembered, by its blake3 digest, for the life of the process; the record
//! is re-read every few seconds so a revocation made elsewhere (`isms key revoke` on the same data
//! directory) takes effect quickly. Unknown ids still run one argon2 verification, against a fixed dummy
//! hash, so timing does not tell an unknown key from a wrong one.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use isms_store::{KeyRecord, Store, StoreError};
use rand::RngCore;

/// How long a verified key is trusted before its record is read again.
const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// Shortest key text accepted when a key is chosen by an operator (`ISMS_BOOTSTRAP_KEY`).
pub const MIN_KEY_LENGTH: usize = 24;

/// Failures of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed (never expected).
    #[error("cannot hash the key: {0}")]
    Hash(String),
    /// An operator-chosen key is too short to be safe.
    #[error("a key must be at least {MIN_KEY_LENGTH} characters long")]
    TooShort,
    /// A key name is empty or too long.
    #[error("a key name must be 1 to 100 characters, found {0} characters")]
    BadName(usize),
}

/// The public id of a key text.
pub fn key_id_of(key: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"isms key id\0");
    hasher.update(key.as_bytes());
    hasher.finalize().to_hex()[..16].to_string()
}

/// A new random key text: `isms_` and 43 URL-safe characters (256 bits).
pub fn generate_key_text() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::from("isms_");
    // 6 bits per character; 43 characters cover 258 bits, the top two always zero.
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        accumulator = (accumulator << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            text.push(ALPHABET[((accumulator >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        text.push(ALPHABET[((accumulator << (6 - bits)) & 63) as usize] as char);
    }
    text
}

fn hash_key(key: &str) -> Result<String, KeyError> {
    Argon2::default()
        .hash_password(key.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| KeyError::Hash(error.to_string()))
}

/// Creates and stores a key named `name`, with the given text or a new random one; returns the record
/// and the key text (to show once).
pub async fn create_key(
    store: &dyn Store,
    name: &str,
    chosen_text: Option<String>,
) -> Result<(KeyRecord, String), KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(KeyError::BadName(name.chars().count()));
    }
    let text = match chosen_text {
        Some(text) if text.len() < MIN_KEY_LENGTH => return Err(KeyError::TooShort),
        Some(text) => text,
        None => generate_key_text(),
    };
    let text_for_hash = text.clone();
    let hash = tokio::task::spawn_blocking(move || hash_key(&text_for_hash))
        .await
        .map_err(|error| KeyError::Hash(error.to_string()))??;
    let record = KeyRecord {
        id: key_id_of(&text),
        name: name.to_string(),
        hash,
        created_micros: jiff::Timestamp::now().as_microsecond(),
        revoked_micros: None,
    };
    store.insert_key(record.clone()).await?;
    Ok((record, text))
}

/// Who a verified key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public id.
    pub key_id: String,
    /// The key's name.
    pub key_name: String,
}

struct CachedKey {
    caller: Caller,
    checked: Instant,
}

/// Verifies presented keys against the store, remembering the ones that verified.
pub struct KeyVerifier {
    store: Arc<dyn Store>,
    /// Bounds concurrent argon2 verifications: a flood of wrong keys costs at most this many cores.
    hashing_permits: tokio::sync::Semaphore,
    verified: Mutex<HashMap<[u8; 32], CachedKey>>,
    dummy_hash: String,
}

impl KeyVerifier {
    /// A verifier over the keys of `store`.
    pub fn new(store: Arc<dyn Store>) -> KeyVerifier {
        let dummy_hash = hash_key("isms dummy key used to equalize timing").unwrap_or_default();
        KeyVerifier {
            store,
            verified: Mutex::new(HashMap::new()),
            hashing_permits: tokio::sync::Semaphore::new(2),
            dummy_hash,
        }
    }

    /// Forgets what was verified of the key with this public id (after it was revoked here: it is
    /// refused from the next call, not only once the cache is re-checked).
    pub fn forget_key(&self, key_id: &str) {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, cached| cached.caller.key_id != key_id);
    }

    /// The caller owning `key`, or `None` when the key is unknown, wrong or revoked.
    pub async fn verify(&self, key: &str) -> Result<Option<Caller>, StoreError> {
        let digest = *blake3::hash(key.as_bytes()).as_bytes();
        let cached = {
            let verified = self
                .verified
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            verified.get(&digest).map(|entry| {
                (
                    entry.caller.clone(),
                    entry.checked.elapsed() < RECHECK_AFTER,
                )
            })
        };
        if let Some((caller, fresh)) = cached {
            if fresh {
                return Ok(Some(caller));
            }
            let live = matches!(self.store.key_by_id(&caller.key_id).await?, Some(record) if record.revoked_micros.is_none());
            let mut verified = self
                .verified
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if live {
                if let Some(entry) = verified.get_mut(&digest) {
                    entry.checked = Instant::now();
                }
                return Ok(Some(caller));
            }
            verified.remove(&digest);
            return Ok(None);
        }
        if key.is_empty() || key.len() > 512 {
            return Ok(None);
        }
        let record = self.store.key_by_id(&key_id_of(key)).await?;
        let (hash, live_record) = match &record {
            Some(record) if record.revoked_micros.is_none() => {
                (record.hash.clone(), Some(record.clone()))
            }
            _ => (self.dummy_hash.clone(), None),
        };
        let key_text = key.to_string();
        let Ok(_permit) = self.hashing_permits.acquire().await else {
            return Ok(None);
        };
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(key_text.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        match live_record {
            Some(record) if matches => {
                let caller = Caller {
                    key_id: record.id,
                    key_name: record.name,
                };
                let mut verified = self
                    .verified
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if verified.len() > 10_000 {
                    verified.clear();
                }
                verified.insert(
                    digest,
                    CachedKey {
                        caller: caller.clone(),
                        checked: Instant::now(),
                    },
                );
                Ok(Some(caller))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_distinct_and_url_safe() {
        let first = generate_key_text();
        let second = generate_key_text();
        assert_ne!(first, second);
        assert_eq!(first.len(), 5 + 43);
        assert!(
            first[5..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn key_ids_depend_on_the_whole_key() {
        assert_eq!(key_id_of("abc").len(), 16);
        assert_ne!(key_id_of("abc"), key_id_of("abd"));
        assert_eq!(key_id_of("abc"), key_id_of("abc"));
    }
}
