//! The installation's evidence key: an Ed25519 key pair whose private half is derived from the installation
//! key the database keeps (`Store::installation_key`), so every daemon of a chain signs with the same key and
//! nothing secret is ever written to a file. Only the public half leaves: in each package's manifest, and as
//! `tillmark evidence key` prints it, with a short fingerprint to read out over the phone.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::EvidenceError;
use crate::store::Store;

/// The name of the installation key the signing key is derived from.
pub const KEY_NAME: &str = "evidence-signing";

/// The private key; it lives only in memory, for one export.
pub struct EvidenceKey {
    signing: SigningKey,
}

impl EvidenceKey {
    /// The installation's key, made (by the database, once) on first use.
    pub async fn of(store: &dyn Store) -> Result<EvidenceKey, EvidenceError> {
        let seed = store.installation_key(KEY_NAME).await?;
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
            EvidenceError::Key(format!(
                "the installation key \"{KEY_NAME}\" has {} bytes, not 32",
                seed.len()
            ))
        })?;
        Ok(EvidenceKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// A key from a fixed seed, for tests that need no database.
    #[cfg(test)]
    pub fn for_tests(seed: [u8; 32]) -> EvidenceKey {
        EvidenceKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// The signature of `bytes`, as `manifest.sig` holds it: base64, one line.
    pub fn sign(&self, bytes: &[u8]) -> String {
        let signature = self.signing.sign(bytes);
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()) + "\n"
    }
}

/// An Ed25519 public key, as packages carry it and people compare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes())
    }

    /// The first 8 bytes of the key's SHA-256 in four groups (`1a2b-3c4d-5e6f-7a8b`): short enough to read
    /// out and compare, long enough that no one makes a key to match it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..8]
            .chunks(2)
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// A key written in hex (64 digits) or base64 (44 characters), as `tillmark evidence key` prints it.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or_else(|| {
                format!("\"{text}\" is not a public key: give it in hex (64 digits) or base64")
            })?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("a public key has 32 bytes; this one has {}", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| "not a valid Ed25519 public key".to_string())
    }

    /// Whether `signature` (as `manifest.sig` holds it) is this key's over `bytes`.
    pub fn verifies(&self, bytes: &[u8], signature: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(raw): Result<[u8; 64], _> = raw.as_slice().try_into() else {
            return false;
        };
        self.0.verify(bytes, &Signature::from_bytes(&raw)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> EvidenceKey {
        EvidenceKey::for_tests([seed; 32])
    }

    #[test]
    fn a_signature_verifies_with_its_key_only_and_over_the_exact_bytes() {
        let (one, two) = (key(1), key(2));
        let sig = one.sign(b"manifest");
        assert!(one.public().verifies(b"manifest", &sig));
        assert!(!one.public().verifies(b"manifesT", &sig));
        assert!(!two.public().verifies(b"manifest", &sig));
        assert!(!one.public().verifies(b"manifest", "not base64"));
    }

    #[test]
    fn a_public_key_reads_back_from_hex_and_base64_and_anything_else_is_refused_plainly() {
        let public = key(7).public();
        assert_eq!(PublicKey::parse(&public.hex()), Ok(public));
        assert_eq!(
            PublicKey::parse(&format!(" {}\n", public.base64())),
            Ok(public)
        );
        assert!(
            PublicKey::parse("abc")
                .unwrap_err()
                .contains("not a public key")
        );
        assert!(PublicKey::parse("abcd").unwrap_err().contains("32 bytes"));
        let fp = public.fingerprint();
        assert_eq!((fp.len(), fp.matches('-').count()), (19, 3), "{fp}");
    }
}
