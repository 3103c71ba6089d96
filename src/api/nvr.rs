//! `/api/nvr`: PC-NVR recordings (the old backend's paths and shapes). Starting, stopping and
//! deleting need `Record`/`DeleteRecordings` on the camera; listing, status and downloads need
//! `ViewRecordings`; all through the one permission check. Downloads honour `Range`.

use std::io::SeekFrom;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    RANGE,
};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::response::{self, Body};
use super::{Ctx, Placed};
use crate::auth::jwt::PlayerScope;
use crate::auth::{recording_limit, Action};
use crate::error::{Error, Kind, Result};
use crate::media::ingest::Source;
use crate::store::{Camera, Recording, RecordingFilter};

/// Longest fixed duration a recording may ask for (a week; continuous has none).
const MAX_DURATION_SECS: u64 = 7 * 86400;
const MAX_BATCH: usize = 256;
const MAX_LIMIT: usize = 1000;

/// Download links carry a token good for that one recording for an hour (players and
/// `<video src>` cannot send headers).
const DOWNLOAD_TTL_SECS: i64 = 3600;

fn view(r: &Recording) -> serde_json::Value {
    json!({
        "id": r.id,
        "camera_ip": r.camera_id,
        "user_id": r.user_id,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "duration_sec": r.duration_sec,
        "file_size": r.file_size,
        "status": r.status.as_str(),
        "continuous": r.continuous,
        "note": r.note,
        "node": r.node,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    duration: Option<u64>,
}

/// A fixed duration of 1 s to [`MAX_DURATION_SECS`], or none (continuous).
fn check_duration(duration: Option<u64>) -> Result<()> {
    if duration.is_some_and(|d| d == 0 || d > MAX_DURATION_SECS) {
        return Err(Error::bad_request(format!(
            "duration must be 1 to {MAX_DURATION_SECS} seconds"
        )));
    }
    Ok(())
}

/// Camera `id`, if the caller may record it here and it is enabled (the redirect to its node
/// otherwise): the one permission check, before any body is read.
async fn recordable(c: &Ctx, id: &str) -> Result<Placed<Camera>> {
    let placed = c.camera_here(id, Action::Record).await?;
    if let Placed::Here(cam) = &placed {
        if !cam.is_active {
            return Err(Error::conflict(format!(
                "camera {id} is disabled (is_active is false)"
            )));
        }
    }
    Ok(placed)
}

/// Starts recording `cam` for the caller (a `duration` already checked): the recording's id.
async fn begin(c: &Ctx, cam: &Camera, duration: Option<u64>) -> Result<i64> {
    let user = c.user()?;
    let limit = recording_limit(user, c.app.config.max_recordings_per_user);
    let src = Source::of(&c.app.sealer, cam)?;
    Ok(c.app
        .recordings
        .start(
            src,
            Some(user.id),
            duration.map(std::time::Duration::from_secs),
            limit,
        )
        .await?)
}

pub async fn start(c: Ctx) -> Result<Response<Body>> {
    // who may record it is answered before what the body says (a viewer gets 403, not 400)
    let cam = match recordable(&c, c.param(0)).await? {
        Placed::Here(cam) => cam,
        Placed::Elsewhere(r) => return Ok(response::redirect(&r)),
    };
    let req: StartRequest = if c.body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        c.json()?
    };
    check_duration(req.duration)?;
    let id = begin(&c, &cam, req.duration).await?;
    Ok(response::json(
        201,
        &json!({ "message": "Recording started", "recording_id": id }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    ips: Vec<String>,
    duration: Option<u64>,
}

pub async fn batch(c: Ctx) -> Result<Response<Body>> {
    let req: BatchRequest = c.json()?;
    if req.ips.is_empty() || req.ips.len() > MAX_BATCH {
        return Err(Error::bad_request(format!(
            "'ips' must name 1 to {MAX_BATCH} cameras"
        )));
    }
    // a bad duration is the request's fault, not each camera's
    check_duration(req.duration)?;
    let mut results = Vec::new();
    for ip in &req.ips {
        let started = match recordable(&c, ip.trim()).await {
            Ok(Placed::Here(cam)) => begin(&c, &cam, req.duration).await.map(Placed::Here),
            Ok(Placed::Elsewhere(r)) => Ok(Placed::Elsewhere(r)),
            Err(e) => Err(e),
        };
        results.push(match started {
            Ok(Placed::Here(id)) => json!({ "ip": ip, "status": "started", "recording_id": id }),
            Ok(Placed::Elsewhere(r)) => response::batch_redirect(ip, &r),
            Err(e) => response::batch_error(ip, &e),
        });
    }
    Ok(response::ok(&json!({ "results": results })))
}

pub async fn stop(c: Ctx) -> Result<Response<Body>> {
    let id = c.param(0);
    if let Placed::Elsewhere(r) = c.camera_here(id, Action::Record).await? {
        return Ok(response::redirect(&r));
    }
    c.app.recordings.stop(id, "stopped by a user")?;
    // wait (briefly) for the file and row to be final, so a list right after shows it
    for _ in 0..100 {
        if c.app.recordings.status(id).is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(response::message(200, "Recording stopped"))
}

pub async fn status(c: Ctx) -> Result<Response<Body>> {
    let id = c.param(0);
    if let Placed::Elsewhere(r) = c.camera_here(id, Action::ViewRecordings).await? {
        return Ok(response::redirect(&r));
    }
    Ok(response::ok(&match c.app.recordings.status(id) {
        Some((rid, elapsed)) => {
            json!({ "is_recording": true, "elapsed_sec": (elapsed * 10.0).round() / 10.0, "recording_id": rid })
        }
        None => json!({ "is_recording": false, "elapsed_sec": null, "recording_id": null }),
    }))
}

/// An ISO 8601 date or date-time (UTC when no offset is given).
fn when(name: &str, v: Option<String>) -> Result<Option<DateTime<Utc>>> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M:%S") {
        return Ok(Some(t.and_utc()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(Error::bad_request(format!(
        "{name} must be an ISO 8601 date or date-time, e.g. 2026-11-27 or 2026-11-27T10:00:00Z"
    )))
}

fn count(c: &Ctx, name: &str, default: usize, max: usize) -> Result<usize> {
    match c.query_param(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                Error::bad_request(format!("{name} must be a whole number up to {max}"))
            }),
    }
}

/// Deepest `offset` of a listing: each skipped row is read, so deeper pages are asked for by
/// date (`start_date`/`end_date`) instead.
const MAX_OFFSET: usize = 10_000;

pub async fn list(c: Ctx) -> Result<Response<Body>> {
    let camera_ids = match c.query_param("camera_ip").filter(|v| !v.is_empty()) {
        Some(cam) => {
            c.authorize(Action::ViewRecordings, Some(&cam)).await?;
            Some(vec![cam])
        }
        None => c.visible_camera_ids(Action::ViewRecordings).await?,
    };
    let mut until = when("end_date", c.query_param("end_date"))?;
    if let (Some(u), Some(v)) = (until, c.query_param("end_date")) {
        // a bare date means the whole day
        if v.len() == 10 {
            until = Some(u + chrono::Duration::days(1));
        }
    }
    let filter = RecordingFilter {
        camera_ids,
        since: when("start_date", c.query_param("start_date"))?,
        until,
        limit: count(&c, "limit", 100, MAX_LIMIT)?,
        offset: count(&c, "offset", 0, MAX_OFFSET)?,
    };
    let rows = c.app.recordings.list(&filter).await?;
    let total = c.app.recordings.count(&filter).await?;
    // rows may have come or gone between the two reads: the next page is where this one ends
    let end = (filter.offset + rows.len()) as u64;
    let next_offset = (!rows.is_empty() && end < total && end <= MAX_OFFSET as u64).then_some(end);
    let mut list = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut v = view(r);
        if let Some(claims) = &c.claims {
            let t = c.app.tokens.issue_player(
                claims,
                PlayerScope::Recording,
                &r.id.to_string(),
                Some(DOWNLOAD_TTL_SECS),
            )?;
            v["download_url"] = json!(format!("/api/nvr/recordings/{}/download?t={t}", r.id));
        }
        list.push(v);
    }
    Ok(response::ok(&json!({
        "recordings": list,
        "total": total,
        "next_offset": next_offset,
    })))
}

/// The recording named by the path, if the caller may act on its camera with `action`;
/// where to go instead when its file is on another node.
async fn recording_for(c: &Ctx, action: Action) -> Result<Placed<Recording>> {
    let raw = c.param(0);
    let nf = || {
        Error::not_found(format!(
            "recording {} not found",
            crate::camera::truncate(raw, 32)
        ))
    };
    let id: i64 = raw.parse().map_err(|_| nf())?;
    let r = c.app.recordings.get(id).await?;
    // a non-admin refused gets one answer whether the recording exists or not, naming no camera
    let hidden = |e: Error| match e.kind {
        crate::error::Kind::Forbidden => Error::forbidden(format!(
            "recording {} is not among those you may see",
            crate::camera::truncate(raw, 32)
        )),
        _ => e,
    };
    match r {
        Some(r) => {
            c.authorize(action, Some(&r.camera_id))
                .await
                .map_err(hidden)?;
            // the file is on the disk of the node that wrote it
            let redirect = c.on_node(&r.node, &format!("recording {id}")).await?;
            Ok(Placed::new(r, redirect))
        }
        None => {
            c.authorize(action, Some("")).await.map_err(hidden)?;
            Err(nf())
        }
    }
}

/// Parses a single `bytes=` range against `len`: `Ok(None)` for no header, `Err` for 416.
fn range(h: Option<&str>, len: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(h) = h else { return Ok(None) };
    let spec = h.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(()); // one range at a time
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub async fn download(c: Ctx) -> Result<Response<Body>> {
    let r = match recording_for(&c, Action::ViewRecordings).await? {
        Placed::Here(r) => r,
        Placed::Elsewhere(r) => return Ok(response::redirect(&r)),
    };
    let path = c.app.recordings.cfg.root.join(&r.path);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::not_found(format!("the file of recording {} is gone", r.id)))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| Error::failed(path.display(), e))?
        .len();
    let req_range = c.headers.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range(req_range, len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut resp = response::error(&Error::new(
                Kind::RangeNotSatisfiable,
                format!("the file has {len} bytes"),
            ));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let want = if len == 0 { 0 } else { end - start + 1 };
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    let stream = futures_util::stream::unfold((file, want), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok(hyper::body::Frame::data(Bytes::from(buf))),
                    (f, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(want));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    let name: String = r
        .camera_id
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let file_name = format!("{name}-{}.mp4", r.start_time.format("%Y%m%dT%H%M%SZ"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub async fn delete(c: Ctx) -> Result<Response<Body>> {
    let r = match recording_for(&c, Action::DeleteRecordings).await? {
        Placed::Here(r) => r,
        Placed::Elsewhere(r) => return Ok(response::redirect(&r)),
    };
    c.app.recordings.delete(&r).await?;
    Ok(response::message(200, "Recording deleted"))
}
