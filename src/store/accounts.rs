//! Where people and their API tokens are kept: the trait every store backend implements (SQLite's is in
//! `sqlite/accounts.rs`).

use async_trait::async_trait;

use super::StoreError;
use crate::accounts::{NewUser, Role, User};
use crate::totp::TotpSecret;

/// Why an account change was refused, in words for the person at the command line.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("there is already a user \"{0}\"")]
    Exists(String),
    #[error("there is no user \"{0}\"")]
    Missing(String),
    #[error("\"{0}\" is the last owner: add another owner first, or nobody could manage users")]
    LastOwner(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signed-in browser's session: who, and the token its forms must carry back.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf: String,
}

/// A person's second factor, as a sign-in checks a code against it.
#[derive(Debug, Clone)]
pub struct TotpState {
    pub secret: TotpSecret,
    /// The last time step a code was accepted for: codes of it and before are spent.
    pub last_step: Option<i64>,
}

/// An API token as people manage it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub label: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub expires_ms: Option<i64>,
}

/// The columns of [`UserRow`], from `users u`, as every backend selects them.
pub(super) const USER_COLUMNS: &str =
    "u.id, u.name, u.role, u.stores, u.created_ms, u.totp_secret IS NOT NULL AS totp, u.timezone";

/// [`TokenInfo`]'s query, before its `WHERE`.
pub(super) const TOKEN_INFO: &str = "SELECT t.id, u.name AS user, t.label, t.created_ms, t.last_used_ms, t.expires_ms \
     FROM api_tokens t JOIN users u ON u.id = t.user_id";

/// A person as stored ([`USER_COLUMNS`]): the role and stores still text.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    name: String,
    role: String,
    /// A JSON array of store names.
    stores: String,
    created_ms: i64,
    totp: bool,
    timezone: Option<String>,
}

impl UserRow {
    pub(super) fn user(self) -> Result<User, StoreError> {
        let role = self.role;
        Ok(User {
            id: self.id,
            name: self.name,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Invalid(format!("user role \"{role}\"")))?,
            stores: serde_json::from_str(&self.stores)
                .map_err(|e| StoreError::Invalid(format!("user stores: {e}")))?,
            created_ms: self.created_ms,
            totp: self.totp,
            timezone: self.timezone,
        })
    }
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn add_user(&self, user: &NewUser, now_ms: i64) -> Result<User, AccountError>;
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    /// The user and their password hash, to check a sign-in.
    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>, StoreError>;
    /// Sets a new password, signing out every session, and revokes the person's API tokens unless
    /// `keep_tokens` (a password changed because it leaked may have leaked with them). Returns how many
    /// tokens were revoked.
    async fn set_password(
        &self,
        name: &str,
        hash: &str,
        now_ms: i64,
        keep_tokens: bool,
    ) -> Result<u64, AccountError>;
    /// Sets the zone a person reads times in where no store names one; `None` returns them to their stores'.
    async fn set_timezone(
        &self,
        name: &str,
        timezone: Option<&str>,
        now_ms: i64,
    ) -> Result<(), AccountError>;
    /// Removes a user and their tokens; the last owner cannot be removed.
    async fn remove_user(&self, name: &str) -> Result<(), AccountError>;
    /// Gives `name` another role and stores; the last owner stays an owner.
    async fn set_access(
        &self,
        name: &str,
        role: Role,
        stores: &[String],
        now_ms: i64,
    ) -> Result<(), AccountError>;
    /// A token for `user`, valid until `expires_ms` (for ever with none).
    async fn add_token(
        &self,
        user: &str,
        label: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<(), AccountError>;
    /// The user a live token belongs to, by its digest, noting its use; an expired token is no one's.
    async fn token_user(&self, digest: &str, now_ms: i64) -> Result<Option<User>, StoreError>;
    /// Every token, or one person's, oldest first: never the token, only what it is.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes the token with this id; the token it was, if there was one.
    async fn revoke_token(&self, id: i64) -> Result<Option<TokenInfo>, StoreError>;

    /// Starts a session for `user_id`, known by the digest of its cookie.
    async fn add_session(
        &self,
        digest: &str,
        user_id: i64,
        csrf: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The session a cookie digest names, if it was used within `idle_ms`; an idle one is ended. Notes the
    /// use, at most once a minute, so reading pages does not turn into a write each.
    async fn session(
        &self,
        digest: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn end_session(&self, digest: &str) -> Result<(), StoreError>;

    /// Gives a person a TOTP key, replacing any they had, or with `None` removes it; returns whether they
    /// had one before.
    async fn set_totp(
        &self,
        name: &str,
        secret: Option<&TotpSecret>,
        now_ms: i64,
    ) -> Result<bool, AccountError>;
    /// A person's TOTP key and the last step used, if they have one.
    async fn totp(&self, user_id: i64) -> Result<Option<TotpState>, StoreError>;
    /// Spends `step`: true if it is after the last step used, which it becomes; false if a code of it or a
    /// later step was already accepted (a replay, or another sign-in that got there first).
    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError>;
    /// A sign-in waiting for its code, known by the digest of its cookie; those made before
    /// `expired_before_ms` are cleared on the way.
    async fn add_sign_in_challenge(
        &self,
        digest: &str,
        user_id: i64,
        now_ms: i64,
        expired_before_ms: i64,
    ) -> Result<(), StoreError>;
    /// Whose sign-in a challenge cookie's digest is, if it was made at or after `since_ms`.
    async fn sign_in_challenge(
        &self,
        digest: &str,
        since_ms: i64,
    ) -> Result<Option<User>, StoreError>;
    /// Ends every sign-in of the person still waiting for a code.
    async fn end_sign_in_challenges(&self, user_id: i64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_backends::{Kind, TestStore, backend_tests};

    backend_tests!(
        a_totp_step_is_spent_once_and_only_later_ones_after_it_and_a_new_key_starts_afresh,
        a_sign_in_challenge_lasts_its_window_and_goes_with_a_new_key_or_a_finished_sign_in,
        a_token_names_its_user_until_it_expires_or_is_revoked_and_notes_its_last_use,
        a_session_lasts_while_used_and_ends_when_idle_or_with_a_new_password,
        the_last_owner_stays_an_owner_and_cannot_be_removed,
    );

    async fn owner(store: &TestStore, name: &str) -> User {
        let user = NewUser {
            name: name.into(),
            role: Role::Owner,
            stores: vec![],
            password_hash: "not a hash".into(),
        };
        store.add_user(&user, 0).await.unwrap()
    }

    async fn a_totp_step_is_spent_once_and_only_later_ones_after_it_and_a_new_key_starts_afresh(
        store: &TestStore,
    ) {
        let user = owner(store, "aiko").await;
        assert!(
            !store.use_totp_step(user.id, 5).await.unwrap(),
            "no key, no step"
        );
        let key = TotpSecret::generate();
        assert!(!store.set_totp("aiko", Some(&key), 1).await.unwrap());
        let state = store.totp(user.id).await.unwrap().unwrap();
        assert_eq!((state.secret, state.last_step), (key, None));
        assert!(store.use_totp_step(user.id, 5).await.unwrap());
        assert!(!store.use_totp_step(user.id, 5).await.unwrap(), "replayed");
        assert!(!store.use_totp_step(user.id, 4).await.unwrap(), "earlier");
        assert!(store.use_totp_step(user.id, 6).await.unwrap());
        assert_eq!(
            store.totp(user.id).await.unwrap().unwrap().last_step,
            Some(6)
        );
        assert!(store.users().await.unwrap()[0].totp);

        assert!(
            store
                .set_totp("aiko", Some(&TotpSecret::generate()), 2)
                .await
                .unwrap()
        );
        assert_eq!(store.totp(user.id).await.unwrap().unwrap().last_step, None);
        assert!(store.set_totp("aiko", None, 3).await.unwrap());
        assert!(store.totp(user.id).await.unwrap().is_none());
        assert!(!store.users().await.unwrap()[0].totp);
        assert!(matches!(
            store.set_totp("nobody", None, 4).await,
            Err(AccountError::Missing(_))
        ));
    }

    async fn a_sign_in_challenge_lasts_its_window_and_goes_with_a_new_key_or_a_finished_sign_in(
        store: &TestStore,
    ) {
        let user = owner(store, "ken").await;
        store
            .set_totp("ken", Some(&TotpSecret::generate()), 0)
            .await
            .unwrap();
        store
            .add_sign_in_challenge("old", user.id, 1_000, 0)
            .await
            .unwrap();
        store
            .add_sign_in_challenge("new", user.id, 9_000, 0)
            .await
            .unwrap();
        let whose = store
            .sign_in_challenge("new", 5_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((whose.name.as_str(), whose.totp), ("ken", true));
        assert!(
            store
                .sign_in_challenge("old", 5_000)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        assert!(
            store
                .sign_in_challenge("unknown", 0)
                .await
                .unwrap()
                .is_none()
        );
        // Expired ones are cleared when the next is made.
        store
            .add_sign_in_challenge("next", user.id, 9_500, 5_000)
            .await
            .unwrap();
        assert!(store.sign_in_challenge("old", 0).await.unwrap().is_none());
        store.end_sign_in_challenges(user.id).await.unwrap();
        assert!(store.sign_in_challenge("new", 0).await.unwrap().is_none());

        store
            .add_sign_in_challenge("again", user.id, 9_600, 0)
            .await
            .unwrap();
        store
            .set_totp("ken", Some(&TotpSecret::generate()), 1)
            .await
            .unwrap();
        assert!(
            store.sign_in_challenge("again", 0).await.unwrap().is_none(),
            "a new key"
        );
    }

    async fn a_token_names_its_user_until_it_expires_or_is_revoked_and_notes_its_last_use(
        store: &TestStore,
    ) {
        owner(store, "aiko").await;
        store
            .add_token("aiko", "ci", "d1", 100, Some(1_000))
            .await
            .unwrap();
        store
            .add_token("aiko", "cli", "d2", 200, None)
            .await
            .unwrap();
        assert!(matches!(
            store.add_token("nobody", "x", "d9", 0, None).await,
            Err(AccountError::Missing(_))
        ));
        let whose = store.token_user("d1", 500).await.unwrap().unwrap();
        assert_eq!(whose.name, "aiko");
        let tokens = store.tokens(Some("aiko")).await.unwrap();
        assert_eq!(
            tokens
                .iter()
                .map(|t| (t.label.as_str(), t.last_used_ms, t.expires_ms))
                .collect::<Vec<_>>(),
            [("ci", Some(500), Some(1_000)), ("cli", None, None)]
        );
        assert_eq!(store.tokens(None).await.unwrap(), tokens);
        assert!(store.tokens(Some("ken")).await.unwrap().is_empty());
        assert!(
            store.token_user("d1", 1_000).await.unwrap().is_none(),
            "expired"
        );
        assert_eq!(
            store.tokens(None).await.unwrap()[0].last_used_ms,
            Some(500),
            "an expired token's try is no use"
        );

        let revoked = store.revoke_token(tokens[1].id).await.unwrap();
        assert_eq!(revoked.as_ref(), Some(&tokens[1]));
        assert!(store.token_user("d2", 300).await.unwrap().is_none());
        assert!(store.revoke_token(tokens[1].id).await.unwrap().is_none());

        store
            .add_token("aiko", "new", "d3", 300, None)
            .await
            .unwrap();
        assert_eq!(
            store.set_password("aiko", "h1", 400, true).await.unwrap(),
            0,
            "kept"
        );
        assert_eq!(
            store.set_password("aiko", "h2", 500, false).await.unwrap(),
            2
        );
        assert!(store.tokens(None).await.unwrap().is_empty());
        assert_eq!(store.user_with_hash("aiko").await.unwrap().unwrap().1, "h2");
    }

    async fn a_session_lasts_while_used_and_ends_when_idle_or_with_a_new_password(
        store: &TestStore,
    ) {
        let user = owner(store, "aiko").await;
        let idle = 100_000;
        store
            .add_session("s1", user.id, "csrf-1", Some("192.0.2.7"), 0)
            .await
            .unwrap();
        let session = store.session("s1", 90_000, idle).await.unwrap().unwrap();
        assert_eq!(
            (session.user.name.as_str(), session.csrf.as_str()),
            ("aiko", "csrf-1")
        );
        assert!(
            store.session("s1", 180_000, idle).await.unwrap().is_some(),
            "the use at 90 s was noted"
        );
        assert!(store.session("s1", 400_000, idle).await.unwrap().is_none());
        assert!(
            store
                .session("s1", 400_001, 1_000_000)
                .await
                .unwrap()
                .is_none(),
            "an idle session is ended, not only refused"
        );

        store
            .add_session("s2", user.id, "csrf-2", None, 0)
            .await
            .unwrap();
        store.end_session("s2").await.unwrap();
        assert!(store.session("s2", 1, idle).await.unwrap().is_none());
        store
            .add_session("s3", user.id, "csrf-3", None, 0)
            .await
            .unwrap();
        store.set_password("aiko", "h", 1, true).await.unwrap();
        assert!(store.session("s3", 2, idle).await.unwrap().is_none());
        assert!(matches!(
            store.set_password("nobody", "h", 1, true).await,
            Err(AccountError::Missing(_))
        ));
    }

    async fn the_last_owner_stays_an_owner_and_cannot_be_removed(store: &TestStore) {
        owner(store, "aiko").await;
        let shibuya = ["shibuya-01".to_string()];
        assert!(matches!(
            store.set_access("aiko", Role::Manager, &shibuya, 1).await,
            Err(AccountError::LastOwner(_))
        ));
        assert!(matches!(
            store.remove_user("aiko").await,
            Err(AccountError::LastOwner(_))
        ));
        owner(store, "ken").await;
        assert!(matches!(
            store
                .add_user(
                    &NewUser {
                        name: "ken".into(),
                        role: Role::Manager,
                        stores: vec![],
                        password_hash: "x".into(),
                    },
                    2
                )
                .await,
            Err(AccountError::Exists(_))
        ));
        store
            .set_access("aiko", Role::Manager, &shibuya, 3)
            .await
            .unwrap();
        store
            .set_timezone("aiko", Some("Asia/Tokyo"), 4)
            .await
            .unwrap();
        let aiko = &store.users().await.unwrap()[0];
        assert_eq!(
            (aiko.role, aiko.stores.as_slice(), aiko.timezone.as_deref()),
            (Role::Manager, &shibuya[..], Some("Asia/Tokyo"))
        );
        assert!(matches!(
            store.remove_user("ken").await,
            Err(AccountError::LastOwner(_))
        ));
        let aiko = aiko.id;
        store.add_token("aiko", "ci", "d1", 5, None).await.unwrap();
        store
            .add_session("s1", aiko, "csrf", None, 5)
            .await
            .unwrap();
        store.remove_user("aiko").await.unwrap();
        assert!(store.token_user("d1", 6).await.unwrap().is_none());
        assert!(store.session("s1", 6, 1_000).await.unwrap().is_none());
        assert!(store.tokens(None).await.unwrap().is_empty());
        assert!(matches!(
            store.remove_user("aiko").await,
            Err(AccountError::Missing(_))
        ));
        assert!(matches!(
            store.set_access("aiko", Role::Owner, &[], 5).await,
            Err(AccountError::Missing(_))
        ));
        assert!(matches!(
            store.set_timezone("aiko", None, 6).await,
            Err(AccountError::Missing(_))
        ));
        assert_eq!(store.users().await.unwrap().len(), 1);
    }

    /// Two daemons checking the same code at the same moment: one sign-in passes, the other is a replay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_daemons_spending_the_same_totp_step_at_once_accept_it_once() {
        let Some(store) = TestStore::new(Kind::Postgres).await else {
            return;
        };
        let user = owner(&store, "aiko").await;
        store
            .set_totp("aiko", Some(&TotpSecret::generate()), 0)
            .await
            .unwrap();
        let (one, two) = (store.again().await, store.again().await);
        for step in 1..=50 {
            let (a, b) = tokio::join!(
                one.use_totp_step(user.id, step),
                two.use_totp_step(user.id, step)
            );
            assert!(a.unwrap() ^ b.unwrap(), "step {step} accepted once");
        }
    }

    /// Two daemons each demoting one of the two owners at once: one is refused, as it would be after the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_owners_demoted_at_once_leave_one_owner() {
        let Some(store) = TestStore::new(Kind::Postgres).await else {
            return;
        };
        let (one, two) = (store.again().await, store.again().await);
        let mut kept = owner(&store, "owner-0").await.name;
        for round in 1..=20 {
            let other = owner(&store, &format!("owner-{round}")).await.name;
            let (a, b) = tokio::join!(
                one.set_access(&kept, Role::Manager, &[], round),
                two.set_access(&other, Role::Manager, &[], round)
            );
            assert!(
                matches!(
                    (&a, &b),
                    (Ok(()), Err(AccountError::LastOwner(_)))
                        | (Err(AccountError::LastOwner(_)), Ok(()))
                ),
                "round {round}: {a:?} {b:?}"
            );
            if a.is_ok() {
                kept = other;
            }
            let owners = store.users().await.unwrap();
            assert_eq!(owners.iter().filter(|u| u.role == Role::Owner).count(), 1);
        }
    }
}
