//! Accounts in PostgreSQL: users, API tokens, sessions and sign-in challenges.
