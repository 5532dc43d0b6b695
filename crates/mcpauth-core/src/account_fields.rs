//! What a user account's fields must look like: the email address (trimmed, lower-cased, a
//! plausible `local@domain.tld`; RFC 5321 §4.5.3.1.3 caps a path at 256 octets, so an address
//! at 254), the password (8 to 128 characters, NIST SP 800-63B §5.1.1.2) and the display name.
//! Hashing, storage and sessions are the web crate's.

use std::fmt;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted, in characters.
pub const MAX_PASSWORD: usize = 128;
/// The longest email address accepted, in bytes.
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Why an account field was refused. The display text is shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountFieldError {
    /// The email address is not one.
    #[error("enter a valid email address")]
    InvalidEmail,
    /// The password is shorter than [`MIN_PASSWORD`] characters.
    #[error("the password must be at least {MIN_PASSWORD} characters")]
    PasswordTooShort,
    /// The password is longer than [`MAX_PASSWORD`] characters.
    #[error("the password must be at most {MAX_PASSWORD} characters")]
    PasswordTooLong,
    /// The display name is longer than [`MAX_NAME_CHARS`] characters.
    #[error("the name must be at most {MAX_NAME_CHARS} characters")]
    NameTooLong,
}

/// An email address, trimmed and lower-cased: the form users are stored and looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims and lower-cases `raw` and checks it looks like an address: at most
    /// [`MAX_EMAIL_LEN`] bytes, one `@` between a non-empty local part and a domain with a dot,
    /// no whitespace or control characters.
    pub fn parse(raw: &str) -> Result<Self, AccountFieldError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= MAX_EMAIL_LEN
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(email))
        } else {
            Err(AccountFieldError::InvalidEmail)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .split_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }

    /// The address, as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password of acceptable length, as typed (never trimmed). Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks that `raw` is [`MIN_PASSWORD`] to [`MAX_PASSWORD`] characters long.
    pub fn parse(raw: &str) -> Result<Self, AccountFieldError> {
        match raw.chars().count() {
            n if n < MIN_PASSWORD => Err(AccountFieldError::PasswordTooShort),
            n if n > MAX_PASSWORD => Err(AccountFieldError::PasswordTooLong),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    /// The password.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The password, as an owned string (for the hasher).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A user's display name: trimmed, at most [`MAX_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// The name given at sign-up, trimmed; a blank or absent one becomes the email address's
    /// local part. A name longer than [`MAX_NAME_CHARS`] is refused, not cut.
    pub fn parse(raw: Option<&str>, email: &Email) -> Result<Self, AccountFieldError> {
        match raw.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) if name.chars().count() > MAX_NAME_CHARS => {
                Err(AccountFieldError::NameTooLong)
            }
            Some(name) => Ok(Self(name.to_owned())),
            None => Ok(Self(email.local_part().to_owned())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").map(Email::into_string),
            Ok("ada@example.com".to_owned())
        );
        assert_eq!(
            Email::parse("a.b+c@sub.example.org").map(|e| e.local_part().to_owned()),
            Ok("a.b+c".to_owned())
        );
    }

    #[test]
    fn invalid_emails_are_refused() {
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@b@example.com",
            "a da@example.com",
            "ada@exa\tmple.com",
            "ada@exa\u{7}mple.com",
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(AccountFieldError::InvalidEmail),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 11));
        assert_eq!(Email::parse(&long), Err(AccountFieldError::InvalidEmail));
        let longest = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        assert!(Email::parse(&longest).is_ok());
        assert_eq!(
            AccountFieldError::InvalidEmail.to_string(),
            "enter a valid email address"
        );
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert_eq!(
            Password::parse("1234567"),
            Err(AccountFieldError::PasswordTooShort)
        );
        assert!(Password::parse("12345678").is_ok());
        // Characters, not bytes.
        assert!(Password::parse(&"é".repeat(MAX_PASSWORD)).is_ok());
        assert_eq!(
            Password::parse(&"a".repeat(MAX_PASSWORD + 1)),
            Err(AccountFieldError::PasswordTooLong)
        );
        assert_eq!(
            Password::parse(" padded ").map(Password::into_string),
            Ok(" padded ".to_owned())
        );
        assert_eq!(
            AccountFieldError::PasswordTooShort.to_string(),
            "the password must be at least 8 characters"
        );
        assert_eq!(
            AccountFieldError::PasswordTooLong.to_string(),
            "the password must be at most 128 characters"
        );
    }

    #[test]
    fn passwords_never_appear_in_debug_output() {
        let password = Password::parse("correct horse battery staple");
        let shown = format!("{password:?}");
        assert!(!shown.contains("horse"), "{shown}");
    }

    #[test]
    fn display_names() {
        let email = Email::parse("ada@example.com").unwrap_or_else(|_| Email(String::new()));
        assert_eq!(
            DisplayName::parse(Some("  Ada Lovelace "), &email).map(DisplayName::into_string),
            Ok("Ada Lovelace".to_owned())
        );
        assert_eq!(
            DisplayName::parse(Some("   "), &email).map(DisplayName::into_string),
            Ok("ada".to_owned())
        );
        assert_eq!(
            DisplayName::parse(None, &email).map(DisplayName::into_string),
            Ok("ada".to_owned())
        );
        assert!(DisplayName::parse(Some(&"é".repeat(MAX_NAME_CHARS)), &email).is_ok());
        assert_eq!(
            DisplayName::parse(Some(&"a".repeat(MAX_NAME_CHARS + 1)), &email),
            Err(AccountFieldError::NameTooLong)
        );
        assert_eq!(
            AccountFieldError::NameTooLong.to_string(),
            "the name must be at most 200 characters"
        );
    }

    proptest! {
        #[test]
        fn parsed_emails_are_fixed_points(local in "[A-Za-z0-9._+-]{1,20}", domain in "[A-Za-z0-9-]{1,20}\\.[a-z]{2,6}") {
            let email = Email::parse(&format!(" {local}@{domain} "));
            prop_assert!(email.is_ok());
            let email = email.map(Email::into_string).unwrap_or_default();
            prop_assert_eq!(Email::parse(&email).map(Email::into_string), Ok(email.clone()));
        }
    }
}
