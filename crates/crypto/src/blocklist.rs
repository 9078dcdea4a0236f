//! The common-password list: the ~30,000 most used passwords that the
//! zxcvbn crate ships (drawn from leaked password sets), no network involved.

use portcullis_domain::ports::PasswordBlocklist;
use zxcvbn::feedback::Warning;

/// Refuses a password whose whole text, lower-cased and without trailing
/// punctuation, is one entry of zxcvbn's password dictionary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonPasswords;

impl PasswordBlocklist for CommonPasswords {
    fn is_common(&self, password: &str) -> bool {
        let normalised = password.to_lowercase();
        let normalised = normalised.trim_end_matches(|c: char| !c.is_alphanumeric());
        if normalised.is_empty() || normalised.chars().count() > 64 {
            return false;
        }
        // zxcvbn warns "top-10", "top-100" or "a common password" exactly
        // when one match covers the whole text and it comes straight from its
        // password list (not reversed, no l33t substitution). Such a match
        // ranks at most ~30,000 guesses, far below the score that drops the
        // feedback, so the warning is always there to read.
        let estimate = zxcvbn::zxcvbn(normalised, &[]);
        matches!(
            estimate.feedback().and_then(zxcvbn::feedback::Feedback::warning),
            Some(
                Warning::ThisIsATop10Password
                    | Warning::ThisIsATop100Password
                    | Warning::ThisIsACommonPassword
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_suspects_are_common() {
        for common in
            ["Password123!", "password", "Qwerty123!", "Letmein1!", "Welcome1!", "iloveyou", "123456"]
        {
            assert!(CommonPasswords.is_common(common), "{common}");
        }
    }

    #[test]
    fn reversed_l33t_and_composed_passwords_are_not_list_entries() {
        for near in ["drowssap", "p4ssw0rd"] {
            assert!(!CommonPasswords.is_common(near), "{near}");
        }
    }

    #[test]
    fn the_seed_examples_are_not() {
        for fine in [
            "SecurePass123!",
            "TestPass123!",
            "NewSecurePass456!",
            "OldPass123!",
            "NewPass456!",
            "correct horse battery staple",
            "",
            "drowssaP123!",
        ] {
            assert!(!CommonPasswords.is_common(fine), "{fine}");
        }
    }
}
