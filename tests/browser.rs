//! A real browser: headless Chromium (Debian's) with hls.js plays the `hls_url` of an
//! independent H.264+AAC camera (GStreamer), and currentTime advances with no fatal hls.js
//! error. ffprobe accepting a stream does not mean a browser's MSE does. It also prints how
//! far behind live the player runs (from EXT-X-PROGRAM-DATE-TIME), which the benchmark
//! notes record.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::cams::GstCams;
use support::{free_port, Server};

const INSTALL: &str = "apt-get install -y --no-install-recommends chromium nodejs npm && (cd tests/browser && npm ci) \
(./scripts/test.sh does this)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_with_hls_js_plays_the_live_view() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && std::path::Path::new(dir)
                .join("node_modules/hls.js")
                .exists(),
        "Chromium or hls.js missing; install: {INSTALL}"
    );
    let cams = GstCams::start();
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let s = Server::start_with(&[("ALLOWED_ORIGINS", &origin)]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.20", "rtsp_url": cams.url("h264aac")}),
    )
    .await;
    let (_, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.0.20",
            Some(&admin),
            Value::Null,
        )
        .await;
    let url = v["hls_url"].as_str().unwrap().to_string();
    let out = Command::new("node")
        .current_dir(dir)
        .args(["play.mjs", &url, &page_port.to_string(), "8"])
        .output()
        .unwrap_or_else(|e| panic!("node: {e}; install: {INSTALL}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    eprintln!("browser: {r}");
    assert_eq!(r["fatal"], Value::Null, "hls.js fatal error: {r}");
    assert_eq!(r["started"], true, "{r}");
    // 8 s of wall time: a stall loop at a segment boundary shows up as less than 6 s played
    assert!(
        r["advanced"].as_f64().unwrap() > 6.0,
        "currentTime advanced too little: {r}"
    );
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
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
    assert!(median < 5.0, "far behind live: {r}");
}
