//! Users and what they may watch: list, show with the cameras assigned, change role or
//! password (a new password ends every session: the store does both in one transaction), end
//! sessions, delete, assign and unassign cameras. Assigning the address of a device a
//! discovery scan found adds its cameras first (every channel of a DVR), as the old backend
//! did. Handlers check permissions and shape answers; this owns the rules.

use std::sync::Arc;

use super::cameras::{CameraRequest, Cameras};
use crate::auth::password::Passwords;
use crate::error::{Error, Result};
use crate::store::{DynStore, Role, User};

pub struct Users {
    pub store: DynStore,
    pub passwords: Passwords,
    pub cameras: Arc<Cameras>,
}

fn not_found(id: i64) -> Error {
    Error::not_found(format!("user {id} not found"))
}

impl Users {
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
            let hash = self.passwords.hash(pw).await?;
            self.store.set_password(id, &hash).await?;
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
            for ch in self.cameras.discovery.channels(&ip) {
                let cam = self.cameras.add(CameraRequest::address(&ip, ch)).await?;
                if !ids.contains(&cam.id) {
                    ids.push(cam.id);
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
