//! `GET /api/cameras/discover?network_range=<CIDR>&credentials=<user:pass>` and
//! `POST /api/cameras/discover` with `{network_range, credentials: {username, password}}`
//! (admins): scans a range for cameras (see [`crate::discovery`]). The POST form keeps
//! credentials out of URLs; neither form logs them (request lines never carry the query).

use hyper::Response;
use serde::Deserialize;

use super::response::{self, Body};
use super::Ctx;
use crate::auth::Action;
use crate::discovery::{Login, Range};
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoverRequest {
    network_range: Option<String>,
    credentials: Option<LoginRequest>,
    #[serde(default)]
    refresh: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

fn login(username: String, password: String) -> Result<Login> {
    if username.is_empty() {
        return Err(Error::bad_request("credentials need a user name"));
    }
    crate::camera::check_credential("username", &username)?;
    crate::camera::check_credential("password", &password)?;
    if username
        .chars()
        .chain(password.chars())
        .any(char::is_control)
    {
        return Err(Error::bad_request(
            "credentials may not contain control characters",
        ));
    }
    Ok(Login { username, password })
}

async fn run(c: &Ctx, req: DiscoverRequest) -> Result<Response<Body>> {
    let range = req
        .network_range
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| c.app.config.default_network_range.clone());
    let range = Range::parse(&range).map_err(|e| Error::bad_request(e.to_string()))?;
    let login = req
        .credentials
        .map(|l| login(l.username, l.password))
        .transpose()?;
    let report = c
        .app
        .discovery
        .scan(&c.app.sealer, &range, login, req.refresh)
        .await;
    Ok(response::ok(&report))
}

pub async fn get(c: Ctx) -> Result<Response<Body>> {
    c.authorize(Action::ManageCameras, None).await?;
    let credentials = match c.query_param("credentials").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let (u, p) = v
                .split_once(':')
                .ok_or_else(|| Error::bad_request("credentials must be user:password"))?;
            Some(LoginRequest {
                username: u.to_string(),
                password: p.to_string(),
            })
        }
    };
    let req = DiscoverRequest {
        network_range: c.query_param("network_range"),
        credentials,
        refresh: matches!(c.query_param("refresh").as_deref(), Some("true" | "1")),
    };
    run(&c, req).await
}

pub async fn post(c: Ctx) -> Result<Response<Body>> {
    c.authorize(Action::ManageCameras, None).await?;
    let req: DiscoverRequest = c.json()?;
    run(&c, req).await
}
