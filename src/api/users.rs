//! `/api/users` (admin only): list, show with assigned cameras, change role or password,
//! end a user's sessions, delete, assign and unassign cameras. The rules live in
//! [`crate::services::users`]; this checks permission and input and shapes the answers.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use super::response::{self, Body};
use super::Ctx;
use crate::auth::Action;
use crate::error::{Error, Result};
use crate::store::Role;
use tracing::info;

/// Most cameras one assignment request may name.
const MAX_ASSIGN: usize = 1024;

/// Checks the caller is allowed to manage users.
async fn admin(c: &Ctx) -> Result<()> {
    c.authorize(Action::ManageUsers, None).await.map(|_| ())
}

/// Checks the caller is allowed to manage users and returns the `{}` user id.
async fn admin_and_id(c: &Ctx) -> Result<i64> {
    admin(c).await?;
    let raw = c.param(0);
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Error::not_found(format!(
            "user {} not found",
            crate::camera::truncate(raw, 32)
        ))
    })
}

pub async fn list(c: Ctx) -> Result<Response<Body>> {
    admin(&c).await?;
    let users = c.app.users.list().await?;
    Ok(response::ok(&json!({ "users": users })))
}

pub async fn get(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    let (user, cams) = c.app.users.get(id).await?;
    Ok(response::ok(&json!({
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "created_at": user.created_at,
        "camera_ips": cams,
    })))
}

#[derive(Deserialize)]
struct UpdateRequest {
    role: Option<String>,
    password: Option<String>,
}

/// `PUT /api/users/<id>`: `role` and/or `password`; a new password ends all the user's
/// sessions.
pub async fn update(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    let req: UpdateRequest = c.json()?;
    let role = match req.role.as_deref() {
        None => None,
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| Error::bad_request("role must be admin, user or viewer"))?,
        ),
    };
    if role.is_none() && req.password.is_none() {
        return Err(Error::bad_request("send role and/or password"));
    }
    if let Some(pw) = &req.password {
        crate::api::auth::validate_password(pw)?;
    }
    let user = c
        .app
        .users
        .update(id, role, req.password.as_deref())
        .await?;
    if req.password.is_some() {
        info!(
            user_id = id,
            by = c.user()?.id,
            "password reset by an admin; sessions ended"
        );
    }
    Ok(response::ok(
        &json!({ "message": "User updated", "user": user }),
    ))
}

/// `POST /api/users/<id>/logout-all`: every token of the user stops working.
pub async fn logout_all(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    c.app.users.end_sessions(id).await?;
    info!(
        user_id = id,
        by = c.user()?.id,
        "all sessions ended by an admin"
    );
    Ok(response::message(
        200,
        "All sessions of the user have ended",
    ))
}

pub async fn delete(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    c.app.users.delete(id).await?;
    Ok(response::message(200, "User deleted"))
}

#[derive(Deserialize)]
struct AssignRequest {
    camera_ips: Vec<String>,
}

pub async fn assign(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    let req: AssignRequest = c.json()?;
    if req.camera_ips.is_empty() {
        return Err(Error::bad_request(
            "'camera_ips' must name at least one camera",
        ));
    }
    if req.camera_ips.len() > MAX_ASSIGN {
        return Err(Error::bad_request(format!(
            "'camera_ips' may name at most {MAX_ASSIGN} cameras"
        )));
    }
    let ids = req
        .camera_ips
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let all = c.app.users.assign(id, ids).await?;
    Ok(response::ok(
        &json!({ "message": "Cameras assigned", "camera_ips": all }),
    ))
}

pub async fn unassign(c: Ctx) -> Result<Response<Body>> {
    let id = admin_and_id(&c).await?;
    c.app.users.unassign(id, c.param(1)).await?;
    Ok(response::message(200, "Camera unassigned"))
}
