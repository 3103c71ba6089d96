//! A real browser: headless Chromium (Debian's) with hls.js plays the `hls_url` of an
//! independent H.264+AAC camera (GStreamer), and currentTime advances with no fatal hls.js
//! error. ffprobe accepting a stream does not mean a browser's MSE does. It also prints how
//! long a click waits for the first picture (stream API call to the first `playing` event, on
//! an idle camera) and how far behind live the player runs (from EXT-X-PROGRAM-DATE-TIME),
//! which the benchmark notes record.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::cams::GstCams;
use support::{free_port, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_with_hls_js_plays_the_live_view() {
    let dir = support::browser_dir("hls.js");
    let cams = GstCams::start();
    // the RTSP server's first client pays for loading GStreamer's plugins: once, on a busy
    // machine, the camera sent its first frame 5 s after vigia asked (first picture 5.8 s,
    // 2026-12-02). A real camera's encoder is always running: one client is served first.
    let probe = support::cams::ffprobe_streams(&cams.url("h264gop2"));
    assert_eq!(probe[0].0, "h264", "{probe:?}");
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    // every HLS request in the log (with how long each took), for a failure's diagnosis
    let s = Server::start_with(&[
        ("ALLOWED_ORIGINS", &origin),
        ("LOG_LEVEL", "info,vigia::http=debug"),
    ]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.20", "rtsp_url": cams.url("h264gop2")}),
    )
    .await;
    // the page asks for the idle camera's stream itself, as a click would; two more players
    // join while the camera is starting (a 2 s GOP: its first key frame arrives a few hundred
    // ms after the click, the next 2 s later), when the live edge lies in the segments after
    // the short first one, which do not begin with a key frame. (Five players of one camera in
    // one page, as this test had, now and then froze one of them 3-6 s at a segment's end on a
    // busy machine — its request for the segment's last part never reached the server while
    // the others' did: Chromium's six connections per host and its cache lock, shared by every
    // LL-HLS player of the page. Three keep within that; a grid of many live tiles over
    // HTTP/1.1 would not, which the web page has to plan for.)
    let api = s.url("/api/cameras/stream/127.0.0.20");
    let out = Command::new("node")
        .current_dir(dir)
        .args([
            "play.mjs",
            &api,
            &page_port.to_string(),
            "8",
            &admin,
            "0,700,1400",
        ])
        .output()
        .unwrap_or_else(|e| panic!("node: {e}; install: {}", support::BROWSER_INSTALL));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    // the whole record (every player's hls.js events) goes to a file; failures quote a summary
    let record = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-last.json");
    std::fs::write(record, r.to_string()).unwrap();
    let server_log = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-server.log");
    std::fs::write(server_log, s.logs()).unwrap();
    let summary = summarize(&r);
    eprintln!(
        "browser: {summary}\nbrowser: every event in {record}, the server's log in {server_log}"
    );
    assert_eq!(r["fatal"], Value::Null, "hls.js fatal error: {summary}");
    assert_eq!(r["started"], true, "{summary}");
    // an idle camera: the playlist is playable ~0.2 s after the first key frame and hls.js
    // starts at it: 0.70-0.74 s here on an idle machine, 1.6-1.8 s with both cores busy (the
    // server's part of it, the first playlist within 0.5 s of the first key frame, is timed
    // without a browser in tests/live.rs); the bound is what a person clicking would accept
    let first = r["firstPlayingMs"].as_f64().unwrap_or(f64::INFINITY);
    eprintln!("browser: first `playing` {first:.0} ms after asking for the idle camera's stream");
    assert!(
        first < 4000.0,
        "first picture after {first:.0} ms: {summary}"
    );
    // players joining while the first GOP's segments (which begin between key frames) are the
    // live edge, told nothing, started in them and skipped ahead; told where the key frame is
    // (EXT-X-START, checked in tests/live.rs), each starts at once at the key frame and plays
    // on. On a loaded machine hls.js may still report a non-fatal `bufferAppendNoProgress`
    // while it starts; what a person sees is judged: a prompt start, at the key frame, no stall
    for p in r["players"].as_array().unwrap() {
        let first = p["firstPlayingMs"].as_f64().unwrap_or(f64::INFINITY);
        assert!(
            first < 4000.0,
            "a joining player waited {first} ms: {summary}"
        );
        let at = events(p, "playing")
            .first()
            .copied()
            .unwrap_or(f64::INFINITY);
        assert!(
            // (the `playing` handler runs up to a few hundred ms late on a busy machine;
            // starting at the live edge instead would be ≥ 0.8 s into the first GOP)
            at < 0.6 || (2.0..2.6).contains(&at),
            "a joining player started at {at} s, not at a key frame (0 or 2 s): {summary}"
        );
    }
    // where the first GOP ends every early player waited 0.5-1.5 s once (advanced 6.6-7.4 s of
    // ~8.4) while the next segment's parts were not taken up: the median player catches that;
    // a single hiccup of one player on a busy machine (0.3-0.6 s at a segment's end) passes,
    // a freeze of any player does not
    let mut advanced: Vec<f64> = r["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["advanced"].as_f64().unwrap_or(0.0))
        .collect();
    advanced.sort_by(f64::total_cmp);
    assert!(
        advanced[advanced.len() / 2] > 7.5,
        "the players advanced too little (a stall): {summary}"
    );
    assert!(advanced[0] > 6.5, "a player froze: {summary}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{summary}"
    );
    let mut lat: Vec<f64> = r["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    lat.sort_by(f64::total_cmp);
    let median = lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN);
    eprintln!("browser: median {median:.2} s behind live");
    assert!(median < 5.0, "far behind live: {summary}");
}

/// The media positions at which one player's `kind` events (`playing`, `waiting`) happened.
fn events(player: &Value, kind: &str) -> Vec<f64> {
    player["log"]
        .as_array()
        .map(|log| {
            log.iter()
                .filter(|e| e[1] == kind)
                .filter_map(|e| e[2].as_f64())
                .collect()
        })
        .unwrap_or_default()
}

/// One line per player: when it joined, its first picture, where it started, how far it
/// played, its stalls (media positions) and its hls.js errors counted by kind.
fn summarize(r: &Value) -> String {
    let mut out = String::new();
    for p in r["players"].as_array().into_iter().flatten() {
        let mut errors = std::collections::BTreeMap::<String, usize>::new();
        for e in p["errors"].as_array().into_iter().flatten() {
            *errors
                .entry(e.as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        out.push_str(&format!(
            "\n  joined {} ms: first picture {} ms at {:?} s, advanced {:.2} s, stalls at {:?}, errors {errors:?}",
            p["joinedMs"],
            p["firstPlayingMs"].as_f64().map_or("never".into(), |v| format!("{v:.0}")),
            events(p, "playing").first(),
            p["advanced"].as_f64().unwrap_or(0.0),
            events(p, "waiting").iter().skip(1).collect::<Vec<_>>(),
        ));
    }
    format!(
        "fatal {}, started {}, {}x{}, behind live {:?}{out}",
        r["fatal"], r["started"], r["width"], r["height"], r["latencies"]
    )
}
