use std::fmt;

use serde::Serialize;

use super::Email;

/// A plain-text password on its way to the hasher, NFKC-normalised, so the
/// same password typed on two keyboards (a precomposed "é" or "e" and a
/// combining accent, a full-width digit) is the same password. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct Password {
    normalised: String,
    /// The password as typed, when normalising changed it: hashes made before
    /// normalisation were made from this form.
    typed: Option<String>,
}

impl Password {
    /// Normalises a password without judging it: login must accept whatever
    /// the user once chose, even under a policy that has since become stricter.
    #[must_use]
    pub fn new(raw: impl Into<String>) -> Self {
        use unicode_normalization::UnicodeNormalization;

        let raw = raw.into();
        let normalised: String = raw.nfkc().collect();
        let typed = (normalised != raw).then_some(raw);
        Self { normalised, typed }
    }

    /// The normalised secret, for the rules and the hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.normalised
    }

    /// The password exactly as typed, when that differs from its normalised
    /// form, to check hashes made before passwords were normalised.
    #[must_use]
    pub fn as_typed(&self) -> Option<Self> {
        self.typed.clone().map(|typed| Self { normalised: typed, typed: None })
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A stored password hash (a PHC string). Opaque to the domain; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    #[must_use]
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// One rule a new password failed; `code` and `message` go to the client as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordRule {
    TooShort,
    TooLong,
    MissingUppercase,
    MissingLowercase,
    MissingDigit,
    MissingSpecial,
    /// Contains the local part of the account's email (5 characters or more).
    ContainsEmail,
    /// One of the most common passwords.
    TooCommon,
}

impl PasswordRule {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "password_too_short",
            Self::TooLong => "password_too_long",
            Self::MissingUppercase => "password_missing_uppercase",
            Self::MissingLowercase => "password_missing_lowercase",
            Self::MissingDigit => "password_missing_digit",
            Self::MissingSpecial => "password_missing_special",
            Self::ContainsEmail => "password_contains_email",
            Self::TooCommon => "password_too_common",
        }
    }

    #[must_use]
    pub fn message(self, policy: &PasswordPolicy) -> String {
        match self {
            Self::TooShort => format!("must be at least {} characters long", policy.min_length),
            Self::TooLong => format!("must be at most {} characters long", policy.max_length),
            Self::MissingUppercase => "must contain an upper-case letter".to_owned(),
            Self::MissingLowercase => "must contain a lower-case letter".to_owned(),
            Self::MissingDigit => "must contain a digit".to_owned(),
            Self::MissingSpecial => "must contain a special character such as !@#$%^&*".to_owned(),
            Self::TooCommon => "is one of the most commonly used passwords".to_owned(),
            Self::ContainsEmail => format!(
                "must not contain the name part of your email address ({} characters or more)",
                policy.email_local_part_min.unwrap_or(0)
            ),
        }
    }
}

/// Which family of rules is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRules {
    /// The seed's: 8+ characters with upper, lower, digit and special.
    Composition,
    /// NIST SP 800-63B rev. 4: 15+ characters, no composition rules.
    Nist,
}

impl PasswordRules {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Composition => "composition",
            Self::Nist => "nist",
        }
    }
}

/// The rules a new password must meet. Length counts characters, not bytes, so
/// a passphrase in any script is measured the way its owner counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub rules: PasswordRules,
    pub min_length: usize,
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_special: bool,
    /// Refuse passwords containing the email's local part when it has at least
    /// this many characters (`None`: no such rule).
    pub email_local_part_min: Option<usize>,
    /// Refuse passwords on the list of the most common ones.
    pub reject_common: bool,
}

impl Default for PasswordPolicy {
    /// The seed's composition rules: 8 to 128 characters, upper, lower, digit, special.
    fn default() -> Self {
        Self {
            rules: PasswordRules::Composition,
            min_length: 8,
            max_length: 128,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_special: true,
            email_local_part_min: Some(5),
            reject_common: true,
        }
    }
}

impl PasswordPolicy {
    /// NIST SP 800-63B rev. 4: at least 15 characters, no composition rules.
    #[must_use]
    pub fn nist() -> Self {
        Self {
            rules: PasswordRules::Nist,
            min_length: 15,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_special: false,
            ..Self::default()
        }
    }

    /// Every rule in force, in the order failures are reported.
    #[must_use]
    pub fn rules_in_force(&self) -> Vec<PasswordRule> {
        let mut rules = vec![PasswordRule::TooShort, PasswordRule::TooLong];
        let optional = [
            (self.require_uppercase, PasswordRule::MissingUppercase),
            (self.require_lowercase, PasswordRule::MissingLowercase),
            (self.require_digit, PasswordRule::MissingDigit),
            (self.require_special, PasswordRule::MissingSpecial),
            (self.email_local_part_min.is_some(), PasswordRule::ContainsEmail),
            (self.reject_common, PasswordRule::TooCommon),
        ];
        rules.extend(optional.into_iter().filter(|(on, _)| *on).map(|(_, rule)| rule));
        rules
    }

    /// Checks a new password against every rule and reports all the failures at
    /// once, so a user fixes their password in one round trip.
    ///
    /// # Errors
    /// The list of failed rules, in a stable order.
    pub fn check(&self, candidate: &str, email: Option<&Email>) -> Result<Password, Vec<PasswordRule>> {
        let length = candidate.chars().count();
        let mut failed = Vec::new();
        if length < self.min_length {
            failed.push(PasswordRule::TooShort);
        }
        if length > self.max_length {
            failed.push(PasswordRule::TooLong);
        }
        if self.require_uppercase && !candidate.chars().any(char::is_uppercase) {
            failed.push(PasswordRule::MissingUppercase);
        }
        if self.require_lowercase && !candidate.chars().any(char::is_lowercase) {
            failed.push(PasswordRule::MissingLowercase);
        }
        if self.require_digit && !candidate.chars().any(|c| c.is_ascii_digit()) {
            failed.push(PasswordRule::MissingDigit);
        }
        if self.require_special && !candidate.chars().any(is_special) {
            failed.push(PasswordRule::MissingSpecial);
        }
        if let (Some(min), Some(email)) = (self.email_local_part_min, email) {
            let local = email.local_part();
            if local.chars().count() >= min && candidate.to_lowercase().contains(local) {
                failed.push(PasswordRule::ContainsEmail);
            }
        }
        if failed.is_empty() { Ok(Password::new(candidate)) } else { Err(failed) }
    }
}

/// `!@#$%^&*` and any other punctuation or symbol; letters, digits and spaces are not special.
fn is_special(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_passwords_pass_the_default_policy() {
        let policy = PasswordPolicy::default();
        for ok in ["SecurePass123!", "TestPass123!", "NewSecurePass456!", "NewPass456!", "OldPass123!"] {
            assert!(policy.check(ok, None).is_ok(), "{ok} should pass");
        }
    }

    #[test]
    fn every_failed_rule_is_reported() {
        let failed = PasswordPolicy::default().check("", None).unwrap_err();
        assert_eq!(
            failed,
            vec![
                PasswordRule::TooShort,
                PasswordRule::MissingUppercase,
                PasswordRule::MissingLowercase,
                PasswordRule::MissingDigit,
                PasswordRule::MissingSpecial,
            ]
        );
    }

    #[test]
    fn each_rule_alone() {
        let policy = PasswordPolicy::default();
        let cases = [
            ("Sh0rt!", PasswordRule::TooShort),
            ("securepass123!", PasswordRule::MissingUppercase),
            ("SECUREPASS123!", PasswordRule::MissingLowercase),
            ("SecurePass!!!", PasswordRule::MissingDigit),
            ("SecurePass123", PasswordRule::MissingSpecial),
        ];
        for (password, rule) in cases {
            assert_eq!(policy.check(password, None).unwrap_err(), vec![rule], "{password}");
        }
        let long = format!("Aa1!{}", "x".repeat(125));
        assert_eq!(policy.check(&long, None).unwrap_err(), vec![PasswordRule::TooLong]);
    }

    #[test]
    fn other_punctuation_counts_as_special() {
        assert!(PasswordPolicy::default().check("SecurePass123-", None).is_ok());
        assert!(PasswordPolicy::default().check("SecurePass123€", None).is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 8 characters, 11 bytes.
        assert!(PasswordPolicy::default().check("Ééééa1!x", None).is_ok());
    }

    #[test]
    fn the_email_local_part_is_refused_from_five_characters() {
        let policy = PasswordPolicy::default();
        let johnny = Email::parse("johnny@example.com").unwrap();
        assert_eq!(
            policy.check("Johnny2024!x", Some(&johnny)).unwrap_err(),
            vec![PasswordRule::ContainsEmail]
        );
        let user = Email::parse("user@example.com").unwrap();
        assert!(
            policy.check("SecurePass123!user", Some(&user)).is_ok(),
            "a 4-character local part is not checked"
        );
    }

    #[test]
    fn nist_mode_wants_length_not_classes() {
        let nist = PasswordPolicy::nist();
        assert!(nist.check("correct horse battery staple", None).is_ok());
        assert_eq!(nist.check("Sh0rt!Pass", None).unwrap_err(), vec![PasswordRule::TooShort]);
        assert_eq!(
            nist.rules_in_force(),
            vec![
                PasswordRule::TooShort,
                PasswordRule::TooLong,
                PasswordRule::ContainsEmail,
                PasswordRule::TooCommon
            ]
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", Password::new("SecurePass123!"));
        assert!(!shown.contains("Secure"));
    }
}
