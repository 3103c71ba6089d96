//! `GET /metrics`: the Prometheus text exposition format, for an admin's token or a scraper's
//! `METRICS_TOKEN`. Everything is read at scrape time from what the service already keeps
//! (atomics of the sessions, recorders and routes, [`crate::metrics`]) plus two store reads
//! (cameras, fleet nodes); nothing is computed per frame for it.

use std::sync::atomic::Ordering::Relaxed;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use super::response::{self, Body};
use super::{Ctx, ROUTES, UNROUTED};
use crate::auth::Action;
use crate::error::Result;
use crate::metrics::{Text, FSYNC, PART_PUBLISH, STORE_POSTGRES, STORE_READ, STORE_WRITE};

/// The content type of the text format, version 0.0.4.
pub const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(c: Ctx) -> Result<Response<Body>> {
    if !c.scraper {
        c.authorize(Action::ReadMetrics, None).await?;
    }
    let cams = c.app.cameras.ids().await?;
    let nodes = c.app.fleet.nodes().await?;
    let mut t = Text::default();
    cameras(&mut t, &c, &cams);
    service(&mut t, &c);
    fleet(&mut t, &c, &nodes);
    process(&mut t, &c);
    let mut r = Response::new(response::full(t.finish()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    Ok(r)
}

/// Per camera (label `camera`: its id): session state, frames and bytes in, sessions opened,
/// reconnects, fan-out skips, viewers, recording.
fn cameras(t: &mut Text, c: &Ctx, cams: &[String]) {
    let lives: Vec<_> = cams
        .iter()
        .map(|id| (id.as_str(), c.app.streams.get(id)))
        .collect();
    t.family(
        "vigia_camera_state",
        "gauge",
        "1, labelled with the state the camera's session is in: idle (not pulled), connecting, live, retrying, unauthorized or unsupported.",
    );
    for (id, live) in &lives {
        let state = live.as_ref().map_or("idle", |l| l.state_name());
        t.sample(
            "vigia_camera_state",
            &[("camera", id), ("state", state)],
            1.0,
        );
    }
    t.family(
        "vigia_camera_recording",
        "gauge",
        "1 while a recording of the camera runs.",
    );
    for id in cams {
        let v = f64::from(u8::from(c.app.recordings.status(id).is_some()));
        t.sample("vigia_camera_recording", &[("camera", id)], v);
    }
    type Read = fn(&crate::media::streams::Live) -> f64;
    let per_session: [(&str, &str, &str, Read); 6] = [
        (
            "vigia_camera_frames_total",
            "counter",
            "Frames received from the camera by its current session task.",
            |l| l.fanout.frames.load(Relaxed) as f64,
        ),
        (
            "vigia_camera_received_bytes_total",
            "counter",
            "Payload bytes of those frames.",
            |l| l.fanout.bytes.load(Relaxed) as f64,
        ),
        (
            "vigia_camera_sessions_opened_total",
            "counter",
            "RTSP sessions opened for the camera's current pull.",
            |l| l.sessions.load(Relaxed) as f64,
        ),
        (
            "vigia_camera_reconnects_total",
            "counter",
            "Sessions opened after the first one (the camera dropped or froze).",
            |l| l.sessions.load(Relaxed).saturating_sub(1) as f64,
        ),
        (
            "vigia_camera_fanout_skipped_frames_total",
            "counter",
            "Frames a slow consumer (live window or recorder) missed.",
            |l| l.fanout.skipped.load(Relaxed) as f64,
        ),
        (
            "vigia_camera_viewers",
            "gauge",
            "Client addresses that fetched the camera's live files in the last 10 s.",
            |l| l.viewers() as f64,
        ),
    ];
    for (name, kind, help, read) in per_session {
        t.family(name, kind, help);
        for (id, live) in &lives {
            if let Some(l) = live {
                t.sample(name, &[("camera", id)], read(l));
            }
        }
    }
}

/// Live view, recordings, disk, HTTP, logins, store.
fn service(t: &mut Text, c: &Ctx) {
    let app = &c.app;
    t.single(
        "vigia_streams_active",
        "gauge",
        "Camera sessions running.",
        app.streams.active() as f64,
    );
    t.single(
        "vigia_streams_max",
        "gauge",
        "MAX_STREAMS.",
        f64::from(app.config.max_streams),
    );
    t.single(
        "vigia_hls_window_bytes",
        "gauge",
        "Bytes held by every live window in RAM.",
        app.streams.window_bytes() as f64,
    );
    t.family(
        "vigia_part_publish_seconds",
        "histogram",
        "Last frame of an LL-HLS part received to the part listed in the playlist.",
    );
    t.histogram("vigia_part_publish_seconds", &[], &PART_PUBLISH);

    let rec = &app.recordings.counters;
    t.single(
        "vigia_recordings_running",
        "gauge",
        "Recordings being written.",
        app.recordings.running() as f64,
    );
    let written: [(&str, &str, u64); 3] = [
        (
            "vigia_recording_bytes_written_total",
            "Bytes written to recording files (payload and boxes).",
            rec.file_bytes.load(Relaxed),
        ),
        (
            "vigia_recording_frames_written_total",
            "Frames written to recording files.",
            rec.frames_out.load(Relaxed),
        ),
        (
            "vigia_recording_fragments_total",
            "moof+mdat fragments written to recording files.",
            rec.fragments.load(Relaxed),
        ),
    ];
    for (name, help, v) in written {
        t.single(name, "counter", help, v as f64);
    }
    t.family(
        "vigia_recording_fsync_seconds",
        "histogram",
        "fdatasync of a recording file.",
    );
    t.histogram("vigia_recording_fsync_seconds", &[], &FSYNC);
    t.family(
        "vigia_recordings_deleted_total",
        "counter",
        "Recordings the disk watcher deleted, by reason: age (RETENTION_DAYS) or disk_space (MIN_FREE_DISK_MB).",
    );
    let m = &crate::metrics::DELETED_FOR_AGE;
    t.sample(
        "vigia_recordings_deleted_total",
        &[("reason", "age")],
        m.load(Relaxed) as f64,
    );
    let m = &crate::metrics::DELETED_FOR_SPACE;
    t.sample(
        "vigia_recordings_deleted_total",
        &[("reason", "disk_space")],
        m.load(Relaxed) as f64,
    );
    t.single(
        "vigia_recordings_stopped_disk_full_total",
        "counter",
        "Running recordings stopped on a full disk with nothing finished left to delete.",
        crate::metrics::STOPPED_DISK_FULL.load(Relaxed) as f64,
    );
    let dirs = [
        ("data", &app.config.data_dir),
        ("recordings", &app.recordings.cfg.root),
    ];
    let space: Vec<_> = dirs
        .iter()
        .filter_map(|(d, p)| crate::system::host::disk_space(p).map(|s| (*d, s)))
        .collect();
    t.family(
        "vigia_disk_free_bytes",
        "gauge",
        "Free bytes (for an unprivileged writer) of the file system holding DATA_DIR and RECORDINGS_DIR.",
    );
    for (dir, (_, free)) in &space {
        t.sample("vigia_disk_free_bytes", &[("dir", dir)], *free as f64);
    }
    t.family(
        "vigia_disk_size_bytes",
        "gauge",
        "Size of those file systems.",
    );
    for (dir, (total, _)) in &space {
        t.sample("vigia_disk_size_bytes", &[("dir", dir)], *total as f64);
    }

    http(t, c);
    t.single(
        "vigia_login_failures_total",
        "counter",
        "Logins refused for a wrong username or password.",
        crate::metrics::LOGIN_FAILURES.load(Relaxed) as f64,
    );
    t.single(
        "vigia_login_throttled_total",
        "counter",
        "Logins and password changes answered 429 by the throttle.",
        crate::metrics::LOGIN_THROTTLED.load(Relaxed) as f64,
    );
    t.family(
        "vigia_store_operation_seconds",
        "histogram",
        "Store calls: an embedded read or write transaction, or a PostgreSQL call (connection held).",
    );
    for (op, h) in [
        ("read", &STORE_READ),
        ("write", &STORE_WRITE),
        ("postgres", &STORE_POSTGRES),
    ] {
        t.histogram("vigia_store_operation_seconds", &[("op", op)], h);
    }
}

/// Requests by route pattern (never the raw path), and connections.
fn http(t: &mut Text, c: &Ctx) {
    let routes: Vec<(String, &super::RouteStats)> = ROUTES
        .iter()
        .map(|r| (format!("{} {}", r.method, r.path), &r.stats))
        .chain([("unmatched".to_string(), &UNROUTED)])
        .collect();
    t.family(
        "vigia_http_request_duration_seconds",
        "histogram",
        "Requests by route pattern (`unmatched`: no route took it), until the answer's head (a blocking playlist reload waits for its part).",
    );
    // a route's series appear with its first request (as client libraries create them)
    for (route, s) in routes.iter().filter(|(_, s)| s.latency.count() > 0) {
        t.histogram(
            "vigia_http_request_duration_seconds",
            &[("route", route)],
            &s.latency,
        );
    }
    t.family(
        "vigia_http_responses_total",
        "counter",
        "Answers by route pattern and status class.",
    );
    for (route, s) in &routes {
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let n = s.answers[i].load(Relaxed);
            if n > 0 {
                let labels = [("route", route.as_str()), ("code", class)];
                t.sample("vigia_http_responses_total", &labels, n as f64);
            }
        }
    }
    let conns = &c.app.connections;
    t.single(
        "vigia_http_connections_open",
        "gauge",
        "Open HTTP connections.",
        conns.open() as f64,
    );
    t.single(
        "vigia_http_connections_refused_total",
        "counter",
        "Connections refused over MAX_CONNECTIONS_PER_IP.",
        conns.refused.load(Relaxed) as f64,
    );
    t.single(
        "vigia_http_connections_timed_out_total",
        "counter",
        "Connections closed for sending too slowly.",
        conns.timed_out.load(Relaxed) as f64,
    );
}

/// Every box of the fleet that shares the store (this one alone without one).
fn fleet(t: &mut Text, c: &Ctx, nodes: &[crate::store::Node]) {
    t.family(
        "vigia_fleet_heartbeat_age_seconds",
        "gauge",
        "Seconds since each node's last heartbeat, by the store's clock.",
    );
    for n in nodes {
        t.sample(
            "vigia_fleet_heartbeat_age_seconds",
            &[("node", &n.name)],
            n.age_secs,
        );
    }
    let stale = c.app.fleet.stale.as_secs_f64();
    t.family(
        "vigia_fleet_node_online",
        "gauge",
        "1 while a node's heartbeat is younger than NODE_STALE_SECONDS.",
    );
    for n in nodes {
        let v = f64::from(u8::from(n.age_secs <= stale));
        t.sample("vigia_fleet_node_online", &[("node", &n.name)], v);
    }
}

/// The process: memory, descriptors, uptime, version.
fn process(t: &mut Text, c: &Ctx) {
    if let Some(rss) = crate::system::host::rss_bytes() {
        t.single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory.",
            rss as f64,
        );
    }
    if let Some(fds) = crate::system::host::open_fds() {
        t.single(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            fds as f64,
        );
    }
    t.single(
        "vigia_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        c.app.started.elapsed().as_secs_f64(),
    );
    t.family("vigia_build_info", "gauge", "1, labelled with the version.");
    t.sample(
        "vigia_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
}
