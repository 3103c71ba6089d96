//! The cameras' life cycle: add (filled in from a discovery scan when only the address is
//! given), change and delete, with what each implies for the camera's session, its recording
//! and the node that serves it. Handlers check permissions and shape answers; this owns the
//! rules.

use std::sync::Arc;

use serde::Deserialize;

use crate::camera::seal::Sealer;
use crate::camera::{self, templates, url, MAX_CHANNEL};
use crate::clock::Clock;
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::media::recordings::Recordings;
use crate::media::streams::Streams;
use crate::store::{Brand, Camera, CameraPatch, DynStore, Transport};

/// Longest camera name accepted.
pub const MAX_NAME: usize = 100;
/// Longest `type` accepted (the old backend's column held 20).
pub const MAX_KIND: usize = 32;

#[derive(Deserialize, Default)]
pub struct CameraRequest {
    pub ip: Option<String>,
    pub channel: Option<u32>,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub port: Option<u16>,
    pub rtsp_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: Option<String>,
    pub is_active: Option<bool>,
    /// The node that serves it (fleet); default for a new camera: this box.
    pub node: Option<String>,
    /// The old backend's `type` (free text: "ip", "dvr", …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A `type` as given: trimmed; `None` when blank.
pub fn kind(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// Whether a `type` may be stored: at most [`MAX_KIND`] characters, no control characters.
pub fn kind_allowed(k: &str) -> bool {
    k.chars().count() <= MAX_KIND && !k.chars().any(char::is_control)
}

/// A camera's name: the one given unless blank, else "Camera <id>".
pub fn name_or_default(name: Option<&str>, id: &str) -> String {
    name.filter(|n| !n.trim().is_empty())
        .map_or_else(|| format!("Camera {id}"), str::to_string)
}

fn brand(s: Option<&str>) -> Result<Option<Brand>> {
    s.map(|b| {
        Brand::from_input(b, templates::is_configured).ok_or_else(|| {
            let names: Vec<&str> = templates::brands().iter().map(|b| b.as_str()).collect();
            Error::bad_request(format!("brand must be one of {}", names.join(", ")))
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
    pub fn address(ip: &str, channel: u32) -> CameraRequest {
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
        if let Some(k) = &self.kind {
            if !kind_allowed(k) {
                return Err(Error::bad_request(format!(
                    "type must be text of at most {MAX_KIND} characters"
                )));
            }
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

/// Adds, changes and deletes cameras.
pub struct Cameras {
    pub store: DynStore,
    pub sealer: Sealer,
    pub clock: Arc<dyn Clock>,
    pub fleet: Arc<Fleet>,
    pub streams: Arc<Streams>,
    pub recordings: Arc<Recordings>,
    pub discovery: Arc<Discovery>,
}

impl Cameras {
    /// The cameras with these ids (those that exist), or every camera for `None`.
    /// The ids of every camera (no rows read beyond their keys).
    pub async fn ids(&self) -> Result<Vec<String>> {
        Ok(self.store.camera_ids().await?)
    }

    pub async fn list(&self, ids: Option<Vec<String>>) -> Result<Vec<Camera>> {
        let Some(ids) = ids else {
            return Ok(self.store.cameras().await?);
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.store.camera(&id).await?);
        }
        Ok(out)
    }

    /// Adds a camera. With only its address (and channel), a device a discovery scan found
    /// within `CACHE_TTL` gets the brand, port, stream URL and credentials the scan found.
    pub async fn add(&self, mut req: CameraRequest) -> Result<Camera> {
        req.check()?;
        let ip = camera::normalize_address(
            req.ip
                .as_deref()
                .ok_or_else(|| Error::bad_request("'ip' is required"))?,
        )?;
        let channel = req.channel.unwrap_or(1);
        if req.rtsp_url.is_none() && req.brand.is_none() && req.port.is_none() {
            if let Some((b, port, url, login)) = self.discovery.lookup(&self.sealer, &ip, channel) {
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
        let node = self.fleet.owner_for_new(req.node.as_deref()).await?;
        let cam = Camera {
            node,
            rtsp_url_sealed: self.sealer.seal(&id, &rtsp)?,
            rtsp_url_display: url::masked(&rtsp),
            name: name_or_default(req.name.as_deref(), &id),
            id,
            ip,
            channel,
            brand,
            port,
            transport: transport(req.transport.as_deref())?.unwrap_or(Transport::Tcp),
            is_active: req.is_active.unwrap_or(true),
            last_seen: None,
            is_recording: false,
            created_at: self.clock.now(),
            kind: kind(req.kind.as_deref())
                .unwrap_or_else(|| Camera::default_kind(channel).to_string()),
        };
        Ok(self.store.create_camera(cam).await?)
    }

    /// Changes a camera. Its address and channel are its id and cannot change. A new URL,
    /// credentials, brand or port are sealed again (credentials kept when only the template
    /// changes); settings that make the session different (URL, transport, switched off)
    /// stop its recording and its session, so the next viewer starts one with the new
    /// settings; a new node gets it handed over.
    pub async fn update(&self, cam: &Camera, req: CameraRequest) -> Result<Camera> {
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
            Some(n) if n != cam.node => Some(self.fleet.check_target(n).await?),
            _ => None,
        };
        let mut patch = CameraPatch {
            node: node.clone(),
            name: req.name.clone().filter(|n| !n.trim().is_empty()),
            brand: new_brand,
            port: req.port,
            transport: transport(req.transport.as_deref())?,
            is_active: req.is_active,
            kind: kind(req.kind.as_deref()),
            ..Default::default()
        };
        let url_touched = req.rtsp_url.is_some()
            || req.username.is_some()
            || req.password.is_some()
            || new_brand.is_some()
            || req.port.is_some();
        if url_touched {
            let rtsp = self.changed_url(cam, &req, new_brand)?;
            patch.rtsp_url = Some((self.sealer.seal(&cam.id, &rtsp)?, url::masked(&rtsp)));
        }
        let reconnect =
            patch.rtsp_url.is_some() || patch.transport.is_some() || patch.is_active == Some(false);
        let cam = self.store.update_camera(&cam.id, patch).await?;
        if let Some(to) = &node {
            tracing::info!(camera = %cam.id, to = %to, "camera moved to another node");
            self.fleet.moved(&cam.id, to);
        }
        if reconnect {
            // the next viewer starts a session with the new settings; a recording stops
            let _ = self
                .recordings
                .stop(&cam.id, "the camera's settings changed");
            self.streams.kill(&cam.id);
        }
        Ok(cam)
    }

    /// The RTSP URL a change makes: the one given (with the credentials given), or the
    /// current one rebuilt from the template when brand or port changed (keeping its
    /// credentials), with new credentials set where given.
    fn changed_url(
        &self,
        cam: &Camera,
        req: &CameraRequest,
        new_brand: Option<Brand>,
    ) -> Result<String> {
        let current = self.sealer.open(&cam.id, &cam.rtsp_url_sealed)?;
        let brand = new_brand.unwrap_or(cam.brand);
        let port = req.port.unwrap_or(cam.port);
        Ok(if req.rtsp_url.is_some() {
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
        })
    }

    /// Adds every channel a recent discovery scan found at address `ip` that is not a camera
    /// yet (every channel of a DVR); the ids of those cameras, empty when the scan found
    /// nothing there.
    pub async fn add_found(&self, ip: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let channels = self.discovery.channels(ip);
        let dvr = channels.len() > 1;
        for ch in channels {
            let id = camera::camera_id(ip, ch);
            if self.store.camera(&id).await?.is_none() {
                self.add(CameraRequest {
                    kind: dvr.then(|| "dvr".to_string()),
                    ..CameraRequest::address(ip, ch)
                })
                .await?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// The old backend's flow, discover then stream: camera `id` (an address, or
    /// `<ip>-ch<N>`) that does not exist gets what a recent scan found at its address added.
    /// Whether the scan knew the address.
    pub async fn adopt(&self, id: &str) -> Result<bool> {
        Ok(!self.add_found(camera::address_of(id)).await?.is_empty())
    }

    /// Deletes a camera: its recording stops, its row goes, its session closes.
    pub async fn delete(&self, cam: &Camera) -> Result<()> {
        let _ = self.recordings.stop(&cam.id, "the camera was deleted");
        self.store.delete_camera(&cam.id).await?;
        self.streams.kill(&cam.id);
        Ok(())
    }
}
