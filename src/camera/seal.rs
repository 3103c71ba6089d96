//! Sealed camera credentials: RTSP URLs (which carry user and password) are stored encrypted
//! with ChaCha20-Poly1305 (RFC 8439) under a key derived from `SECRET_KEY` by HKDF-SHA256
//! (RFC 5869). The camera id is the associated data, so a sealed URL copied onto another
//! camera's row does not open. Layout: `version (1) || nonce (12) || ciphertext+tag`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const INFO: &[u8] = b"vigia camera credentials v1";

/// Seals and opens secrets bound to a context string.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Sealer {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, secret)
            .expand(INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    pub fn seal(&self, context: &str, plaintext: &str) -> Result<Vec<u8>> {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("cannot seal camera credentials"))?;
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<String> {
        let fail = || {
            Error::internal(format!(
                "cannot open the sealed RTSP URL of camera {context} (was SECRET_KEY changed?)"
            ))
        };
        if sealed.len() < 13 || sealed[0] != VERSION {
            return Err(fail());
        }
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed[1..13]),
                Payload {
                    msg: &sealed[13..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(pt).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_bound_to_context_and_key() {
        let s = Sealer::new(b"0123456789abcdef0123456789abcdef");
        let sealed = s.seal("10.0.0.5", "rtsp://u:p@10.0.0.5/x").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("u:p"));
        assert_eq!(
            s.open("10.0.0.5", &sealed).unwrap(),
            "rtsp://u:p@10.0.0.5/x"
        );
        assert!(s.open("10.0.0.6", &sealed).is_err());
        let other = Sealer::new(b"another secret key of 32 bytes!!");
        assert!(other.open("10.0.0.5", &sealed).is_err());
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(s.open("10.0.0.5", &bent).is_err());
    }
}
