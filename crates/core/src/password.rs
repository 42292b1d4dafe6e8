//! Passwords: the domain's secure policy, generated ones, and values already in a server form.

/// Whether a password value is already in a server form (`D3S:…`, `NUL:…`, another `XYZ:`
/// prefix) and is copied verbatim.
pub(crate) fn is_stored_form(value: &str) -> bool {
    value.len() >= 4
        && value.as_bytes()[3] == b':'
        && value.as_bytes()[..3]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The domain policy for secure passwords (KERIO-FORMAT.md): at least 8 characters, three of
/// lower case, upper case, digits and others, and not containing the username.
pub fn check_password(password: &str, name: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("shorter than 8 characters (the domain requires secure passwords)".into());
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&c| c).count() < 3 {
        return Err(
            "needs three of: lower case, upper case, digits, other characters (the domain requires secure passwords)"
                .into(),
        );
    }
    if password.to_lowercase().contains(&name.to_lowercase()) {
        return Err("contains the username (the domain requires secure passwords)".into());
    }
    Ok(())
}

/// A strong random password that meets the policy for `name`.
pub fn generate_password(name: &str) -> String {
    use rand::seq::IndexedRandom;
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const OTHER: &[u8] = b"-_.+=%#";
    let mut rng = rand::rng();
    loop {
        let all: Vec<u8> = [LOWER, UPPER, DIGIT, OTHER].concat();
        let mut chars: Vec<u8> = (0..16)
            .map(|_| *all.choose(&mut rng).expect("not empty"))
            .collect();
        for (i, class) in [LOWER, UPPER, DIGIT, OTHER].iter().enumerate() {
            chars[i * 4] = *class.choose(&mut rng).expect("not empty");
        }
        let password = String::from_utf8(chars).expect("ASCII");
        if check_password(&password, name).is_ok() {
            return password;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy() {
        assert_eq!(check_password("VbD66op1", "abird"), Ok(()));
        assert!(check_password("short1A", "x").is_err());
        assert!(check_password("alllowercase1", "x").is_err());
        assert!(check_password("Abird1234", "abird").is_err());
        for name in ["abird", "x", "Admin"] {
            let p = generate_password(name);
            assert_eq!(check_password(&p, name), Ok(()), "{p}");
            assert_eq!(p.len(), 16);
        }
        assert!(
            is_stored_form("D3S:00ff") && is_stored_form("NUL:") && !is_stored_form("Secret:1")
        );
    }
}
