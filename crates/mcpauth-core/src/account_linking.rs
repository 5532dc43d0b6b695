//! The linking decision (SECURITY S29): which user a sign-in through an identity provider
//! becomes, or why it is refused — as one pure function, [`decide`], of what the flow knows.
//! The flow (`mcpauth::identity_provider`) only fetches the facts, calls [`decide`], carries
//! out the [`Decision`] (store, audit, session) and turns a [`Refusal`] into a page.
//!
//! The rules, in the order they apply:
//! 1. The provider's required claim, then the email allow-lists, on every sign-in and every
//!    link (not only the first); only an address that counts as verified passes a list.
//! 2. Linking from the account page: the browser must still be signed in as the user who
//!    started it; the provider's identity is then linked to that user whatever its address
//!    says, unless it already signs in to someone else or the user has another identity of
//!    this provider.
//! 3. An identity already linked signs in as its user — unless that user is disabled.
//! 4. Otherwise by address: no address, no account; an address that belongs to a user is
//!    joined only when **both** sides assert it is verified (never an unverified address
//!    taking over an account), and never to a disabled user; a new address makes a new user.

use crate::account_fields::Email;
use crate::identity_provider::ProviderIdentity;
use crate::model::User;
use crate::sign_in_policy::{EmailAllowList, RequiredClaim};

/// The operator's settings for the provider signed in with.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderRules<'a> {
    /// Treat the provider's addresses as verified even when it does not say so.
    pub trust_email: bool,
    /// A claim every identity from this provider must carry.
    pub required_claim: Option<&'a RequiredClaim>,
}

/// A user the decision may pick, with what it needs to know about their sign-in methods.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The user as stored.
    pub user: &'a User,
    /// Whether an identity of this provider (any subject) is already linked to the user.
    pub has_this_provider: bool,
}

/// A link started from the account page.
#[derive(Debug, Clone, Copy)]
pub enum Linking<'a> {
    /// This browser is still signed in as the user who started the link.
    SignedIn(Candidate<'a>),
    /// It is not (signed out, or signed in as someone else since).
    NotSignedIn,
}

/// What is known when the provider's answer comes back.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Who the provider says signed in (already verified by the provider's protocol).
    pub identity: &'a ProviderIdentity,
    /// The operator's settings for this provider.
    pub rules: ProviderRules<'a>,
    /// `allowed_email_domains` / `allowed_emails`.
    pub allow_list: &'a EmailAllowList,
    /// The user this (provider, subject) is already linked to, if any.
    pub linked: Option<&'a User>,
    /// The user whose address is the identity's [`address`], if any. Only read when no user
    /// is linked and no link from the account page is in progress: the flow need not fetch
    /// it otherwise.
    pub with_email: Option<Candidate<'a>>,
    /// Set when a signed-in user links this provider from the account page.
    pub linking: Option<Linking<'a>>,
}

/// What the sign-in becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Sign in as this user (the identity is linked to them).
    SignIn(&'a User),
    /// Create a user with this address (verified when the provider's word counts), linked to
    /// the identity, and sign in as them.
    CreateUser {
        /// The identity's address.
        email: Email,
        /// Whether the provider's word that it is verified counts.
        email_verified: bool,
    },
    /// Link the identity to this user (both sides assert the address is verified), then sign
    /// in as them.
    LinkThenSignIn(&'a User),
    /// Link the identity to the signed-in user who asked for it from the account page
    /// (`already_linked`: it is theirs already, nothing to store). No new session.
    LinkToSignedInUser {
        /// The signed-in user.
        user: &'a User,
        /// The identity is linked to them already.
        already_linked: bool,
    },
}

/// Why a sign-in through a provider is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The identity lacks the provider's required claim.
    RequiredClaimMissing,
    /// The address is not on the allow-lists, or does not count as verified.
    EmailNotAllowed,
    /// A new user would be needed, and the provider shared no usable address.
    NoEmail,
    /// The user it would sign in as (or be linked to) is disabled.
    Disabled,
    /// The address belongs to a user and is not verified on both sides: joining them would let
    /// whoever controls the address at the provider take over the account.
    EmailInUse,
    /// The link was started by a user this browser is no longer signed in as.
    NoLongerSignedIn,
    /// The identity already signs in to another user.
    LinkedElsewhere,
    /// The signed-in user has another identity of this provider linked.
    AlreadyLinked,
}

impl Refusal {
    /// The reason recorded with `upstream_sign_in.refused` in the audit log (operator-visible
    /// data: do not rename).
    pub fn reason(self) -> &'static str {
        match self {
            Self::RequiredClaimMissing => "required_claim",
            Self::EmailNotAllowed => "email_not_allowed",
            Self::NoEmail => "no_email",
            Self::Disabled => "disabled",
            Self::EmailInUse => "email_in_use",
            Self::NoLongerSignedIn => "state",
            Self::LinkedElsewhere => "linked_elsewhere",
            Self::AlreadyLinked => "already_linked",
        }
    }
}

/// The identity's address, if it shared a usable one (verified or not): the address the flow
/// looks a user up by for [`Facts::with_email`].
pub fn address(identity: &ProviderIdentity) -> Option<Email> {
    identity.email.as_deref().and_then(|e| Email::parse(e).ok())
}

/// The decision (see the module's rules). Pure: the same facts always give the same answer.
pub fn decide<'a>(facts: &Facts<'a>) -> Result<Decision<'a>, Refusal> {
    let identity = facts.identity;
    if let Some(required) = facts.rules.required_claim
        && !required.is_met_by(&identity.claims)
    {
        return Err(Refusal::RequiredClaimMissing);
    }
    let verified = identity.email_verified || facts.rules.trust_email;
    let email = address(identity);
    if !facts.allow_list.is_open()
        && !matches!(&email, Some(address) if verified && facts.allow_list.allows(address))
    {
        return Err(Refusal::EmailNotAllowed);
    }

    if let Some(linking) = facts.linking {
        let Linking::SignedIn(me) = linking else {
            return Err(Refusal::NoLongerSignedIn);
        };
        return match facts.linked {
            Some(owner) if owner.id == me.user.id => Ok(Decision::LinkToSignedInUser {
                user: me.user,
                already_linked: true,
            }),
            Some(_) => Err(Refusal::LinkedElsewhere),
            None if me.has_this_provider => Err(Refusal::AlreadyLinked),
            None => Ok(Decision::LinkToSignedInUser {
                user: me.user,
                already_linked: false,
            }),
        };
    }

    if let Some(user) = facts.linked {
        return if user.disabled {
            Err(Refusal::Disabled)
        } else {
            Ok(Decision::SignIn(user))
        };
    }
    let Some(email) = email else {
        return Err(Refusal::NoEmail);
    };
    match facts.with_email {
        // Linked or not, a disabled user stays out: link nothing to them either.
        Some(existing) if existing.user.disabled => Err(Refusal::Disabled),
        Some(existing)
            if verified && existing.user.email_verified && !existing.has_this_provider =>
        {
            Ok(Decision::LinkThenSignIn(existing.user))
        }
        Some(_) => Err(Refusal::EmailInUse),
        None => Ok(Decision::CreateUser {
            email,
            email_verified: verified,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn user(id: &str, email_verified: bool, disabled: bool) -> User {
        User {
            id: id.into(),
            name: id.into(),
            email: "ada@example.com".into(),
            email_verified,
            image: None,
            created_at: 0,
            updated_at: 0,
            disabled,
        }
    }

    fn identity(email: Option<&str>, email_verified: bool) -> ProviderIdentity {
        ProviderIdentity {
            subject: "sub-1".into(),
            email: email.map(str::to_owned),
            email_verified,
            ..ProviderIdentity::default()
        }
    }

    fn facts<'a>(identity: &'a ProviderIdentity, open: &'a EmailAllowList) -> Facts<'a> {
        Facts {
            identity,
            rules: ProviderRules::default(),
            allow_list: open,
            linked: None,
            with_email: None,
            linking: None,
        }
    }

    #[test]
    fn s29_linked_identity_signs_in_and_new_address_creates_a_user() {
        let open = EmailAllowList::default();
        let ada = user("ada", true, false);
        let id = identity(Some("Ada@Example.com"), false);
        let linked = Facts {
            linked: Some(&ada),
            ..facts(&id, &open)
        };
        assert_eq!(decide(&linked), Ok(Decision::SignIn(&ada)));
        assert_eq!(
            decide(&facts(&id, &open)),
            Ok(Decision::CreateUser {
                email: Email::parse("ada@example.com").unwrap(),
                email_verified: false,
            })
        );
        let trusted = Facts {
            rules: ProviderRules {
                trust_email: true,
                required_claim: None,
            },
            ..facts(&id, &open)
        };
        assert!(matches!(
            decide(&trusted),
            Ok(Decision::CreateUser {
                email_verified: true,
                ..
            })
        ));
        let none = identity(None, true);
        assert_eq!(decide(&facts(&none, &open)), Err(Refusal::NoEmail));
    }

    #[test]
    fn s29_an_existing_address_is_joined_only_when_verified_on_both_sides() {
        let open = EmailAllowList::default();
        let verified_ada = user("ada", true, false);
        let unverified_ada = user("ada", false, false);
        let with = |user, has_this_provider| Candidate {
            user,
            has_this_provider,
        };
        let asserted = identity(Some("ada@example.com"), true);
        let unasserted = identity(Some("ada@example.com"), false);
        let case = |id, candidate| {
            decide(&Facts {
                with_email: Some(candidate),
                ..facts(id, &open)
            })
        };
        assert_eq!(
            case(&asserted, with(&verified_ada, false)),
            Ok(Decision::LinkThenSignIn(&verified_ada))
        );
        assert_eq!(
            case(&unasserted, with(&verified_ada, false)),
            Err(Refusal::EmailInUse)
        );
        assert_eq!(
            case(&asserted, with(&unverified_ada, false)),
            Err(Refusal::EmailInUse)
        );
        assert_eq!(
            case(&asserted, with(&verified_ada, true)),
            Err(Refusal::EmailInUse)
        );
        let disabled = user("ada", true, true);
        assert_eq!(
            case(&asserted, with(&disabled, false)),
            Err(Refusal::Disabled)
        );
    }

    #[test]
    fn s29_linking_from_the_account_page() {
        let open = EmailAllowList::default();
        let me = user("me", false, false);
        let other = user("other", true, false);
        let id = identity(None, false);
        let linking = |linked, has_this_provider| {
            decide(&Facts {
                linked,
                linking: Some(Linking::SignedIn(Candidate {
                    user: &me,
                    has_this_provider,
                })),
                ..facts(&id, &open)
            })
        };
        assert_eq!(
            linking(None, false),
            Ok(Decision::LinkToSignedInUser {
                user: &me,
                already_linked: false
            })
        );
        assert_eq!(
            linking(Some(&me), true),
            Ok(Decision::LinkToSignedInUser {
                user: &me,
                already_linked: true
            })
        );
        assert_eq!(linking(Some(&other), false), Err(Refusal::LinkedElsewhere));
        assert_eq!(linking(None, true), Err(Refusal::AlreadyLinked));
        let gone = Facts {
            linking: Some(Linking::NotSignedIn),
            ..facts(&id, &open)
        };
        assert_eq!(decide(&gone), Err(Refusal::NoLongerSignedIn));
    }

    #[test]
    fn s29_lists_and_required_claim_apply_to_every_sign_in() {
        let list = EmailAllowList::new(&["example.com".into()], &[]);
        let ada = user("ada", true, false);
        let unverified = identity(Some("ada@example.com"), false);
        let linked = Facts {
            linked: Some(&ada),
            ..facts(&unverified, &list)
        };
        assert_eq!(decide(&linked), Err(Refusal::EmailNotAllowed));
        let foreign = identity(Some("ada@evil.test"), true);
        assert_eq!(
            decide(&facts(&foreign, &list)),
            Err(Refusal::EmailNotAllowed)
        );
        let groups = RequiredClaim {
            name: "groups".into(),
            value: "staff".into(),
        };
        let outsider = identity(Some("ada@example.com"), true);
        let member = ProviderIdentity {
            claims: json!({"groups": ["staff"]}).as_object().cloned().unwrap(),
            ..outsider.clone()
        };
        let rules = ProviderRules {
            trust_email: false,
            required_claim: Some(&groups),
        };
        let case = |id| {
            decide(&Facts {
                rules,
                linked: Some(&ada),
                ..facts(id, &list)
            })
        };
        assert_eq!(case(&outsider), Err(Refusal::RequiredClaimMissing));
        assert_eq!(case(&member), Ok(Decision::SignIn(&ada)));
    }

    #[test]
    fn audit_reasons_stay_as_operators_know_them() {
        let reasons: Vec<_> = [
            Refusal::RequiredClaimMissing,
            Refusal::EmailNotAllowed,
            Refusal::NoEmail,
            Refusal::Disabled,
            Refusal::EmailInUse,
            Refusal::NoLongerSignedIn,
            Refusal::LinkedElsewhere,
            Refusal::AlreadyLinked,
        ]
        .into_iter()
        .map(Refusal::reason)
        .collect();
        assert_eq!(
            reasons,
            [
                "required_claim",
                "email_not_allowed",
                "no_email",
                "disabled",
                "email_in_use",
                "state",
                "linked_elsewhere",
                "already_linked"
            ]
        );
    }

    fn any_user(id: &'static str) -> impl Strategy<Value = User> {
        (any::<bool>(), any::<bool>())
            .prop_map(move |(verified, disabled)| user(id, verified, disabled))
    }

    /// Every combination of facts the flow could gather.
    #[derive(Debug, Clone)]
    struct Case {
        identity: ProviderIdentity,
        trust_email: bool,
        claim_required: bool,
        list: EmailAllowList,
        linked: Option<User>,
        with_email: Option<(User, bool)>,
        linking: Option<Option<(User, bool)>>,
    }

    fn any_case() -> impl Strategy<Value = Case> {
        let email = prop_oneof![
            Just(None),
            Just(Some("ada@example.com".to_owned())),
            Just(Some("bob@other.test".to_owned())),
            Just(Some("not an address".to_owned())),
        ];
        let identity =
            (email, any::<bool>(), any::<bool>()).prop_map(|(email, verified, staff)| {
                ProviderIdentity {
                    subject: "sub".into(),
                    email,
                    email_verified: verified,
                    claims: if staff {
                        json!({"groups": ["staff"]})
                            .as_object()
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        serde_json::Map::new()
                    },
                    ..ProviderIdentity::default()
                }
            });
        let list = prop_oneof![
            Just(EmailAllowList::default()),
            Just(EmailAllowList::new(&["example.com".into()], &[])),
        ];
        let candidate = |id| proptest::option::of((any_user(id), any::<bool>()));
        (
            identity,
            any::<bool>(),
            any::<bool>(),
            list,
            proptest::option::of(prop_oneof![any_user("linked"), any_user("me")]),
            candidate("by-email"),
            proptest::option::of(candidate("me")),
        )
            .prop_map(
                |(identity, trust_email, claim_required, list, linked, with_email, linking)| Case {
                    identity,
                    trust_email,
                    claim_required,
                    list,
                    linked,
                    with_email,
                    linking,
                },
            )
    }

    fn decide_case(case: &Case) -> Result<Decision<'_>, Refusal> {
        static GROUPS: std::sync::LazyLock<RequiredClaim> =
            std::sync::LazyLock::new(|| RequiredClaim {
                name: "groups".into(),
                value: "staff".into(),
            });
        fn candidate((user, has_this_provider): &(User, bool)) -> Candidate<'_> {
            Candidate {
                user,
                has_this_provider: *has_this_provider,
            }
        }
        decide(&Facts {
            identity: &case.identity,
            rules: ProviderRules {
                trust_email: case.trust_email,
                required_claim: case.claim_required.then_some(&*GROUPS),
            },
            allow_list: &case.list,
            linked: case.linked.as_ref(),
            with_email: case.with_email.as_ref().map(candidate),
            linking: case.linking.as_ref().map(|signed_in| match signed_in {
                Some(me) => Linking::SignedIn(candidate(me)),
                None => Linking::NotSignedIn,
            }),
        })
    }

    proptest! {
        #[test]
        fn s29_an_unverified_address_never_joins_an_existing_account(case in any_case()) {
            if let Ok(Decision::LinkThenSignIn(user)) = decide_case(&case) {
                let (existing, has_this_provider) = case.with_email.clone().unwrap();
                prop_assert_eq!(&user.id, &existing.id);
                prop_assert!(case.identity.email_verified || case.trust_email);
                prop_assert!(existing.email_verified);
                prop_assert!(!has_this_provider);
                prop_assert!(case.linked.is_none() && case.linking.is_none());
            }
        }

        #[test]
        fn s29_a_disabled_user_never_gets_a_session(case in any_case()) {
            match decide_case(&case) {
                Ok(Decision::SignIn(user) | Decision::LinkThenSignIn(user)) => {
                    prop_assert!(!user.disabled);
                }
                Ok(Decision::CreateUser { .. }) => {
                    prop_assert!(case.with_email.is_none() && case.linked.is_none());
                }
                _ => {}
            }
        }

        #[test]
        fn s29_lists_and_claim_hold_for_every_outcome(case in any_case()) {
            if decide_case(&case).is_ok() {
                if case.claim_required {
                    prop_assert!(case.identity.claims.contains_key("groups"));
                }
                if !case.list.is_open() {
                    let email = address(&case.identity);
                    prop_assert!(case.identity.email_verified || case.trust_email);
                    prop_assert!(email.is_some_and(|e| case.list.allows(&e)));
                }
            }
        }

        #[test]
        fn s29_an_account_page_link_only_ever_links_the_signed_in_user(case in any_case()) {
            match decide_case(&case) {
                Ok(Decision::LinkToSignedInUser { user, already_linked }) => {
                    let Some(Some((me, has_this_provider))) = &case.linking else {
                        return Err(TestCaseError::fail("linked without a signed-in user"));
                    };
                    prop_assert_eq!(&user.id, &me.id);
                    match &case.linked {
                        Some(owner) => prop_assert!(already_linked && owner.id == me.id),
                        None => prop_assert!(!already_linked && !has_this_provider),
                    }
                }
                Ok(_) => prop_assert!(case.linking.is_none()),
                Err(_) => {}
            }
        }
    }
}
