//! Live view: `GET/DELETE /api/cameras/stream/<camera>`, `POST /api/cameras/streams/batch`,
//! and the HLS files `GET /api/cameras/streams/<camera>/<file>` served from RAM.
//!
//! The `hls_url` handed out carries a player token (`?t=`) good for that camera's HLS files
//! only, so players that cannot send headers (Safari, VLC, ffplay, `<video src>`) can play
//! it. Every URI in the playlists it gets carries the same token.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use super::response::{self, Body};
use super::{Ctx, Placed};
use crate::auth::jwt::PlayerScope;
use crate::auth::Action;
use crate::error::{Error, Kind, Result};
use crate::media::ingest::Source;

/// Most cameras one batch request may name.
const MAX_BATCH: usize = 256;

/// Starts (or joins) the camera's session and returns its `hls_url` and state.
async fn start_one(c: &Ctx, id: &str) -> Result<Placed<serde_json::Value>> {
    let placed = match c.camera_here(id, Action::Watch).await {
        // discover, then stream (the old backend's flow): an admin's request for an address
        // a recent scan found adds it, as assigning it does
        Err(e)
            if e.kind == Kind::NotFound
                && c.authorize(Action::ManageCameras, None).await.is_ok()
                && c.app.cameras.adopt(id).await? =>
        {
            c.camera_here(id, Action::Watch).await?
        }
        r => r?,
    };
    let cam = match placed {
        Placed::Here(cam) => cam,
        Placed::Elsewhere(r) => return Ok(Placed::Elsewhere(r)),
    };
    if !cam.is_active {
        return Err(Error::conflict(format!(
            "camera {id} is disabled (is_active is false)"
        )));
    }
    let live = c
        .app
        .streams
        .start(Source::of(&c.app.sealer, &cam)?, true)?;
    let claims = c
        .claims
        .as_ref()
        .ok_or_else(|| Error::unauthorized("a login token is required"))?;
    let hls_url = hls_url(c, claims, &cam.id)?;
    Ok(Placed::Here(
        json!({ "camera": cam.id, "hls_url": hls_url, "state": live.state() }),
    ))
}

/// The caller's playable URL of camera `id`: its playlist with a player token for it, on the
/// host (and scheme) the caller used.
pub fn hls_url(c: &Ctx, claims: &crate::auth::jwt::Claims, id: &str) -> Result<String> {
    let token = c
        .app
        .tokens
        .issue_player(claims, PlayerScope::Camera, id, None)?;
    let path = format!("/api/cameras/streams/{id}/index.m3u8?t={token}");
    Ok(match c.headers.get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => {
            let scheme = if c.app.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}{path}")
        }
        None => path,
    })
}

pub async fn start(c: Ctx) -> Result<Response<Body>> {
    let id = c.param(0).to_string();
    let mut v = match start_one(&c, &id).await? {
        Placed::Here(v) => v,
        Placed::Elsewhere(r) => return Ok(response::redirect(&r)),
    };
    v["message"] = json!("Stream started");
    Ok(response::ok(&v))
}

pub async fn stop(c: Ctx) -> Result<Response<Body>> {
    let id = c.param(0);
    if let Placed::Elsewhere(r) = c.camera_here(id, Action::Watch).await? {
        return Ok(response::redirect(&r));
    }
    if c.app.streams.stop(id)? {
        Ok(response::message(200, "Stream stopped"))
    } else {
        Ok(response::message(
            200,
            "Stream kept running: a recording uses it",
        ))
    }
}

#[derive(Deserialize)]
struct Batch {
    ips: Vec<String>,
}

pub async fn batch(c: Ctx) -> Result<Response<Body>> {
    let req: Batch = c.json()?;
    if req.ips.is_empty() || req.ips.len() > MAX_BATCH {
        return Err(Error::bad_request(format!(
            "'ips' must name 1 to {MAX_BATCH} cameras"
        )));
    }
    let mut results = Vec::with_capacity(req.ips.len());
    for ip in &req.ips {
        let ip = ip.trim();
        results.push(match start_one(&c, ip).await {
            Ok(Placed::Here(v)) => json!({ "ip": ip, "status": "started", "hls_url": v["hls_url"], "state": v["state"] }),
            Ok(Placed::Elsewhere(r)) => response::batch_redirect(ip, &r),
            Err(e) => response::batch_error(ip, &e),
        });
    }
    Ok(response::ok(&json!({ "results": results })))
}

fn number(c: &Ctx, name: &str) -> Result<Option<u64>> {
    c.query_param(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Error::bad_request(format!("{name} must be a whole number")))
        })
        .transpose()
}

fn chunks_body(chunks: Vec<Bytes>) -> Body {
    let frames = chunks
        .into_iter()
        .map(|b| Ok::<_, std::io::Error>(hyper::body::Frame::data(b)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// Serves one file of the camera's live window. A playlist asked of the camera's node while
/// nothing pulls it (the camera just moved here, or the session timed out) starts the session,
/// so a player carries on through a move.
pub async fn file(c: Ctx) -> Result<Response<Body>> {
    let (id, name) = (c.param(0), c.param(1));
    let live = match c.app.streams.get(id) {
        Some(live) => {
            c.authorize(Action::Watch, Some(id)).await?;
            live
        }
        None => {
            let cam = match c.camera_here(id, Action::Watch).await? {
                Placed::Here(cam) => cam,
                Placed::Elsewhere(r) => return Ok(response::redirect(&r)),
            };
            if name != "index.m3u8" || !cam.is_active {
                return Err(Error::not_found(format!(
                    "camera {id} is not streaming; start it with GET /api/cameras/stream/{id}"
                )));
            }
            c.app
                .streams
                .start(Source::of(&c.app.sealer, &cam)?, true)?
        }
    };
    live.touch();
    live.seen(c.peer.ip());
    live.want_hls();
    let query = c
        .query_param("t")
        .map(|t| format!("?t={t}"))
        .unwrap_or_default();
    if name == "index.m3u8" {
        let text = live
            .playlist(number(&c, "_HLS_msn")?, number(&c, "_HLS_part")?, &query)
            .await?;
        let mut r = Response::new(response::full(text));
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apple.mpegurl"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(r);
    }
    let f = live.hls.file(name).await?;
    let len: usize = f.chunks.iter().map(Bytes::len).sum();
    let mut r = Response::new(chunks_body(f.chunks));
    let h = r.headers_mut();
    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(f.content_type));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600, immutable"),
    );
    Ok(r)
}
