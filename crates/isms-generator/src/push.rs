//! Pushed changes: the collector may POST a generator's pending changes to a URL the generator
//! listens on (registered as its `push_url`), instead of waiting for the generator's next pull.
//!
//! Why signed, and with what: the generator must not apply changes from whoever can reach its
//! port. The collector keeps only a hash of the generator's key, so it cannot sign with the key
//! itself; when it makes the key it derives a signing key from it ([`push_signing_key`], a BLAKE3
//! key derivation) and keeps that. The generator derives the same from the key it holds, so one
//! secret is all a generator is configured with, and rotating the key rotates the signing key.
//! Knowing the signing key lets one forge pushes, not call the collector: the derivation cannot
//! be turned back into the key.
//!
//! A push carries `isms-signature: t=UNIX_SECONDS,v1=HEX`, the BLAKE3 keyed hash of
//! `UNIX_SECONDS.BODY`. A receiver refuses a signature older or newer than
//! [`MAX_SIGNATURE_AGE_SECONDS`]; within that window a push may be replayed, which is harmless:
//! applying and acknowledging a change twice does nothing the first time did not.
use serde::{Deserialize, Serialize};

use crate::InstanceChange;

/// The header a push's signature travels in.
pub const SIGNATURE_HEADER: &str = "isms-signature";

/// How far a push's signing time may be from the receiver's clock.
pub const MAX_SIGNATURE_AGE_SECONDS: i64 = 300;

/// Most changes one push carries (the oldest first; the rest follow in the next push).
pub const MAX_CHANGES_PER_PUSH: usize = 500;

/// The context string of the key derivation: fixed for this protocol, never reused elsewhere.
const SIGNING_KEY_CONTEXT: &str = "isms 2026-12-01 alert generator push signing key";

/// What a push carries: the generator's pending changes, oldest first (the same changes a pull
/// would answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedChanges {
    pub generator: String,
    pub changes: Vec<InstanceChange>,
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("no {SIGNATURE_HEADER} header: pushes must be signed by the collector")]
    Unsigned,
    #[error("the {SIGNATURE_HEADER} header is not `t=UNIX_SECONDS,v1=HEX`: {0:?}")]
    Malformed(String),
    #[error(
        "the push was signed at {signed} (unix seconds), {skew} s from this host's clock; at most {MAX_SIGNATURE_AGE_SECONDS} s are accepted"
    )]
    Stale { signed: i64, skew: i64 },
    #[error("the signature does not match: not signed with this generator's key")]
    Mismatch,
}

/// The signing key the collector derives from a generator's key when it makes it, and the
/// generator derives from the key it was given.
pub fn push_signing_key(generator_key: &str) -> [u8; 32] {
    blake3::derive_key(SIGNING_KEY_CONTEXT, generator_key.as_bytes())
}

fn keyed_hash(signing_key: &[u8; 32], unix_seconds: i64, body: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(signing_key);
    hasher.update(unix_seconds.to_string().as_bytes());
    hasher.update(b".");
    hasher.update(body);
    hasher.finalize()
}

/// The signature header's value for `body` signed at `unix_seconds`.
pub fn sign(signing_key: &[u8; 32], unix_seconds: i64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        keyed_hash(signing_key, unix_seconds, body).to_hex()
    )
}

/// Checks a push's signature header (`None` when the request had none) against its body, at
/// `now_unix_seconds`. The comparison takes the same time whatever the bytes.
pub fn verify(
    signing_key: &[u8; 32],
    header: Option<&str>,
    body: &[u8],
    now_unix_seconds: i64,
) -> Result<(), PushError> {
    let header = header.ok_or(PushError::Unsigned)?;
    let malformed = || PushError::Malformed(header.chars().take(200).collect());
    let mut signed = None;
    let mut digest = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => signed = Some(value.parse::<i64>().map_err(|_| malformed())?),
            Some(("v1", value)) => {
                digest = Some(blake3::Hash::from_hex(value).map_err(|_| malformed())?)
            }
            _ => return Err(malformed()),
        }
    }
    let (Some(signed), Some(digest)) = (signed, digest) else {
        return Err(malformed());
    };
    let skew = now_unix_seconds.saturating_sub(signed);
    if skew.abs() > MAX_SIGNATURE_AGE_SECONDS {
        return Err(PushError::Stale { signed, skew });
    }
    // `blake3::Hash`'s equality is constant-time.
    if keyed_hash(signing_key, signed, body) == digest {
        Ok(())
    } else {
        Err(PushError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_key_body_and_time() {
        let key = push_signing_key("isms_abc.secret");
        let body = br#"{"generator":"HIDS","changes":[]}"#;
        let header = sign(&key, 1_000_000, body);
        assert_eq!(verify(&key, Some(&header), body, 1_000_100), Ok(()));
        assert_eq!(
            verify(
                &push_signing_key("isms_abc.other"),
                Some(&header),
                body,
                1_000_000
            ),
            Err(PushError::Mismatch)
        );
        assert_eq!(
            verify(&key, Some(&header), b"{}", 1_000_000),
            Err(PushError::Mismatch)
        );
        assert_eq!(
            verify(&key, Some(&header), body, 1_000_000 + 301),
            Err(PushError::Stale {
                signed: 1_000_000,
                skew: 301
            })
        );
        assert_eq!(
            verify(&key, None, body, 1_000_000),
            Err(PushError::Unsigned)
        );
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,v1=00,x=1",
        ] {
            assert!(
                matches!(
                    verify(&key, Some(bad), body, 1),
                    Err(PushError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // Derivation is fixed: the collector and the generator derive the same key.
        assert_eq!(push_signing_key("k"), push_signing_key("k"));
        assert_ne!(push_signing_key("k"), push_signing_key("l"));
    }
}
