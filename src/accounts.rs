//! People who use the index: their roles, the stores they may see, their passwords (argon2id, never stored
//! as typed) and their personal API tokens (shown once, stored only as a SHA-256 digest, so a copy of the
//! database gives nobody a working token).

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, in every store; manages users.
    Owner,
    /// The events and footage of their stores.
    Manager,
    /// The events and footage of their stores, and cases.
    Investigator,
    /// Camera systems and health: no events, no footage.
    Integrator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Owner,
        Role::Manager,
        Role::Investigator,
        Role::Integrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Investigator => "investigator",
            Role::Integrator => "integrator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether the role is limited to named stores (and so must name at least one).
    pub fn scoped(self) -> bool {
        matches!(self, Role::Manager | Role::Investigator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person as stored, without the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The stores a manager or investigator may see; empty for the other roles.
    pub stores: Vec<String>,
    pub created_ms: i64,
    /// Whether signing in takes a code from an authenticator app after the password.
    pub totp: bool,
    /// The IANA zone they chose to read times in where no store names one; `None`: their stores' common zone.
    pub timezone: Option<String>,
}

/// A new person, checked: a valid name, a role, the stores it needs, a password hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub stores: Vec<String>,
    pub password_hash: String,
}

/// Shorter passwords are refused: the index holds evidence and footage links.
pub const MIN_PASSWORD: usize = 12;

/// Names people sign in with: 1 to 64 of letters, digits, `.`, `_`, `-` and `@`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a user name: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

/// The stores a role takes: a manager or investigator needs at least one store the config knows; an owner
/// or integrator takes none (an owner sees all, an integrator no events).
pub fn check_stores(role: Role, stores: &[String], known: &[&str]) -> Result<(), String> {
    if role.scoped() {
        if stores.is_empty() {
            return Err(format!(
                "a {role} sees only named stores: give them with --stores a,b"
            ));
        }
        let unknown: Vec<&str> = stores
            .iter()
            .map(String::as_str)
            .filter(|s| !known.contains(s))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "not stores in the config: {}; the config has: {}",
                unknown.join(", "),
                known.join(", ")
            ));
        }
    } else if !stores.is_empty() {
        return Err(format!(
            "an {role} is not limited to stores: leave --stores out"
        ));
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD} characters"
        ));
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| format!("cannot make a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `hash` was made from; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A random secret of 32 bytes, URL-safe: passwords made for a person, tokens, session ids.
pub fn random_secret() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A personal API token as shown to its owner once: `tm_` and a random secret.
pub fn new_token() -> String {
    format!("tm_{}", random_secret())
}

/// What is stored of a token: its SHA-256 digest. A token has 256 random bits, so a fast digest is enough;
/// passwords, chosen by people, get argon2 instead.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_stored_as_argon2id_and_only_the_same_password_matches() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery ", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        let again = hash_password("correct horse battery").unwrap();
        assert_ne!(hash, again, "a new salt each time");
        assert_eq!(
            hash_password("short").unwrap_err(),
            "the password is too short: use at least 12 characters"
        );
    }

    #[test]
    fn names_roles_and_store_scopes_are_checked_with_messages_that_say_what_to_do() {
        assert!(check_name("aiko.sato@shibuya").is_ok());
        assert!(
            check_name("aiko sato")
                .unwrap_err()
                .contains("is not a user name")
        );
        assert_eq!(Role::parse("investigator"), Some(Role::Investigator));
        assert_eq!(Role::parse("admin"), None);
        let known = ["shibuya-01", "osaka-02"];
        assert!(check_stores(Role::Investigator, &["shibuya-01".into()], &known).is_ok());
        assert_eq!(
            check_stores(Role::Manager, &[], &known).unwrap_err(),
            "a manager sees only named stores: give them with --stores a,b"
        );
        assert_eq!(
            check_stores(Role::Investigator, &["kyoto-9".into()], &known).unwrap_err(),
            "not stores in the config: kyoto-9; the config has: shibuya-01, osaka-02"
        );
        assert_eq!(
            check_stores(Role::Owner, &["shibuya-01".into()], &known).unwrap_err(),
            "an owner is not limited to stores: leave --stores out"
        );
    }

    #[test]
    fn a_token_is_random_prefixed_and_stored_only_as_its_digest() {
        let (a, b) = (new_token(), new_token());
        assert!(a.starts_with("tm_") && a.len() == 46, "{a}");
        assert_ne!(a, b);
        let digest = token_digest(&a);
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains(&a[3..]));
        assert_eq!(
            token_digest("tm_abc"),
            "d57b1e80b8e5fd7fec810e1574cc5ae9c4ca3f9cef18b9eead633b613cd66ee3"
        );
    }
}
