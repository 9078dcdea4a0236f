//! The common-password list: the ~30,000 most used passwords that the
//! zxcvbn crate ships (drawn from leaked password sets), no network involved.

use portcullis_domain::ports::PasswordBlocklist;
use zxcvbn::matching::patterns::MatchPattern;

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
        let estimate = zxcvbn::zxcvbn(normalised, &[]);
        match estimate.sequence() {
            // One match covering the whole text, straight from the password
            // list (not reversed, no l33t substitution). zxcvbn does not export
            // its dictionary type, so its name is compared; tests pin it.
            [single] => matches!(&single.pattern, MatchPattern::Dictionary(d)
                if !d.reversed && !d.l33t && format!("{:?}", d.dictionary_name) == "Passwords"),
            _ => false,
        }
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
