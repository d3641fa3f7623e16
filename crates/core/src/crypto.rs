//! Secrets at rest: AES-256-GCM sealing of Exact tokens, SHA-256 hashes of
//! credentials we only need to recognise, and credential generation.
//!
//! Sealed format: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The
//! key id names the key in the [`TokenKeyring`], so keys can rotate: new
//! values are sealed with the current key, old ones still open with the key
//! they name. The associated data is the [`SealBinding`] (table, row id,
//! column), so a ciphertext copied to another row or column fails to open.
//! There is no plaintext fallback: anything that is not a valid `v1` value
//! is an error.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::ports::{Randomness, RandomnessUnavailable};

const FORMAT: &str = "v1";
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// A secret value whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it must leave the process
    /// (an Exact request, a one-time display).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Failures of sealing and opening. None of them carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed value is not in the v1 format")]
    Malformed,
    #[error("sealed value names key {0}, which is not configured")]
    UnknownKey(u32),
    #[error("sealed value failed authentication (wrong key, row or tampering)")]
    Authentication,
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
}

/// A misconfigured `TOKEN_ENCRYPTION_KEY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    #[error("TOKEN_ENCRYPTION_KEY is empty")]
    Empty,
    #[error("key entry {0}: expected `<id>:<64 hex chars>` or 64 hex chars")]
    BadEntry(usize),
    #[error("key id {0} appears twice")]
    DuplicateId(u32),
}

/// What a sealed value is bound to; used as AES-GCM associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealBinding(String);

impl SealBinding {
    /// Binds a value to one column of one row.
    pub fn new(table: &str, row_id: &str, column: &str) -> Self {
        SealBinding(format!("{table}/{row_id}/{column}"))
    }
}

#[derive(Clone)]
struct TokenKey {
    id: u32,
    cipher: Aes256Gcm,
}

/// The configured encryption keys: the first seals, all open.
#[derive(Clone)]
pub struct TokenKeyring {
    keys: Vec<TokenKey>,
}

impl fmt::Debug for TokenKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        f.debug_struct("TokenKeyring")
            .field("key_ids", &ids)
            .finish()
    }
}

impl TokenKeyring {
    /// Parses `TOKEN_ENCRYPTION_KEY`: comma-separated `<id>:<64 hex>`
    /// entries, current key first; a bare 64-hex value is key id 1.
    pub fn from_config(config: &str) -> Result<Self, KeyConfigError> {
        let entries: Vec<&str> = config
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(KeyConfigError::Empty);
        }
        let mut keys: Vec<TokenKey> = Vec::with_capacity(entries.len());
        for (n, entry) in entries.iter().enumerate() {
            let (id, hex_key) = match entry.split_once(':') {
                Some((id, key)) => (
                    id.parse::<u32>().map_err(|_| KeyConfigError::BadEntry(n))?,
                    key,
                ),
                None => (1, *entry),
            };
            let raw = hex::decode(hex_key).map_err(|_| KeyConfigError::BadEntry(n))?;
            if raw.len() != KEY_LEN {
                return Err(KeyConfigError::BadEntry(n));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyConfigError::DuplicateId(id));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&raw).map_err(|_| KeyConfigError::BadEntry(n))?;
            keys.push(TokenKey { id, cipher });
        }
        Ok(TokenKeyring { keys })
    }

    fn current(&self) -> &TokenKey {
        // `from_config` guarantees at least one key.
        &self.keys[0]
    }

    pub fn current_key_id(&self) -> u32 {
        self.current().id
    }

    /// Whether older keys are configured beside the current one (a key
    /// rotation in progress: rows sealed with them should be resealed).
    pub fn has_retired_keys(&self) -> bool {
        self.keys.len() > 1
    }

    /// Seals `plaintext` for the row and column named by `binding`.
    pub fn seal(
        &self,
        rng: &impl Randomness,
        plaintext: &Secret,
        binding: &SealBinding,
    ) -> Result<String, CryptoError> {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose().as_bytes(),
                    aad: binding.0.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!(
            "{FORMAT}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Opens a value sealed by [`TokenKeyring::seal`] for the same binding.
    pub fn open(&self, sealed: &str, binding: &SealBinding) -> Result<Secret, CryptoError> {
        let (id, blob) = parse_sealed(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: binding.0.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plain)
            .map(Secret)
            .map_err(|_| CryptoError::Malformed)
    }

    /// Whether a sealed value should be re-sealed with the current key.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        parse_sealed(sealed).is_ok_and(|(id, _)| id != self.current().id)
    }
}

fn parse_sealed(sealed: &str) -> Result<(u32, Vec<u8>), CryptoError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(FORMAT), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CryptoError::Malformed);
    };
    let id = id.parse::<u32>().map_err(|_| CryptoError::Malformed)?;
    let blob = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| CryptoError::Malformed)?;
    // Nonce plus at least the 16-byte tag.
    if blob.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed);
    }
    Ok((id, blob))
}

/// Hex SHA-256 of a credential. Credentials are ≥ 192 random bits, so an
/// unsalted fast hash is enough: nothing can be brute-forced from it, and
/// lookups by hash stay a single indexed query.
pub fn hash_credential(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

/// The kinds of credential the product issues, each with a recognisable
/// prefix (so leaked ones can be found by secret scanners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Session,
    OAuthAccessToken,
    OAuthRefreshToken,
    OAuthCode,
}

impl CredentialKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "pmjb_",
            CredentialKind::Session => "pmjb_s_",
            CredentialKind::OAuthAccessToken => "pmjb_at_",
            CredentialKind::OAuthRefreshToken => "pmjb_rt_",
            CredentialKind::OAuthCode => "pmjb_c_",
        }
    }
}

/// Random bytes in every credential: 256 bits.
pub const CREDENTIAL_BYTES: usize = 32;
const CREDENTIAL_HEX: usize = CREDENTIAL_BYTES * 2;
/// Characters of an API key kept for display ("pmjb_3fa9c01…").
pub const API_KEY_DISPLAY_LEN: usize = 12;

/// A freshly issued credential: show `secret` once, store only `hash`.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    pub secret: Secret,
    pub hash: String,
    /// Recognisable start for listings; never enough to guess the rest.
    pub display_prefix: String,
}

pub fn issue_credential(
    rng: &impl Randomness,
    kind: CredentialKind,
) -> Result<IssuedCredential, RandomnessUnavailable> {
    let mut raw = [0u8; CREDENTIAL_BYTES];
    rng.fill(&mut raw)?;
    let secret = format!("{}{}", kind.prefix(), hex::encode(raw));
    Ok(IssuedCredential {
        hash: hash_credential(&secret),
        display_prefix: secret.chars().take(API_KEY_DISPLAY_LEN).collect(),
        secret: Secret(secret),
    })
}

/// Checks the shape of a presented credential before any database lookup,
/// so garbage never costs a query.
pub fn is_well_formed(kind: CredentialKind, presented: &str) -> bool {
    presented.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == CREDENTIAL_HEX && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NoRandomness, SeededRandomness};
    use proptest::prelude::*;

    const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    fn binding(row: &str) -> SealBinding {
        SealBinding::new("connections", row, "refresh_token")
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let ring = TokenKeyring::from_config(KEY_A).unwrap();
        let rng = SeededRandomness::new(7);
        let secret = Secret::new("exact-refresh-token-123");
        let sealed = ring.seal(&rng, &secret, &binding("c1")).unwrap();
        assert!(sealed.starts_with("v1.1."));
        assert!(!sealed.contains("exact-refresh"));
        assert_eq!(ring.open(&sealed, &binding("c1")).unwrap(), secret);
    }

    #[test]
    fn nonces_differ_so_equal_tokens_seal_differently() {
        let ring = TokenKeyring::from_config(KEY_A).unwrap();
        let rng = SeededRandomness::new(1);
        let s = Secret::new("same");
        let a = ring.seal(&rng, &s, &binding("c1")).unwrap();
        let b = ring.seal(&rng, &s, &binding("c1")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_sealed_token_copied_to_another_row_or_column_fails_to_open() {
        let ring = TokenKeyring::from_config(KEY_A).unwrap();
        let sealed = ring
            .seal(&SeededRandomness::new(2), &Secret::new("t"), &binding("c1"))
            .unwrap();
        assert_eq!(
            ring.open(&sealed, &binding("c2")),
            Err(CryptoError::Authentication)
        );
        let other_column = SealBinding::new("connections", "c1", "access_token");
        assert_eq!(
            ring.open(&sealed, &other_column),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn no_plaintext_fallback() {
        let ring = TokenKeyring::from_config(KEY_A).unwrap();
        for stored in [
            "plain-refresh-token",
            "",
            "v1.1.",
            "v2.1.AAAA",
            "v1.x.AAAA",
            "v1.1.!!!",
        ] {
            assert_eq!(
                ring.open(stored, &binding("c1")),
                Err(CryptoError::Malformed),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn keys_rotate_old_values_still_open_and_are_flagged_for_reseal() {
        let old = TokenKeyring::from_config(&format!("1:{KEY_A}")).unwrap();
        let sealed = old
            .seal(&SeededRandomness::new(3), &Secret::new("t"), &binding("c1"))
            .unwrap();
        let rotated = TokenKeyring::from_config(&format!("2:{KEY_B}, 1:{KEY_A}")).unwrap();
        assert_eq!(rotated.current_key_id(), 2);
        assert_eq!(rotated.open(&sealed, &binding("c1")).unwrap().expose(), "t");
        assert!(rotated.needs_reseal(&sealed));
        let only_new = TokenKeyring::from_config(&format!("2:{KEY_B}")).unwrap();
        assert_eq!(
            only_new.open(&sealed, &binding("c1")),
            Err(CryptoError::UnknownKey(1))
        );
    }

    #[test]
    fn a_wrong_key_with_the_same_id_fails_authentication() {
        let a = TokenKeyring::from_config(KEY_A).unwrap();
        let b = TokenKeyring::from_config(KEY_B).unwrap();
        let sealed = a
            .seal(&SeededRandomness::new(4), &Secret::new("t"), &binding("c1"))
            .unwrap();
        assert_eq!(
            b.open(&sealed, &binding("c1")),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn bad_key_configuration_is_rejected() {
        assert_eq!(
            TokenKeyring::from_config(" ").unwrap_err(),
            KeyConfigError::Empty
        );
        assert_eq!(
            TokenKeyring::from_config("abcd").unwrap_err(),
            KeyConfigError::BadEntry(0)
        );
        assert_eq!(
            TokenKeyring::from_config(&format!("{KEY_A},x:{KEY_B}")).unwrap_err(),
            KeyConfigError::BadEntry(1)
        );
        assert_eq!(
            TokenKeyring::from_config(&format!("3:{KEY_A},3:{KEY_B}")).unwrap_err(),
            KeyConfigError::DuplicateId(3)
        );
    }

    #[test]
    fn sealing_without_randomness_fails_instead_of_reusing_a_nonce() {
        let ring = TokenKeyring::from_config(KEY_A).unwrap();
        assert_eq!(
            ring.seal(&NoRandomness, &Secret::new("t"), &binding("c1")),
            Err(CryptoError::Randomness(RandomnessUnavailable))
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let issued = issue_credential(&SeededRandomness::new(5), CredentialKind::ApiKey).unwrap();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(issued.secret.expose()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn api_keys_are_recognisable_long_and_stored_only_as_hash_and_prefix() {
        let issued = issue_credential(&SeededRandomness::new(6), CredentialKind::ApiKey).unwrap();
        let key = issued.secret.expose();
        assert!(key.starts_with("pmjb_"));
        assert_eq!(key.len(), 5 + 64, "256 random bits as hex");
        assert!(is_well_formed(CredentialKind::ApiKey, key));
        assert_eq!(issued.hash, hash_credential(key));
        assert_eq!(issued.hash.len(), 64);
        assert_eq!(issued.display_prefix, key[..12]);
        assert!(!is_well_formed(
            CredentialKind::ApiKey,
            &key[..key.len() - 1]
        ));
        assert!(!is_well_formed(CredentialKind::ApiKey, &key.to_uppercase()));
        assert!(!is_well_formed(CredentialKind::OAuthAccessToken, key));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            hash_credential("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        #[test]
        fn any_token_round_trips_and_any_tampering_fails(
            token in ".{0,200}",
            row in "[a-z0-9-]{1,36}",
            flip in 0usize..400,
            seed in any::<u64>(),
        ) {
            let ring = TokenKeyring::from_config(KEY_A).unwrap();
            let b = binding(&row);
            let sealed = ring.seal(&SeededRandomness::new(seed), &Secret::new(token.clone()), &b).unwrap();
            let opened = ring.open(&sealed, &b).unwrap();
            prop_assert_eq!(opened.expose(), token.as_str());

            let (_, blob) = parse_sealed(&sealed).unwrap();
            let mut tampered = blob.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 0x01;
            let forged = format!("v1.1.{}", URL_SAFE_NO_PAD.encode(&tampered));
            prop_assert_eq!(ring.open(&forged, &b), Err(CryptoError::Authentication));
        }
    }
}
