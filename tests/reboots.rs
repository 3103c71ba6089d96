//! Cameras in the field: one that reboots ten times, one whose connection freezes (SIGSTOP),
//! one that answers RTSP but never sends media. Each is watched over LL-HLS and recorded
//! continuously at once, and every outage may cost live view and recording at most
//! (downtime + 1.5 s + one GOP): the retry pacing starts again at its first step after every
//! session that delivered video, and a stall is noticed after max(5 s, 2 GOPs).
//!
//! The cameras are camsim processes (1 s GOP, 25 fps) on a fixed port, killed with SIGKILL
//! and started again, or frozen with SIGSTOP. What is lost is measured from outside: the
//! recorded seconds in the store against the seconds the camera was up, and the moment the
//! playlist shows a part of the new session against the moment the camera went away.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::Camsim;
use support::{decodes_silently, free_port, wait_until, Server};

/// camsim's fixture: a key frame every second.
const GOP: f64 = 1.0;
/// What an outage may cost beyond its own length (the bound).
const SLACK: f64 = 1.5;
/// A part appears in the playlist once it is whole: the media it holds arrived this much
/// earlier (LL-HLS part hint), so a live measurement may exceed the media lost by this much.
const PART: f64 = 0.4;

/// Starts live view and a continuous recording; returns the playlist URL once a part plays.
async fn watch_and_record(s: &Server, admin: &str, ip: &str, rtsp: &str) -> String {
    s.add_camera(admin, json!({"ip": ip, "rtsp_url": rtsp}))
        .await;
    let url = s.start_stream(admin, ip).await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    s.start_recording(admin, ip, json!({})).await;
    wait_until("the first part", 20, async || {
        (newest_generation_playing(&playlist(&url).await) > 0).then_some(())
    })
    .await;
    url
}

async fn playlist(url: &str) -> String {
    match reqwest::get(url).await {
        Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
        _ => String::new(),
    }
}

/// The newest init generation of the playlist that already has a part after its map (0: none).
fn newest_generation_playing(pl: &str) -> u64 {
    pl.match_indices("#EXT-X-MAP:URI=\"init-")
        .filter_map(|(i, m)| {
            let rest = &pl[i + m.len()..];
            let g: u64 = rest[..rest.find(".mp4")?].parse().ok()?;
            rest.contains("#EXT-X-PART:").then_some(g)
        })
        .max()
        .unwrap_or(0)
}

/// Polls the playlist (which keeps the viewer) for `d`.
async fn keep_watching(url: &str, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        playlist(url).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the playlist until a newer generation than `g` plays; returns it and when.
async fn next_generation(url: &str, g: u64, secs: u64) -> (u64, Instant) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = newest_generation_playing(&playlist(url).await);
        if n > g {
            return (n, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "live view did not come back within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the recording and returns the camera's rows (every file judged by ffmpeg) and the
/// seconds they hold.
async fn stop_and_sum(s: &Server, admin: &str, ip: &str) -> f64 {
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/nvr/record/{ip}"),
            Some(admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let rows = wait_until("the rows to be closed", 20, async || {
        let rows = s.recordings(admin, &format!("?camera_ip={ip}")).await;
        (!rows.is_empty() && rows.iter().all(|r| r["status"] != "recording")).then_some(rows)
    })
    .await;
    let total = rows
        .iter()
        .map(|r| r["duration_sec"].as_f64().unwrap())
        .sum();
    let files = support::walk(&s.data_dir.join("recordings"));
    assert!(!files.is_empty(), "no recording file: {rows:?}");
    for f in &files {
        decodes_silently(f);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_rebooted_ten_times_loses_only_its_downtime() {
    const DROPS: u32 = 10;
    const UP: Duration = Duration::from_secs(4);
    const DOWN: Duration = Duration::from_millis(1500);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cam = Some(Camsim::start_args(&["--listen", &listen]));
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    let ip = "127.0.3.1";
    let url = watch_and_record(&s, &admin, ip, &format!("rtsp://{listen}/gate")).await;
    let started = Instant::now();
    let mut up = Duration::ZERO;
    let mut up_since = started;
    let mut generation = newest_generation_playing(&playlist(&url).await);
    let mut worst_live = 0.0f64;
    for i in 1..=DROPS {
        keep_watching(&url, UP).await;
        drop(cam.take()); // SIGKILL: the camera's TCP connection closes
        let killed = Instant::now();
        up += killed - up_since;
        keep_watching(&url, DOWN).await;
        cam = Some(Camsim::start_args(&["--listen", &listen]));
        let back = Instant::now();
        up_since = back;
        let (g, playing) = next_generation(&url, generation, 20).await;
        generation = g;
        let lost = (playing - killed).as_secs_f64();
        let downtime = (back - killed).as_secs_f64();
        eprintln!(
            "drop {i}: down {downtime:.2} s, live view back {:.2} s after the camera",
            lost - downtime
        );
        assert!(
            lost <= downtime + SLACK + GOP + PART,
            "drop {i}: live view lost {lost:.2} s for a {downtime:.2} s outage"
        );
        worst_live = worst_live.max(lost - downtime);
        let st = s.stream_state(&admin, ip).await;
        assert_eq!(st["state"], "live", "{st}");
    }
    keep_watching(&url, UP).await;
    up += up_since.elapsed();
    let recorded = stop_and_sum(&s, &admin, ip).await;
    let up = up.as_secs_f64();
    // one GOP at the start (the recording begins at a key frame) and the bound per drop
    let floor = up - GOP - f64::from(DROPS) * (SLACK + GOP);
    eprintln!(
        "camera up {up:.1} s, recorded {recorded:.1} s ({:.0} %), floor {floor:.1} s; \
         worst live return {worst_live:.2} s after the camera",
        100.0 * recorded / up
    );
    assert!(
        recorded >= floor,
        "recorded {recorded:.1} s of {up:.1} s up (floor {floor:.1})"
    );
    assert!(
        recorded <= up + 1.0,
        "recorded {recorded:.1} s of {up:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_camera_is_noticed_within_five_seconds_and_comes_back() {
    const FREEZES: u32 = 3;
    const UP: Duration = Duration::from_secs(4);
    const FROZEN: Duration = Duration::from_secs(7);
    let cam = Camsim::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    let ip = "127.0.3.2";
    let url = watch_and_record(&s, &admin, ip, &cam.url("yard")).await;
    let mut up = Duration::ZERO;
    let mut up_since = Instant::now();
    let mut generation = newest_generation_playing(&playlist(&url).await);
    for i in 1..=FREEZES {
        keep_watching(&url, UP).await;
        cam.freeze();
        let frozen = Instant::now();
        up += frozen - up_since;
        // noticed within max(5 s, 2 GOPs) of the last frame, the camera still frozen
        let noticed = wait_until("the stall to be noticed", 10, async || {
            let st = s.stream_state(&admin, ip).await;
            (st["state"] != "live").then_some(Instant::now())
        })
        .await;
        let after = (noticed - frozen).as_secs_f64();
        assert!(
            (4.0..=5.0 + 0.6).contains(&after),
            "freeze {i}: noticed after {after:.2} s"
        );
        let st = s.stream_state(&admin, ip).await;
        assert!(
            st.to_string().contains("stalled") || st["state"] == "connecting",
            "{st}"
        );
        keep_watching(&url, FROZEN.saturating_sub(frozen.elapsed())).await;
        cam.thaw();
        let back = Instant::now();
        up_since = back;
        let (g, playing) = next_generation(&url, generation, 20).await;
        generation = g;
        let lost = (playing - frozen).as_secs_f64();
        let downtime = (back - frozen).as_secs_f64();
        eprintln!(
            "freeze {i}: frozen {downtime:.2} s, noticed after {after:.2} s, live view back {:.2} s after the camera",
            lost - downtime
        );
        assert!(
            lost <= downtime + SLACK + GOP + PART,
            "freeze {i}: live view lost {lost:.2} s for a {downtime:.2} s freeze"
        );
    }
    keep_watching(&url, UP).await;
    up += up_since.elapsed();
    let recorded = stop_and_sum(&s, &admin, ip).await;
    let up = up.as_secs_f64();
    let floor = up - GOP - f64::from(FREEZES) * (SLACK + GOP);
    eprintln!("camera up {up:.1} s, recorded {recorded:.1} s, floor {floor:.1} s");
    assert!(
        recorded >= floor,
        "recorded {recorded:.1} s of {up:.1} s up (floor {floor:.1})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_plays_nothing_is_a_stall_after_five_seconds() {
    let cam = Camsim::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let ip = "127.0.3.3";
    // `stall0`: DESCRIBE, SETUP and PLAY are answered, then nothing is sent
    s.add_camera(
        &admin,
        json!({"ip": ip, "rtsp_url": cam.url("mute/stall0")}),
    )
    .await;
    s.start_stream(&admin, ip).await;
    let asked = Instant::now();
    let st = wait_until("the silent camera to be retried", 15, async || {
        let st = s.stream_state(&admin, ip).await;
        (st["state"] == "retrying").then_some(st)
    })
    .await;
    let after = asked.elapsed().as_secs_f64();
    assert_eq!(
        st["last_error"], "stalled: no video for 5.0 s",
        "{st} after {after:.2} s"
    );
    assert!((5.0..=6.5).contains(&after), "noticed after {after:.2} s");
    // every try ends the same way, and the pacing grows as the outage lasts
    wait_until("a second session", 20, async || {
        (cam.sessions("mute") >= 2).then_some(())
    })
    .await;
}
