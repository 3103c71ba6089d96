//! `/api/cameras`: the registry. Everyone lists the cameras they may watch; admins add,
//! change and delete. RTSP URLs are sealed before they reach the store and shown masked.

use hyper::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::response::{self, Body};
use super::Ctx;
use crate::auth::{authorize, visible_cameras, Action};
use crate::camera::{self, templates, url, MAX_CHANNEL};
use crate::error::{Error, Result};
use crate::store::{Brand, Camera, CameraPatch, Transport};

const MAX_NAME: usize = 100;

#[derive(Deserialize, Default)]
pub(super) struct CameraRequest {
    ip: Option<String>,
    channel: Option<u32>,
    name: Option<String>,
    brand: Option<String>,
    port: Option<u16>,
    rtsp_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    transport: Option<String>,
    is_active: Option<bool>,
    /// The node that serves it (fleet); default for a new camera: this box.
    node: Option<String>,
}

fn brand(s: Option<&str>) -> Result<Option<Brand>> {
    s.map(|b| {
        Brand::parse(&b.to_ascii_lowercase()).ok_or_else(|| {
            Error::bad_request("brand must be generic, hikvision, dahua, xmeye or onvif")
        })
    })
    .transpose()
}

fn transport(s: Option<&str>) -> Result<Option<Transport>> {
    s.map(|t| match t.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Transport::Tcp),
        "udp" => Ok(Transport::Udp),
        _ => Err(Error::bad_request("transport must be tcp or udp")),
    })
    .transpose()
}

impl CameraRequest {
    /// Channel `channel` of the device at `ip`, everything else from discovery or defaults.
    pub(super) fn address(ip: &str, channel: u32) -> CameraRequest {
        CameraRequest {
            ip: Some(ip.to_string()),
            channel: Some(channel),
            ..Default::default()
        }
    }

    fn check(&self) -> Result<()> {
        if self
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NAME)
        {
            return Err(Error::bad_request(format!(
                "name must have at most {MAX_NAME} characters"
            )));
        }
        if self.port == Some(0) {
            return Err(Error::bad_request("port must be 1 to 65535"));
        }
        if self.channel.is_some_and(|ch| ch == 0 || ch > MAX_CHANNEL) {
            return Err(Error::bad_request(format!(
                "channel must be 1 to {MAX_CHANNEL}"
            )));
        }
        for (field, v) in [("username", &self.username), ("password", &self.password)] {
            if let Some(v) = v {
                camera::check_credential(field, v)?;
            }
        }
        Ok(())
    }
}

pub async fn list(c: Ctx) -> Result<Response<Body>> {
    let visible = visible_cameras(c.app.store.as_ref(), c.user()?, Action::Watch).await?;
    let cams: Vec<CameraView> = match visible {
        None => c
            .app
            .store
            .cameras()
            .await?
            .iter()
            .map(|cam| CameraView::with_state(cam, &c.app.streams))
            .collect(),
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(cam) = c.app.store.camera(&id).await? {
                    out.push(CameraView::with_state(&cam, &c.app.streams));
                }
            }
            out
        }
    };
    Ok(response::ok(&json!({ "cameras": cams })))
}

pub async fn get(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::Watch).await?;
    Ok(response::ok(&CameraView::with_state(&cam, &c.app.streams)))
}

pub async fn create(c: Ctx) -> Result<Response<Body>> {
    authorize(c.app.store.as_ref(), c.user()?, Action::ManageCameras, None).await?;
    let req: CameraRequest = c.json()?;
    let cam = add(&c.app, req).await?;
    Ok(response::json(201, &CameraView::from(&cam)))
}

/// Adds a camera. With only its address (and channel), a device a discovery scan found
/// within `CACHE_TTL` gets the brand, port, stream URL and credentials the scan found.
pub(super) async fn add(app: &super::App, mut req: CameraRequest) -> Result<Camera> {
    req.check()?;
    let ip = camera::normalize_address(
        req.ip
            .as_deref()
            .ok_or_else(|| Error::bad_request("'ip' is required"))?,
    )?;
    let channel = req.channel.unwrap_or(1);
    if req.rtsp_url.is_none() && req.brand.is_none() && req.port.is_none() {
        if let Some((b, port, url, login)) = app.discovery.lookup(&app.sealer, &ip, channel) {
            req.brand = Some(b.as_str().into());
            req.port = Some(port);
            req.rtsp_url = url;
            if let (None, None, Some((u, p))) = (&req.username, &req.password, login) {
                req.username = Some(u);
                req.password = Some(p);
            }
        }
    }
    let brand = brand(req.brand.as_deref())?.unwrap_or(Brand::Generic);
    let port = req.port.unwrap_or_else(|| templates::default_port(brand));
    let id = camera::camera_id(&ip, channel);
    let rtsp = camera::resolve_rtsp_url(
        req.rtsp_url.as_deref(),
        brand,
        &ip,
        port,
        channel,
        req.username.as_deref(),
        req.password.as_deref(),
    )?;
    let node = app.fleet.owner_for_new(req.node.as_deref()).await?;
    let cam = Camera {
        node,
        rtsp_url_sealed: app.sealer.seal(&id, &rtsp)?,
        rtsp_url_display: url::masked(&rtsp),
        name: req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Camera {id}")),
        id,
        ip,
        channel,
        brand,
        port,
        transport: transport(req.transport.as_deref())?.unwrap_or(Transport::Tcp),
        is_active: req.is_active.unwrap_or(true),
        last_seen: None,
        is_recording: false,
        created_at: app.clock.now(),
    };
    app.store.create_camera(cam).await
}

pub async fn update(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::ManageCameras).await?;
    let req: CameraRequest = c.json()?;
    req.check()?;
    if let Some(ip) = &req.ip {
        if camera::normalize_address(ip)? != cam.ip {
            return Err(Error::bad_request(
                "a camera's ip cannot change (it is part of its id): delete it and add it again",
            ));
        }
    }
    if req.channel.is_some_and(|ch| ch != cam.channel) {
        return Err(Error::bad_request(
            "a camera's channel cannot change (it is part of its id): delete it and add it again",
        ));
    }
    let new_brand = brand(req.brand.as_deref())?;
    let node = match req.node.as_deref() {
        Some(n) if n != cam.node => Some(c.app.fleet.check_target(n).await?),
        _ => None,
    };
    let mut patch = CameraPatch {
        node: node.clone(),
        name: req.name.clone().filter(|n| !n.trim().is_empty()),
        brand: new_brand,
        port: req.port,
        transport: transport(req.transport.as_deref())?,
        is_active: req.is_active,
        ..Default::default()
    };
    let url_touched = req.rtsp_url.is_some()
        || req.username.is_some()
        || req.password.is_some()
        || new_brand.is_some()
        || req.port.is_some();
    if url_touched {
        let current = c.app.sealer.open(&cam.id, &cam.rtsp_url_sealed)?;
        let brand = new_brand.unwrap_or(cam.brand);
        let port = req.port.unwrap_or(cam.port);
        let rtsp = if req.rtsp_url.is_some() {
            camera::resolve_rtsp_url(
                req.rtsp_url.as_deref(),
                brand,
                &cam.ip,
                port,
                cam.channel,
                req.username.as_deref(),
                req.password.as_deref(),
            )?
        } else {
            // rebuild from the template when brand or port changed, keeping credentials
            let base = if new_brand.is_some() || req.port.is_some() {
                let bare = templates::build_url(brand, &cam.ip, port, cam.channel, "", "");
                url::with_userinfo_of(&bare, &current).unwrap_or(bare)
            } else {
                current.clone()
            };
            match (&req.username, &req.password) {
                (None, None) => base,
                (user, pass) => {
                    let user = user
                        .clone()
                        .or_else(|| url::username(&current).map(str::to_string))
                        .unwrap_or_default();
                    url::with_credentials(&base, &user, pass.as_deref().unwrap_or(""))
                        .ok_or_else(|| Error::bad_request("cannot set credentials on this URL"))?
                }
            }
        };
        patch.rtsp_url = Some((c.app.sealer.seal(&cam.id, &rtsp)?, url::masked(&rtsp)));
    }
    let reconnect =
        patch.rtsp_url.is_some() || patch.transport.is_some() || patch.is_active == Some(false);
    let cam = c.app.store.update_camera(&cam.id, patch).await?;
    if let Some(to) = &node {
        tracing::info!(camera = %cam.id, to = %to, "camera moved to another node");
        c.app.fleet.moved(&cam.id, to);
    }
    if reconnect {
        // the next viewer starts a session with the new settings; a recording stops
        let _ = c
            .app
            .recordings
            .stop(&cam.id, "the camera's settings changed");
        c.app.streams.kill(&cam.id);
    }
    Ok(response::ok(&CameraView::from(&cam)))
}

pub async fn delete(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::ManageCameras).await?;
    let _ = c.app.recordings.stop(&cam.id, "the camera was deleted");
    c.app.store.delete_camera(&cam.id).await?;
    c.app.streams.kill(&cam.id);
    Ok(response::message(200, "Camera deleted"))
}

/// A camera as the API shows it: the RTSP URL with its password masked.
#[derive(Debug, Clone, Serialize)]
pub struct CameraView {
    pub id: String,
    pub ip: String,
    pub channel: u32,
    pub name: String,
    pub brand: Brand,
    pub port: u16,
    pub rtsp_url: String,
    pub transport: Transport,
    pub is_active: bool,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub is_recording: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The node that pulls, serves and records it.
    pub node: String,
    /// The live session: `{"state": "idle" | "connecting" | "live" | "retrying" | …}`.
    pub stream: crate::media::ingest::State,
}

impl CameraView {
    /// The view with the camera's live state from `streams`.
    pub fn with_state(c: &Camera, streams: &crate::media::streams::Streams) -> CameraView {
        let mut v = CameraView::from(c);
        v.stream = streams.state(&c.id);
        v
    }
}

impl From<&Camera> for CameraView {
    fn from(c: &Camera) -> Self {
        CameraView {
            id: c.id.clone(),
            ip: c.ip.clone(),
            channel: c.channel,
            name: c.name.clone(),
            brand: c.brand,
            port: c.port,
            rtsp_url: c.rtsp_url_display.clone(),
            transport: c.transport,
            is_active: c.is_active,
            last_seen: c.last_seen,
            is_recording: c.is_recording,
            created_at: c.created_at,
            node: c.node.clone(),
            stream: crate::media::ingest::State::Idle,
        }
    }
}
