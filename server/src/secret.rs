//! sha256 and argon2id hashing of secrets: device tokens are kept as their
//! sha256, passwords as argon2id PHC strings.
//!
//! A leaf module used by both `config` (validating and building the site) and
//! `auth` (checking who calls). It only hashes: it never verifies a login,
//! keeps no state and never logs a secret.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use sha2::{Digest, Sha256};

/// The sha256 of `s` in lowercase hex (how `token_sha256` stores a token).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Whether `s` is an argon2id PHC string (what `password_hash` must hold).
pub fn is_argon2id_hash(s: &str) -> bool {
    PasswordHash::new(s)
        .map(|h| h.algorithm.as_str() == "argon2id")
        .unwrap_or(false)
}

/// `hash-password` of both binaries (rule 2): reads one line from stdin
/// (asking for it on a terminal) and returns its argon2id hash; an empty
/// line is refused.
pub fn hash_password_from_stdin() -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty password",
        ));
    }
    Ok(hash_password(pw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_token_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_are_argon2id_and_salted() {
        let a = hash_password("mật khẩu");
        let b = hash_password("mật khẩu");
        assert!(a.starts_with("$argon2id$") && is_argon2id_hash(&a));
        assert_ne!(a, b, "each hash has its own salt");
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"x", &salt)
        .unwrap()
        .to_string();
        assert!(argon2i.starts_with("$argon2i$"));
        assert!(!is_argon2id_hash(&argon2i), "argon2i is not argon2id");
        assert!(!is_argon2id_hash("REPLACE"));
    }
}
