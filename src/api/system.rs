//! `/health` (no token: is the service able to work?) and `/stats` (any token: uptime,
//! counts, memory, disk; per-camera detail only for cameras the caller may watch).

use std::path::Path;

use hyper::Response;
use serde_json::json;

use super::response::{self, Body};
use super::Ctx;
use crate::auth::Action;
use crate::error::{Error, Result};
use crate::store::Role;

/// Whether `dir` can be written: access(2) W_OK and not on a read-only mount.
fn writable(dir: &Path) -> std::result::Result<(), String> {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let st =
        nix::sys::statvfs::statvfs(dir).map_err(|e| format!("statvfs {}: {e}", dir.display()))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(format!("{} is on a read-only file system", dir.display()));
    }
    Ok(())
}

pub async fn health(c: Ctx) -> Result<Response<Body>> {
    if let Err(e) = c.app.store_answers().await {
        return Err(Error::unavailable(format!(
            "the store does not answer: {}",
            e.message
        )));
    }
    if let Err(e) = writable(&c.app.config.data_dir) {
        return Err(Error::unavailable(format!("data directory: {e}")));
    }
    // a fresh box: the web page offers to create the first admin instead of a login
    let needs_first_admin = c.app.users.unclaimed().await?;
    Ok(response::ok(&json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "store": "ok", "data_dir": "writable" },
        "needs_first_admin": needs_first_admin,
    })))
}

/// `GET /stats`: with a token, the figures and the cameras the caller may watch; without
/// one (the old backend served it to anyone), the aggregate figures only: no camera ids or
/// names, no per-camera state.
pub async fn stats(c: Ctx) -> Result<Response<Body>> {
    if c.user.is_none() {
        let all = c.app.cameras.list(None).await?;
        return Ok(response::ok(&aggregate(&c, &all)));
    }
    let user = c.authorize(Action::ViewStats, None).await?;
    let cams = c.visible_cameras(Action::Watch).await?;
    let detail: Vec<_> = cams
        .iter()
        .map(|cam| {
            json!({
                "id": cam.id, "name": cam.name, "is_active": cam.is_active,
                "is_recording": cam.is_recording, "last_seen": cam.last_seen,
                "stream": c.app.streams.state(&cam.id),
                "sessions_opened": c.app.streams.sessions(&cam.id),
            })
        })
        .collect();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let rec = &c.app.recordings.counters;
    let mut body = aggregate(&c, &cams);
    body["cameras"]["detail"] = json!(detail);
    let streams = &mut body["streams"];
    streams["hls_window_bytes"] = json!(c.app.streams.window_bytes());
    streams["segment_buffers"] = segment_buffers();
    streams["part_publish_ms"] = json!(c
        .app
        .streams
        .publish_latency_ms()
        .map(|(p50, p99, n)| json!({"p50": p50, "p99": p99, "samples": n})));
    let recordings = &mut body["recordings"];
    recordings["frames_in"] = json!(rec.frames_in.load(relaxed));
    recordings["frames_out"] = json!(rec.frames_out.load(relaxed));
    recordings["payload_bytes"] = json!(rec.payload_out.load(relaxed));
    recordings["file_bytes"] = json!(rec.file_bytes.load(relaxed));
    body["http"] = json!({
        "connections_open": c.app.connections.open(),
        "refused_over_per_ip_cap": c.app.connections.refused.load(relaxed),
        "closed_for_timeout": c.app.connections.timed_out.load(relaxed),
    });
    body["limits"] = json!({
        "max_streams": c.app.config.max_streams,
        "max_connections": crate::config::MAX_CONNECTIONS,
        "max_connections_per_ip": c.app.config.max_connections_per_ip,
    });
    if user.role == Role::Admin {
        body["users"] = json!(c.app.users.count().await?);
    }
    Ok(response::ok(&body))
}

/// What `/stats` tells anyone on the LAN about `cams`: counts, uptime, memory and disk.
fn aggregate(c: &Ctx, cams: &[crate::store::Camera]) -> serde_json::Value {
    json!({
        "uptime_sec": c.app.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "cameras": {
            "total": cams.len(),
            "active": cams.iter().filter(|c| c.is_active).count(),
            "recording": cams.iter().filter(|c| c.is_recording).count(),
        },
        "streams": {
            "active": c.app.streams.active(),
            "max": c.app.config.max_streams,
        },
        "recordings": { "running": c.app.recordings.running() },
        "memory": { "rss_bytes": crate::system::host::rss_bytes() },
        "disk": { "data_dir": disk_json(&c.app.config.data_dir) },
    })
}

fn disk_json(p: &Path) -> Option<serde_json::Value> {
    crate::system::host::disk_space(p)
        .map(|(total, free)| json!({ "total_bytes": total, "free_bytes": free }))
}

/// `GET /api/nodes` (admins): every box that shares this store, its last heartbeat, and the
/// cameras it owns, pulls and records.
pub async fn nodes(c: Ctx) -> Result<Response<Body>> {
    c.authorize(Action::ManageCameras, None).await?;
    let nodes = c.app.fleet.nodes().await?;
    let cams = c.app.cameras.list(None).await?;
    let stale = c.app.fleet.stale.as_secs_f64();
    let list: Vec<_> = nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "url": n.url,
                "online": n.age_secs <= stale,
                "last_heartbeat": n.heartbeat,
                "heartbeat_age_sec": (n.age_secs * 10.0).round() / 10.0,
                "started_at": n.started_at,
                "version": n.version,
                "cameras": cams.iter().filter(|cam| cam.node == n.name).count(),
                "live": n.live,
                "recording": n.recording,
                "this_node": n.name == c.app.fleet.me,
            })
        })
        .collect();
    Ok(response::ok(
        &json!({ "nodes": list, "node": c.app.fleet.me }),
    ))
}

/// How often live segments got a pooled buffer (`media::segbuf`).
fn segment_buffers() -> serde_json::Value {
    let (reused, allocated) = crate::media::segbuf::POOL.counts();
    json!({"reused": reused, "allocated": allocated})
}

/// `GET /api/openapi.json` (no token): the document, gzipped at build time.
pub async fn openapi(c: Ctx) -> Result<Response<Body>> {
    super::assets::respond(&super::assets::OPENAPI_JSON, &c.headers, false)
}
