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
    let cams: Vec<CameraView> = c
        .visible_cameras(Action::Watch)
        .await?
        .iter()
        .map(|cam| CameraView::with_state(cam, &c.app.streams))
        .collect();
    Ok(response::ok(&json!({ "cameras": cams })))
}

pub async fn get(c: Ctx) -> Result<Response<Body>> {
    let cam = c.camera(c.param(0), Action::Watch).await?;
    Ok(response::ok(&CameraView::with_state(&cam, &c.app.streams)))
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
