//! Web Push's cryptography (rule 93): the site's VAPID key pair (RFC 8292,
//! ES256 JWTs) and the `aes128gcm` message encryption of RFC 8291 (ECDH
//! with the browser's P-256 key, HKDF-SHA256, one AES-128-GCM record).
//! Pure functions; the caller passes random bytes and sends the request.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size written in the header (RFC 8188): one record holds
/// any message of ours.
const RECORD_SIZE: u32 = 4096;

/// Whether 32 bytes make a P-256 private key (all but ~2^-32 of them do).
pub fn valid_secret(bytes: &[u8; 32]) -> bool {
    SecretKey::from_slice(bytes).is_ok()
}

/// The public key of a VAPID private key: base64url of the uncompressed
/// point (what `/site`'s `push_key` and `applicationServerKey` take).
pub fn public_key(secret: &[u8; 32]) -> Option<String> {
    let sk = SecretKey::from_slice(secret).ok()?;
    Some(URL_SAFE_NO_PAD.encode(sk.public_key().to_encoded_point(false).as_bytes()))
}

/// Whether a subscription's keys are usable: `p256dh` a P-256 point,
/// `auth` 16 bytes, both base64url.
pub fn valid_keys(p256dh: &str, auth: &str) -> bool {
    let key = decode(p256dh).and_then(|k| PublicKey::from_sec1_bytes(&k).ok());
    let auth = decode(auth);
    key.is_some() && auth.is_some_and(|a| a.len() == 16)
}

/// base64url with or without padding (browsers send it without).
fn decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// `Authorization: vapid t=…, k=…` for `endpoint`'s origin, valid until
/// `exp` (Unix seconds; at most 24 h ahead, RFC 8292 §2).
pub fn vapid_header(secret: &[u8; 32], endpoint: &str, subject: &str, exp: i64) -> Option<String> {
    use p256::ecdsa::signature::Signer;
    let sk = SecretKey::from_slice(secret).ok()?;
    let url = reqwest::Url::parse(endpoint).ok()?;
    let aud = url.origin().ascii_serialization();
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({"aud": aud, "exp": exp, "sub": subject});
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing = format!("{header}.{claims}");
    let key = p256::ecdsa::SigningKey::from(&sk);
    let sig: p256::ecdsa::Signature = key.sign(signing.as_bytes());
    let k = public_key(secret)?;
    Some(format!(
        "vapid t={signing}.{}, k={k}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

/// Random bytes for one encryption: an ephemeral private key (retried by
/// the caller if invalid) and the salt.
pub struct Seed {
    pub ephemeral: [u8; 32],
    pub salt: [u8; 16],
}

/// Encrypts `message` for a subscription (RFC 8291 §3, RFC 8188 §2): the
/// body of the push request, `Content-Encoding: aes128gcm`.
pub fn encrypt(message: &[u8], p256dh: &str, auth: &str, seed: &Seed) -> Option<Vec<u8>> {
    let ua_bytes = decode(p256dh)?;
    let ua_public = PublicKey::from_sec1_bytes(&ua_bytes).ok()?;
    let ua_public_bytes = ua_public.to_encoded_point(false);
    let auth = decode(auth)?;
    let as_secret = SecretKey::from_slice(&seed.ephemeral).ok()?;
    let as_public = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());

    // IKM = HKDF(auth, ecdh, "WebPush: info" 0 ua_public as_public, 32)
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public_bytes.as_bytes());
    info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth.as_slice()), shared.raw_secret_bytes().as_slice())
        .expand(&info, &mut ikm)
        .ok()?;

    let prk = Hkdf::<Sha256>::new(Some(&seed.salt[..]), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .ok()?;
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;

    let mut plain = message.to_vec();
    plain.push(2); // the last (and only) record's delimiter
    if plain.len() + 16 > RECORD_SIZE as usize {
        return None;
    }
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .ok()?
        .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
        .ok()?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(&seed.salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Some(body)
}
