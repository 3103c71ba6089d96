//! Who may do what: passwords, tokens, login throttling, and **the** permission check.
//!
//! Every route that touches a camera (listing, live view, HLS files, recording, downloads)
//! calls [`authorize`]; no handler looks at a role by itself. [`scope`] is the single table
//! that maps a role and an action to "any camera", "assigned cameras" or "never".

pub mod grants;
pub mod jwt;
pub mod limiter;
pub mod password;

use crate::error::{Error, Result};
use crate::store::{Role, Store, User};

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List, create, change and delete users and their assignments.
    ManageUsers,
    /// Add, change and delete cameras; run discovery.
    ManageCameras,
    /// See a camera in listings and stats, watch it live.
    Watch,
    /// Start and stop recordings of a camera.
    Record,
    /// List and download recordings of a camera.
    ViewRecordings,
    /// Delete recordings of a camera.
    DeleteRecordings,
    /// Read service statistics (filtered by `Watch` per camera).
    ViewStats,
    /// Read `/metrics` (every camera's figures; a scraper's `METRICS_TOKEN` also may).
    ReadMetrics,
}

/// Where an action is allowed for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everything,
    AssignedCameras,
    Nothing,
}

/// The permission table.
pub fn scope(role: Role, action: Action) -> Scope {
    use Action::*;
    match (role, action) {
        (Role::Admin, _) => Scope::Everything,
        (_, ViewStats) => Scope::Everything,
        (_, ManageUsers | ManageCameras | ReadMetrics) => Scope::Nothing,
        (Role::User, Watch | Record | ViewRecordings | DeleteRecordings) => Scope::AssignedCameras,
        (Role::Viewer, Watch | ViewRecordings) => Scope::AssignedCameras,
        (Role::Viewer, Record | DeleteRecordings) => Scope::Nothing,
    }
}

/// The one permission check. `camera` is the camera id the action is about, if any.
/// A non-admin gets the same 403 for an unknown camera as for one not assigned to them, so
/// the answer does not reveal which cameras exist.
pub async fn authorize(
    store: &dyn Store,
    user: &User,
    action: Action,
    camera: Option<&str>,
) -> Result<()> {
    match (scope(user.role, action), camera) {
        (Scope::Everything, _) => Ok(()),
        (Scope::Nothing, _) => Err(Error::forbidden(format!(
            "role '{}' may not do this",
            user.role.as_str()
        ))),
        (Scope::AssignedCameras, Some(cam)) if store.is_assigned(user.id, cam).await? => Ok(()),
        (Scope::AssignedCameras, Some(cam)) => Err(Error::forbidden(format!(
            "camera {cam} is not assigned to you"
        ))),
        (Scope::AssignedCameras, None) => Ok(()),
    }
}

/// How many recordings `user` may have running at once under `MAX_RECORDINGS_PER_USER`
/// (`max`): admins are not limited.
pub fn recording_limit(user: &User, max: u32) -> Option<usize> {
    match scope(user.role, Action::ManageCameras) {
        Scope::Everything => None,
        _ => Some(max as usize),
    }
}

/// Ids of the cameras `user` may act on, `None` meaning all of them.
pub async fn visible_cameras(
    store: &dyn Store,
    user: &User,
    action: Action,
) -> Result<Option<Vec<String>>> {
    match scope(user.role, action) {
        Scope::Everything => Ok(None),
        Scope::AssignedCameras => Ok(Some(store.assigned_cameras(user.id).await?)),
        Scope::Nothing => Ok(Some(Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Action::*;
        for a in [
            ManageUsers,
            ManageCameras,
            Watch,
            Record,
            ViewRecordings,
            DeleteRecordings,
            ViewStats,
        ] {
            assert_eq!(scope(Role::Admin, a), Scope::Everything);
        }
        assert_eq!(scope(Role::User, ManageUsers), Scope::Nothing);
        assert_eq!(scope(Role::User, Record), Scope::AssignedCameras);
        assert_eq!(scope(Role::Viewer, Watch), Scope::AssignedCameras);
        assert_eq!(scope(Role::Viewer, ViewRecordings), Scope::AssignedCameras);
        assert_eq!(scope(Role::Viewer, Record), Scope::Nothing);
        assert_eq!(scope(Role::Viewer, DeleteRecordings), Scope::Nothing);
        assert_eq!(scope(Role::Viewer, ManageCameras), Scope::Nothing);
    }
}
