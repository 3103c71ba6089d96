//! Fault injection with our camera simulator (`vigia camsim`): a resolution change mid-stream,
//! a stalled camera, Digest authentication, a dropped connection.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::cams::{ffmpeg_decode, ffprobe_streams, Camsim};
use support::{wait_until, Server};

async fn live_camera(s: &Server, admin: &str, ip: &str, body: Value) -> String {
    let mut b = body;
    b["ip"] = json!(ip);
    s.add_camera(admin, b).await;
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/cameras/stream/{ip}"),
            Some(admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["hls_url"].as_str().unwrap().to_string()
}

async fn state(s: &Server, admin: &str, ip: &str) -> Value {
    s.call(
        "GET",
        &format!("/api/cameras/{ip}"),
        Some(admin),
        Value::Null,
    )
    .await
    .1["stream"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_parameters_start_a_new_init_after_a_discontinuity() {
    let cams = Camsim::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let url = live_camera(
        &s,
        &admin,
        "127.0.1.1",
        json!({"rtsp_url": cams.url("cam1/audio/switch4")}),
    )
    .await;
    let first = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(first.contains("init-1.mp4"), "{first}");
    assert_eq!(ffprobe_streams(&url)[0].2, "640x360");
    let pl = wait_until("a new init", 30, async || {
        let pl = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let done = pl.contains("#EXT-X-DISCONTINUITY\n")
            && pl
                .split("init-2.mp4")
                .nth(1)
                .is_some_and(|after| after.contains("#EXTINF"));
        done.then(|| json!(pl))
    })
    .await;
    let pl = pl.as_str().unwrap();
    let after = pl.split("init-2.mp4").nth(1).unwrap();
    assert!(after.contains("#EXTINF"), "{pl}");
    let st = state(&s, &admin, "127.0.1.1").await;
    assert!(st["video"].as_str().unwrap().contains("320x180"), "{st}");
    assert_eq!(
        cams.sessions("cam1"),
        1,
        "parameters changed without a reconnect"
    );
    assert_eq!(ffmpeg_decode(&url, 2), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_camera_is_detected_and_reconnected() {
    let cams = Camsim::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    live_camera(
        &s,
        &admin,
        "127.0.1.2",
        json!({"rtsp_url": cams.url("cam2/stall2")}),
    )
    .await;
    let st = wait_until("the stall to be noticed", 30, async || {
        let st = state(&s, &admin, "127.0.1.2").await;
        (st["state"] == "retrying").then_some(st)
    })
    .await;
    assert!(
        st["last_error"].as_str().unwrap().contains("stalled"),
        "{st}"
    );
    wait_until("a second session", 30, async || {
        (cams.sessions("cam2") >= 2).then_some(Value::Null)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_authentication_and_dropped_connections() {
    let cams = Camsim::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let url = live_camera(
        &s,
        &admin,
        "127.0.1.3",
        json!({"rtsp_url": cams.url("cam3/auth"), "username": "admin", "password": "camsim"}),
    )
    .await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        200,
        "Digest auth works"
    );
    live_camera(
        &s,
        &admin,
        "127.0.1.4",
        json!({"rtsp_url": cams.url("cam4/auth"), "username": "admin", "password": "nope"}),
    )
    .await;
    let st = wait_until("401", 20, async || {
        let st = state(&s, &admin, "127.0.1.4").await;
        (st["state"] == "unauthorized").then_some(st)
    })
    .await;
    assert!(!st.to_string().contains("nope"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cams.sessions("cam4"), 0);
    // a camera that hangs up every 3 s keeps coming back
    live_camera(
        &s,
        &admin,
        "127.0.1.5",
        json!({"rtsp_url": cams.url("cam5/drop3")}),
    )
    .await;
    wait_until("reconnects", 30, async || {
        (cams.sessions("cam5") >= 2).then_some(Value::Null)
    })
    .await;
}

/// A player asking for the playlist of a camera nobody answers for gets, once the first-segment
/// wait is over, a 503 that says what the session is doing and when to ask again (hls.js and
/// Safari retry a 503 with `Retry-After`).
#[tokio::test]
async fn a_playlist_of_an_unreachable_camera_says_why_and_when_to_retry() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let closed = support::free_port();
    let hls = live_camera(
        &s,
        &admin,
        "127.0.0.93",
        json!({"rtsp_url": format!("rtsp://127.0.0.1:{closed}/nothing")}),
    )
    .await;
    // the harness's client gives up sooner than the server's 20 s wait for a first segment
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let resp = patient.get(&hls).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "service_unavailable");
    let why = v["error"].as_str().unwrap();
    assert!(
        why.contains("has not produced a segment yet") && why.contains("session is retrying: "),
        "{why}"
    );
}
