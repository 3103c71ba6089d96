//! `/api/cameras`: the registry. Everyone lists the cameras they may watch; admins add,
//! change and delete (through [`crate::services::cameras`], which owns the rules). RTSP URLs
//! are shown masked.

use hyper::Response;
use serde::Serialize;
use serde_json::json;

use super::response::{self, Body};
use super::Ctx;
use crate::auth::Action;
use crate::error::Result;
use crate::services::cameras::CameraRequest;
use crate::store::{Brand, Camera, Transport};

pub async fn list(c: Ctx) -> Result<Response<Body>> {
    let cams = c
        .visible_cameras(Action::Watch)
        .await?
        .iter()
        .map(|cam| CameraView::for_caller(cam, &c))
        .collect::<Result<Vec<_>>>()?;
    Ok(response::ok(&json!({ "cameras": cams })))
}

pub async fn get(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::Watch).await?;
    Ok(response::ok(&CameraView::for_caller(&cam, &c)?))
}

pub async fn create(c: Ctx) -> Result<Response<Body>> {
    c.authorize(Action::ManageCameras, None).await?;
    let req: CameraRequest = c.json()?;
    let cam = c.app.cameras.add(req).await?;
    Ok(response::json(201, &CameraView::from(&cam)))
}

pub async fn update(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::ManageCameras).await?;
    let req: CameraRequest = c.json()?;
    let cam = c.app.cameras.update(&cam, req).await?;
    Ok(response::ok(&CameraView::from(&cam)))
}

pub async fn delete(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::ManageCameras).await?;
    c.app.cameras.delete(&cam).await?;
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
    /// The old backend's free-text `type` ("ip", "dvr", …).
    #[serde(rename = "type")]
    pub kind: String,
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
    /// The old backend's field: the caller's playable URL while the camera is streaming
    /// (pulled by this box), else null.
    pub hls_url: Option<String>,
}

impl CameraView {
    /// The view as caller `c` sees it: the camera's live state, and its `hls_url` while a
    /// session runs.
    pub fn for_caller(cam: &Camera, c: &Ctx) -> Result<CameraView> {
        let mut v = CameraView::from(cam);
        if let Some(live) = c.app.streams.get(&cam.id) {
            v.stream = live.state();
            if let Some(claims) = &c.claims {
                v.hls_url = Some(super::streams::hls_url(c, claims, &cam.id)?);
            }
        }
        Ok(v)
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
            kind: c.kind.clone(),
            port: c.port,
            rtsp_url: c.rtsp_url_display.clone(),
            transport: c.transport,
            is_active: c.is_active,
            last_seen: c.last_seen,
            is_recording: c.is_recording,
            created_at: c.created_at,
            node: c.node.clone(),
            stream: crate::media::ingest::State::Idle,
            hls_url: None,
        }
    }
}
