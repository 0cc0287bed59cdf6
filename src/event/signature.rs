//! Signed events (contract v1.1). A register that holds a key wraps its event in an envelope,
//! `{"event": {...}, "sig": "hmac-sha256=<lowercase hex>"}`, the HMAC-SHA256 taken over the exact bytes of the
//! `event` value as received. Only a holder of the register's key can then put an event on its record; a
//! replay with other content is caught by the store's content digest, not here.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use super::RegisterScope;
use crate::secret::Secret;

/// Whether events must carry a register's signature (`[signing] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningMode {
    /// Signatures are not checked; a signed envelope is unwrapped. The default.
    #[default]
    Off,
    /// A signed event is checked (a bad signature is a dead letter); an unsigned one is stored, marked unsigned.
    Optional,
    /// Only an event signed with its register's key is stored.
    Required,
}

/// The key of one register, or of every register of a store.
#[derive(Debug, Clone)]
pub struct RegisterKey {
    pub scope: RegisterScope,
    pub key: Secret,
}

/// `[signing]`: the mode and every register's key.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    pub mode: SigningMode,
    pub keys: Vec<RegisterKey>,
}

impl Signing {
    /// The key a register signs with: its own, else its store's.
    pub fn key_for(&self, store: &str, register: &str) -> Option<&Secret> {
        let covering = || self.keys.iter().filter(|k| k.scope.covers(store, register));
        covering()
            .find(|k| k.scope.register.is_some())
            .or_else(|| covering().next())
            .map(|k| &k.key)
    }
}

/// What the signature check found, as the index and API show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Signing is off: nothing was checked.
    Unchecked,
    /// Signing is optional and the event came without a signature.
    Unsigned,
    /// Signed with its register's key.
    Verified,
}

impl Signature {
    /// As stored: unknown, false, true.
    pub fn as_flag(self) -> Option<bool> {
        match self {
            Signature::Unchecked => None,
            Signature::Unsigned => Some(false),
            Signature::Verified => Some(true),
        }
    }
}

const SCHEME: &str = "hmac-sha256=";

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    sig: String,
}

/// The envelope, when `value` (the parse of `text`) is one: an object with `event` and `sig` and no event field
/// of its own. `Err` names what is wrong with an envelope that cannot be read.
pub fn envelope(value: &serde_json::Value, text: &str) -> Result<Option<(String, String)>, String> {
    if value.get("sig").is_none() || value.get("event").is_none() || value.get("id").is_some() {
        return Ok(None);
    }
    // Read again, keeping the event's bytes as they came: re-serialising could change what was signed.
    match serde_json::from_str::<Envelope>(text) {
        Ok(e) if e.event.get().starts_with('{') => Ok(Some((e.event.get().to_string(), e.sig))),
        Ok(_) => Err("event: a signed envelope's event must be a JSON object".into()),
        Err(e) => Err(format!(
            "a signed envelope must be {{\"event\": {{...}}, \"sig\": \"hmac-sha256=<hex>\"}}: {e}"
        )),
    }
}

/// Whether `sig` is the HMAC-SHA256 of `event` under `key`, compared in constant time.
pub fn verify(event: &str, sig: &str, key: &Secret) -> Result<(), &'static str> {
    let hex_sig = sig
        .strip_prefix(SCHEME)
        .ok_or("sig: must start with \"hmac-sha256=\"")?;
    let expected = hex::decode(hex_sig).map_err(|_| "sig: the signature is not hexadecimal")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .map_err(|_| "signature mismatch")?;
    mac.update(event.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| "signature mismatch")
}

/// Signs `event` bytes: what a register (and `tillmark simulate --sign-key-env`) sends as `sig`.
pub fn sign(event: &str, key: &Secret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(event.as_bytes());
    format!("{SCHEME}{}", hex::encode(mac.finalize().into_bytes()))
}

/// A keyed digest of an identifier, for telling apart ids whose masked forms are alike without keeping the
/// original: 16 hex digits of HMAC-SHA256 under the installation's key.
pub fn id_digest(key: &[u8], store: &str, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(store.as_bytes());
    mac.update(&[0]);
    mac.update(id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}
