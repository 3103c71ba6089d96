//! H.265 recordings from an independent camera: GStreamer's x265enc through rtsp-server, as
//! x265 makes it by default (open GOP: every key frame after the first is a CRA picture, which
//! is what most H.265 cameras send), with and without AAC. Fixed-duration recordings while the
//! camera is already watched, a continuous one that rotates, the file being written, and crash
//! recovery after `kill -9` — each file judged by ffprobe (`hvc1`, duration) and decoded by
//! ffmpeg without a word.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::cams::GstCams;
use support::{decodes_silently, wait_until, Server};

/// ffprobe's `codec_name,codec_tag_string` per stream, and the container's duration.
fn probe(path: &std::path::Path) -> (Vec<String>, f64) {
    let run = |entries: &str| {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("ffprobe: {e}; install: {}", support::cams::INSTALL));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ffprobe {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let streams = run("stream=codec_name,codec_tag_string")
        .lines()
        .map(str::to_string)
        .collect();
    let duration = run("format=duration").parse().unwrap_or(0.0);
    (streams, duration)
}

/// Downloads recording `id` (with a Range request for its tail too) into `dir`.
async fn download(s: &Server, admin: &str, id: i64, dir: &std::path::Path) -> std::path::PathBuf {
    let url = s.url(&format!("/api/nvr/recordings/{id}/download"));
    let body = s
        .client
        .get(&url)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let tail = s
        .client
        .get(&url)
        .bearer_auth(admin)
        .header("range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), body.slice(body.len() - 100..));
    let path = dir.join(format!("{id}.mp4"));
    std::fs::write(&path, &body).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_h265_recordings_of_watched_cameras_play_with_and_without_aac() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    let cameras = [
        ("127.0.4.1", "h265cam", vec!["hevc,hvc1"]),
        ("127.0.4.2", "h265camaac", vec!["hevc,hvc1", "aac,mp4a"]),
    ];
    for (ip, mount, _) in &cameras {
        s.add_camera(&admin, json!({"ip": ip, "rtsp_url": cams.url(mount)}))
            .await;
        // watched first: the recording joins a running session, at a CRA key frame
        s.start_stream(&admin, ip).await;
        wait_until("the camera to be live", 20, async || {
            (s.stream_state(&admin, ip).await["state"] == "live").then_some(())
        })
        .await;
    }
    // past the first GOP, so that the session's IDR is long gone
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (ip, _, _) in &cameras {
        s.start_recording(&admin, ip, json!({"duration": 6})).await;
    }
    let dir = tempfile::tempdir().unwrap();
    for (ip, _, want) in &cameras {
        let done = wait_until("the recording to end", 30, async || {
            let r = s.recordings(&admin, &format!("?camera_ip={ip}")).await;
            r.first().filter(|r| r["status"] != "recording").cloned()
        })
        .await;
        assert_eq!(done["status"], "completed", "{done}");
        let d = done["duration_sec"].as_f64().unwrap();
        assert!((6.0..=8.5).contains(&d), "{ip}: {d} s");
        let path = download(&s, &admin, done["id"].as_i64().unwrap(), dir.path()).await;
        let (streams, probed) = probe(&path);
        assert_eq!(&streams, want, "{ip}");
        assert!((probed - d).abs() < 0.7, "{ip}: row {d} s, file {probed} s");
        decodes_silently(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_h265_rotates_plays_while_written_and_survives_kill_9() {
    let cams = GstCams::start();
    let mut s = Server::start_with(&[
        ("MIN_FREE_DISK_MB", "1"),
        ("RECORDING_SEGMENT_SECONDS", "10"),
    ]);
    let admin = s.bootstrap_admin().await;
    let ip = "127.0.4.3";
    s.add_camera(
        &admin,
        json!({"ip": ip, "rtsp_url": cams.url("h265camaac")}),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/nvr/record/{ip}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // 10 s segments cut at the next key frame (a CRA every 2 s)
    let r = wait_until("a rotation", 30, async || {
        let r = s.recordings(&admin, &format!("?camera_ip={ip}")).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    let first = r.last().unwrap();
    assert_eq!(first["status"], "completed", "{first}");
    let d = first["duration_sec"].as_f64().unwrap();
    assert!((10.0..=12.5).contains(&d), "rotated after {d} s");
    let dir = tempfile::tempdir().unwrap();
    let path = download(&s, &admin, first["id"].as_i64().unwrap(), dir.path()).await;
    let (streams, probed) = probe(&path);
    assert_eq!(streams, ["hevc,hvc1", "aac,mp4a"]);
    assert!((probed - d).abs() < 0.7, "row {d} s, file {probed} s");
    decodes_silently(&path);
    // the file being written, which starts at a CRA picture, already plays
    let current = r[0]["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let path = download(&s, &admin, current, dir.path()).await;
    assert_eq!(probe(&path).0, ["hevc,hvc1", "aac,mp4a"]);
    decodes_silently(&path);
    // a power cut: the open file is cut to its whole fragments and plays
    s.kill9();
    s.start_again();
    let r = s.recordings(&admin, &format!("?camera_ip={ip}")).await;
    let recovered = r
        .iter()
        .find(|r| r["id"] == current)
        .expect("the row of the file being written");
    assert_eq!(recovered["status"], "recovered", "{recovered}");
    let d = recovered["duration_sec"].as_f64().unwrap();
    assert!(d >= 2.0, "kept {d} s");
    let path = download(&s, &admin, current, dir.path()).await;
    let (streams, probed) = probe(&path);
    assert_eq!(streams, ["hevc,hvc1", "aac,mp4a"]);
    assert!((probed - d).abs() < 0.7, "row {d} s, file {probed} s");
    decodes_silently(&path);
}
