//! JSON Web Tokens (RFC 7519), HMAC-signed with `SECRET_KEY`.
//!
//! Claims: `sub` (user id), `role`, `iat`, `exp`, `jti` (random, for revocation). Only the
//! configured algorithm is accepted, so `alg: none` and algorithm-confusion tokens fail
//! signature validation. Expiry is checked against the injected clock, not the system's.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::User;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user's token generation when issued (see `Store::end_sessions`); absent in tokens
    /// from before it existed, which count as generation 0.
    #[serde(default)]
    pub gen: i64,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0).single().unwrap_or_default()
    }
}

/// A player token: lets a player that cannot send headers fetch one camera's HLS files.
/// It names the login token it came from (`sid`), so logging out revokes it too, and it
/// expires with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlayerClaims {
    pub sub: String,
    /// The camera id it is good for, and only that one.
    pub cam: String,
    /// The `jti` of the login token it was issued under.
    pub sid: String,
    pub exp: i64,
    pub typ: String,
    /// The login token's generation.
    #[serde(default)]
    pub gen: i64,
}

const PLAYER_TYP: &str = "hls";

/// What a player token opens (players that cannot send headers carry it in `?t=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerScope {
    /// One camera's live playlist and parts.
    Camera,
    /// One recording's download.
    Recording,
}

impl PlayerScope {
    /// The token's claim for camera or recording `id`: the camera id, or `rec/<id>`.
    pub fn claim(self, id: &str) -> String {
        match self {
            PlayerScope::Camera => id.to_string(),
            PlayerScope::Recording => format!("rec/{id}"),
        }
    }
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct Tokens {
    alg: Algorithm,
    enc: EncodingKey,
    dec: DecodingKey,
    ttl_secs: i64,
    clock: Arc<dyn Clock>,
}

/// 128 random bits, hex.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Tokens {
    pub fn new(secret: &[u8], alg: Algorithm, ttl_secs: u64, clock: Arc<dyn Clock>) -> Tokens {
        Tokens {
            alg,
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            ttl_secs: ttl_secs as i64,
            clock,
        }
    }

    /// A login token for `user`, in the user's token `generation`.
    pub fn issue(&self, user: &User, generation: i64) -> Result<(String, Claims)> {
        let now = self.clock.now().timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role.as_str().to_string(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: random_id(),
            gen: generation,
        };
        let token = jsonwebtoken::encode(&Header::new(self.alg), &claims, &self.enc)
            .map_err(|e| Error::failed("cannot sign a token", e))?;
        Ok((token, claims))
    }

    /// A player token for the camera or recording `id`, bound to the login token `login`,
    /// expiring with it or after `ttl_secs`, whichever comes first.
    pub fn issue_player(
        &self,
        login: &Claims,
        scope: PlayerScope,
        id: &str,
        ttl_secs: Option<i64>,
    ) -> Result<String> {
        let exp = ttl_secs.map_or(login.exp, |t| {
            login.exp.min(self.clock.now().timestamp() + t)
        });
        let claims = PlayerClaims {
            sub: login.sub.clone(),
            cam: scope.claim(id),
            sid: login.jti.clone(),
            exp,
            typ: PLAYER_TYP.to_string(),
            gen: login.gen,
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, &self.enc)
            .map_err(|e| Error::failed("cannot sign a token", e))
    }

    /// Checks a player token for the camera or recording `id`. A login token is not a player
    /// token, and a player token is not a login token (their claims differ).
    pub fn verify_player(&self, token: &str, scope: PlayerScope, id: &str) -> Result<PlayerClaims> {
        let mut v = Validation::new(self.alg);
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        let c = jsonwebtoken::decode::<PlayerClaims>(token, &self.dec, &v)
            .map_err(|_| Error::unauthorized("invalid player token"))?
            .claims;
        if c.typ != PLAYER_TYP || c.cam != scope.claim(id) {
            return Err(Error::unauthorized(
                "this player token is not for this camera",
            ));
        }
        if c.exp <= self.clock.now().timestamp() {
            return Err(Error::unauthorized("player token expired"));
        }
        Ok(c)
    }

    /// Checks signature, algorithm and expiry. Every failure is the same 401 to the client.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let mut v = Validation::new(self.alg);
        v.validate_exp = false; // checked below against the injected clock
        v.set_required_spec_claims(&["exp", "sub", "iat"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map_err(|_| Error::unauthorized("invalid token"))?;
        if data.claims.exp <= self.clock.now().timestamp() {
            return Err(Error::unauthorized("token expired"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::Role;

    /// A user for token tests.
    pub(crate) fn user() -> User {
        User {
            id: 7,
            username: "ana".into(),
            role: Role::User,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn round_trip_expiry_and_foreign_algorithms() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let t = Tokens::new(&[7; 32], Algorithm::HS256, 60, clock.clone());
        let (tok, c) = t.issue(&user(), 0).unwrap();
        let back = t.verify(&tok).unwrap();
        assert_eq!(back.user_id(), Some(7));
        assert_eq!(back.jti, c.jti);
        assert_eq!(back.role, "user");
        // another key, another algorithm: rejected
        let other = Tokens::new(&[8; 32], Algorithm::HS256, 60, clock.clone());
        assert!(other.verify(&tok).is_err());
        let hs512 = Tokens::new(&[7; 32], Algorithm::HS512, 60, clock.clone());
        assert!(hs512.verify(&tok).is_err());
        // alg: none
        let parts: Vec<&str> = tok.split('.').collect();
        let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(t.verify(&format!("{none_header}.{}.", parts[1])).is_err());
        clock.advance(chrono::Duration::seconds(61));
        assert_eq!(t.verify(&tok).unwrap_err().message, "token expired");
    }

    fn base64_url(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, &x| acc << 8 | x as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}
