//! `/api/auth`: login (throttled per address and per account), logout (persistent
//! revocation), changing one's own password (ends the user's other sessions) and registration
//! (the first user needs no token and becomes admin; later ones need an admin).

use hyper::Response;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::response::{self, Body};
use super::Ctx;
use crate::auth::limiter::Refused;
use crate::auth::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::auth::Action;
use crate::error::{Error, Kind, Result};
use crate::store::{CreateMode, Role};

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct RegisterRequest {
    username: String,
    password: String,
    role: Option<String>,
}

/// Checks a username: 3 to 32 of `A-Z a-z 0-9 . _ - @`.
pub fn validate_username(name: &str) -> Result<()> {
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "username must be 3 to 32 characters of letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

pub fn validate_password(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Error::bad_request(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(Error::bad_request(format!(
            "password must have at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// The 429 for a refused attempt.
fn too_many(r: Refused) -> Error {
    let (wait, whose) = match r {
        Refused::Address(w) => (w, "from this address"),
        Refused::Account(w) => (w, "for this account"),
    };
    crate::metrics::inc(&crate::metrics::LOGIN_THROTTLED);
    Error::new(
        Kind::TooManyRequests,
        format!("too many failed logins {whose}; try again in {wait} s"),
    )
    .with_retry_after(wait)
}

pub async fn login(c: Ctx) -> Result<Response<Body>> {
    let ip = c.peer.ip();
    let req: LoginRequest = c.json()?;
    if req.password.chars().count() > MAX_PASSWORD_LEN || req.username.len() > 256 {
        return Err(Error::bad_request("username or password is too long"));
    }
    // decided before hashing: attempts still being hashed count as failures
    let attempt = c.app.limiter.begin(ip, &req.username).map_err(too_many)?;
    // a place for the hash before the store is asked: a flood is shed before it costs anything
    let admission = c.app.passwords.admit()?;
    let found = c.app.users.credentials(&req.username).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let legacy = hash.as_deref().is_some_and(password::is_legacy);
    let ok = c
        .app
        .passwords
        .verify_admitted(admission, &req.password, hash)
        .await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            attempt.failed();
            crate::metrics::inc(&crate::metrics::LOGIN_FAILURES);
            if let Some(skipped) = c.app.lograte.allow(ip, "failed login") {
                warn!(peer = %ip, skipped, "failed login (logged once a minute per address)");
            }
            return Err(Error::unauthorized("invalid username or password"));
        }
    };
    attempt.succeeded();
    let generation = c
        .app
        .users
        .logged_in(user.id, &req.password, legacy)
        .await?;
    let (token, _) = c.app.tokens.issue(&user, generation)?;
    info!(user_id = user.id, "login");
    Ok(response::ok(&json!({ "token": token, "user": user })))
}

pub async fn logout(c: Ctx) -> Result<Response<Body>> {
    let claims = c
        .claims
        .as_ref()
        .ok_or_else(|| Error::unauthorized("authentication required"))?;
    c.app.users.revoke(&claims.jti, claims.expires_at()).await?;
    Ok(response::message(200, "Logged out"))
}

#[derive(Deserialize)]
struct PasswordRequest {
    old_password: String,
    new_password: String,
}

/// `POST /api/auth/password`: the caller's own password, the old one required (throttled like
/// a login). Every session of the user ends, this one included; the answer carries a new
/// token for this client.
pub async fn change_password(c: Ctx) -> Result<Response<Body>> {
    let me = c.user()?.clone();
    let req: PasswordRequest = c.json()?;
    if req.old_password.chars().count() > MAX_PASSWORD_LEN {
        return Err(Error::bad_request("old_password is too long"));
    }
    validate_password(&req.new_password)?;
    let attempt = c
        .app
        .limiter
        .begin(c.peer.ip(), &me.username)
        .map_err(too_many)?;
    let hash = c.app.users.credentials(&me.username).await?.map(|(_, h)| h);
    if !c.app.passwords.verify(&req.old_password, hash).await? {
        attempt.failed();
        warn!(peer = %c.peer.ip(), user_id = me.id, "wrong old password on a password change");
        return Err(Error::unauthorized(
            "old_password is not the current password",
        ));
    }
    attempt.succeeded();
    let generation = c.app.users.set_password(me.id, &req.new_password).await?;
    let (token, _) = c.app.tokens.issue(&me, generation)?;
    info!(user_id = me.id, "password changed; other sessions ended");
    Ok(response::ok(&json!({
        "message": "Password changed; every other session of this user has ended",
        "token": token,
    })))
}

pub async fn register(c: Ctx) -> Result<Response<Body>> {
    // a caller with a token is checked before its body is read (a viewer gets 403, not 400)
    if c.user.is_some() {
        c.authorize(Action::ManageUsers, None).await?;
    }
    let req: RegisterRequest = c.json()?;
    validate_username(&req.username)?;
    validate_password(&req.password)?;
    let requested = match req.role.as_deref() {
        None => Role::User,
        Some(r) => Role::parse(r)
            .ok_or_else(|| Error::bad_request("role must be admin, user or viewer"))?,
    };
    let (mode, role) = match &c.user {
        Some(_) => (CreateMode::Normal, requested),
        None => {
            if c.app.users.count().await? > 0 {
                return Err(Error::unauthorized(
                    "only an admin may register users: log in as an admin and send its token",
                ));
            }
            (CreateMode::FirstUser, Role::Admin)
        }
    };
    let user = c
        .app
        .users
        .create(req.username, &req.password, role, mode)
        .await
        .map_err(|e| match e.kind {
            // another first registration won the race
            Kind::Forbidden => Error::unauthorized("only an admin may register users"),
            _ => e,
        })?;
    info!(
        user_id = user.id,
        role = user.role.as_str(),
        "user registered"
    );
    Ok(response::json(
        201,
        &json!({ "message": "User registered", "user": user }),
    ))
}
