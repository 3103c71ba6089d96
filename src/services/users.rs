//! Users and what they may watch: list, show with the cameras assigned, change role or
//! password (a new password ends every session: the store does both in one transaction), end
//! sessions, delete, assign and unassign cameras. Assigning the address of a device a
//! discovery scan found adds its cameras first (every channel of a DVR), as the old backend
//! did. Handlers check permissions and shape answers; this owns the rules.

use std::sync::Arc;

use super::cameras::Cameras;
use crate::auth::password::Passwords;
use crate::error::{Error, Result};
use crate::store::{CreateMode, DynStore, NewUser, Role, User};

pub struct Users {
    pub store: DynStore,
    pub passwords: Passwords,
    pub cameras: Arc<Cameras>,
    /// A user has been seen: the box is claimed for good (the last admin cannot be deleted).
    pub claimed: std::sync::atomic::AtomicBool,
}

fn not_found(id: i64) -> Error {
    Error::not_found(format!("user {id} not found"))
}

impl Users {
    /// The user named `username` and their password hash (for a login).
    pub async fn credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        Ok(self.store.user_credentials(username).await?)
    }

    /// The generation a new token of user `id` carries (a password change moves it on).
    pub async fn token_generation(&self, id: i64) -> Result<i64> {
        Ok(self.store.token_generation(id).await?)
    }

    /// After a successful login with `password`: the generation the new token carries. A
    /// `legacy` hash (the old backend's bcrypt) is replaced with argon2id first (the user has
    /// no vigia session yet, so the new generation this gives ends nothing).
    pub async fn logged_in(&self, id: i64, password: &str, legacy: bool) -> Result<i64> {
        if !legacy {
            return self.token_generation(id).await;
        }
        let generation = self.set_password(id, password).await?;
        tracing::info!(
            user_id = id,
            "password hash upgraded from bcrypt to argon2id"
        );
        Ok(generation)
    }

    /// Sets user `id`'s password (already checked against the rules), ending every session;
    /// the generation new tokens carry.
    pub async fn set_password(&self, id: i64, password: &str) -> Result<i64> {
        let hash = self.passwords.hash(password).await?;
        Ok(self.store.set_password(id, &hash).await?)
    }

    /// Creates a user (the password already checked against the rules). `FirstUser` succeeds
    /// only while there is none: the loser of a race gets a `Forbidden`.
    pub async fn create(
        &self,
        username: String,
        password: &str,
        role: Role,
        mode: CreateMode,
    ) -> Result<User> {
        let password_hash = self.passwords.hash(password).await?;
        let new = NewUser {
            username,
            password_hash,
            role,
        };
        let user = self.store.create_user(new, mode).await?;
        self.claimed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(user)
    }

    /// Ends one session (a logout): token `jti` is refused until it would have expired.
    pub async fn revoke(&self, jti: &str, expires: chrono::DateTime<chrono::Utc>) -> Result<()> {
        Ok(self.store.revoke_token(jti, expires).await?)
    }

    /// How many users there are (none: the first to register becomes admin).
    pub async fn count(&self) -> Result<u64> {
        Ok(self.store.count_users().await?)
    }

    /// Whether no user exists yet (the first registration creates the admin). Once one has
    /// been seen the answer is `false` without asking the store again: `/health` asks it on
    /// every call, and a store busy with a login flood must not slow it.
    pub async fn unclaimed(&self) -> Result<bool> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.claimed.load(Relaxed) {
            return Ok(false);
        }
        let none = self.count().await? == 0;
        if !none {
            self.claimed.store(true, Relaxed);
        }
        Ok(none)
    }

    pub async fn list(&self) -> Result<Vec<User>> {
        Ok(self.store.users().await?)
    }

    /// The user and the ids of the cameras assigned to them.
    pub async fn get(&self, id: i64) -> Result<(User, Vec<String>)> {
        let user = self.store.user(id).await?.ok_or_else(|| not_found(id))?;
        Ok((user, self.store.assigned_cameras(id).await?))
    }

    /// Sets the role and/or the password (already checked against the password rules).
    pub async fn update(
        &self,
        id: i64,
        role: Option<Role>,
        password: Option<&str>,
    ) -> Result<User> {
        let user = match role {
            Some(role) => self.store.set_role(id, role).await?,
            None => self.store.user(id).await?.ok_or_else(|| not_found(id))?,
        };
        if let Some(pw) = password {
            self.set_password(id, pw).await?;
        }
        Ok(user)
    }

    /// Every token of the user stops working.
    pub async fn end_sessions(&self, id: i64) -> Result<()> {
        self.store.end_sessions(id).await?;
        Ok(())
    }

    pub async fn delete(&self, id: i64) -> Result<()> {
        Ok(self.store.delete_user(id).await?)
    }

    /// Assigns the cameras `ids` names (an address a discovery scan found, not yet a camera,
    /// is added with every channel found first); returns every camera the user now has.
    pub async fn assign(&self, id: i64, mut ids: Vec<String>) -> Result<Vec<String>> {
        for ip in ids.clone() {
            if self.store.camera(&ip).await?.is_some() {
                continue;
            }
            for id in self.cameras.add_found(&ip).await? {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        self.store.assign(id, &ids).await?;
        Ok(self.store.assigned_cameras(id).await?)
    }

    pub async fn unassign(&self, id: i64, camera: &str) -> Result<()> {
        Ok(self.store.unassign(id, camera).await?)
    }
}
