//! User accounts with an email and a password: the rules a new account must meet, argon2id
//! password hashes (see `passwords`), and the error vocabulary of sign-up and sign-in. Usable on
//! a bare store (the admin CLI's `mcpauth user create`) as well as inside [`crate::McpAuth`].

use std::sync::Arc;

use mcpauth_core::model::User;
use mcpauth_core::{
    AccountFieldError, Clock, DisplayName, Email, Password, Store, StoreError, secret,
};

use crate::passwords::PasswordHasher;
use crate::rate_limit::RateLimited;

pub use mcpauth_core::account_fields::{MAX_PASSWORD, MIN_PASSWORD};

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An email address, password or name that breaks the rules of
    /// [`mcpauth_core::account_fields`].
    #[error(transparent)]
    Field(#[from] AccountFieldError),
    /// Another account has this email address.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The email and password do not match an enabled account (which of the two is wrong is
    /// deliberately not said).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The address is outside `allowed_email_domains` / `allowed_emails`.
    #[error("this email address is not allowed to have an account here")]
    EmailNotAllowed,
    /// Password sign-in and sign-up are turned off (`password_login = false`).
    #[error("signing in with a password is turned off; use one of the sign-in providers")]
    PasswordLoginDisabled,
    /// Too many attempts from this address or on this account.
    #[error("too many attempts; try again in {} seconds", .0.retry_after)]
    RateLimited(RateLimited),
    /// The database or the password hasher failed.
    #[error("the server could not complete the request")]
    Unavailable,
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => Self::EmailTaken,
            StoreError::Database(e) => {
                tracing::error!(error = %e, "storage failure");
                Self::Unavailable
            }
        }
    }
}

/// Creates users and checks their passwords.
pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    passwords: PasswordHasher,
}

impl Accounts {
    /// Accounts kept in `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            passwords: PasswordHasher::new(),
        }
    }

    /// Prepares the stand-in hash that unknown accounts are checked against (SECURITY S26),
    /// so that not even the first sign-in with an unknown email is faster than with a known one.
    pub(crate) async fn warm_up(&self) {
        self.passwords.warm_up().await;
    }

    /// The argon2id hash of a new password.
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String, AccountError> {
        self.passwords.hash(password.to_owned()).await.map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            AccountError::Unavailable
        })
    }

    /// The argon2id hash of a new password that meets the rules (what `mcpauth user
    /// reset-password` stores).
    pub async fn new_password_hash(&self, password: &str) -> Result<String, AccountError> {
        let password = Password::parse(password)?;
        self.hash_password(password.as_str()).await
    }

    /// True when `password` matches `hash`; with no hash, takes as long and says no.
    pub(crate) async fn verify_password(&self, password: &str, hash: Option<String>) -> bool {
        self.passwords.verify(password.to_owned(), hash).await
    }

    /// Creates a user with an email and password (what sign-up and `mcpauth user create` do).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<User, AccountError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let name = DisplayName::parse(name, &email)?;
        let hash = self.hash_password(password.as_str()).await?;
        let now = self.clock.now();
        let user = User {
            id: secret::random_id(),
            name: name.into_string(),
            email: email.into_string(),
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            disabled: false,
        };
        self.store.create_user(&user, &hash).await?;
        Ok(user)
    }
}
