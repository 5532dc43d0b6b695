//! Who may have an account (SECURITY S29): the operator's allow-lists of email domains and
//! addresses, applied to every sign-in and to password sign-up, and the claim an
//! provider may be required to assert (for example a group).

use serde_json::Value;

use crate::account_fields::Email;

/// `allowed_email_domains` and `allowed_emails`: when both are empty, every address is allowed;
/// otherwise an address must be on the list of addresses or in one of the domains (exactly:
/// `example.com` does not admit `sub.example.com` unless listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailAllowList {
    domains: Vec<String>,
    emails: Vec<String>,
}

impl EmailAllowList {
    /// The lists as configured; entries are compared case-insensitively, a leading `@` on a
    /// domain is ignored.
    pub fn new(domains: &[String], emails: &[String]) -> Self {
        Self {
            domains: domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            emails: emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// True when no list is configured.
    pub fn is_open(&self) -> bool {
        self.domains.is_empty() && self.emails.is_empty()
    }

    /// Whether `email` may have an account.
    pub fn allows(&self, email: &Email) -> bool {
        if self.is_open() {
            return true;
        }
        let address = email.as_str();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        self.emails.iter().any(|e| e == address) || self.domains.iter().any(|d| d == domain)
    }
}

/// A claim an identity must carry: `name` equal to `value`, or, when the claim is an
/// array (groups, roles), containing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    /// The claim's name, e.g. `groups`.
    pub name: String,
    /// The value it must have or contain, e.g. `mcp-users`.
    pub value: String,
}

impl RequiredClaim {
    /// Whether `claims` satisfies the requirement. Strings compare exactly; a boolean or a
    /// number compares by its JSON text (`true`, `42`).
    pub fn is_met_by(&self, claims: &serde_json::Map<String, Value>) -> bool {
        let matches = |value: &Value| match value {
            Value::String(s) => *s == self.value,
            Value::Bool(b) => self.value == if *b { "true" } else { "false" },
            Value::Number(n) => n.to_string() == self.value,
            _ => false,
        };
        match claims.get(&self.name) {
            Some(Value::Array(items)) => items.iter().any(matches),
            Some(value) => matches(value),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn s29_allow_lists_admit_only_listed_domains_and_addresses() {
        let open = EmailAllowList::new(&[], &[]);
        assert!(open.allows(&email("anyone@anywhere.test")));

        let list = EmailAllowList::new(
            &["Example.com".into(), "@corp.test".into()],
            &["Guest@Partner.test".into()],
        );
        assert!(list.allows(&email("ada@example.com")));
        assert!(list.allows(&email("ADA@EXAMPLE.COM")));
        assert!(list.allows(&email("bob@corp.test")));
        assert!(list.allows(&email("guest@partner.test")));
        assert!(!list.allows(&email("other@partner.test")));
        assert!(!list.allows(&email("ada@sub.example.com")));
        assert!(!list.allows(&email("ada@example.com.evil.test")));
        assert!(!list.allows(&email("ada@notexample.com")));
    }

    #[test]
    fn s29_required_claim_matches_values_and_array_members() {
        let groups = RequiredClaim {
            name: "groups".into(),
            value: "mcp-users".into(),
        };
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert!(groups.is_met_by(&claims(json!({"groups": ["a", "mcp-users"]}))));
        assert!(groups.is_met_by(&claims(json!({"groups": "mcp-users"}))));
        assert!(!groups.is_met_by(&claims(json!({"groups": ["mcp-users-old"]}))));
        assert!(!groups.is_met_by(&claims(json!({"groups": {"mcp-users": true}}))));
        assert!(!groups.is_met_by(&claims(json!({}))));
        let staff = RequiredClaim {
            name: "staff".into(),
            value: "true".into(),
        };
        assert!(staff.is_met_by(&claims(json!({"staff": true}))));
        assert!(!staff.is_met_by(&claims(json!({"staff": "yes"}))));
    }
}
