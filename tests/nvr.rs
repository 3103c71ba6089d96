//! PC-NVR recording over real HTTP against independent (GStreamer) and simulated cameras,
//! judged by ffprobe/ffmpeg: fixed-duration recordings, downloads with Range, deletion, one
//! RTSP session for watching and recording, recovery after `kill -9`, a camera that drops.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::cams::{Camsim, GstCams};
use support::{assert_error, decodes_silently, wait_until, walk, Server};

fn ffprobe(path: &std::path::Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_second_recording_plays_downloads_in_ranges_and_deletes() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.40", "rtsp_url": cams.url("h264aac")}),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.0.40",
            Some(&admin),
            json!({"duration": 6}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["message"], "Recording started");
    let id = v["recording_id"].as_i64().unwrap();
    let (_, st) = s
        .call(
            "GET",
            "/api/nvr/status/127.0.0.40",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st["is_recording"].as_bool(), st["recording_id"].as_i64()),
        (Some(true), Some(id)),
        "{st}"
    );
    let (_, cam) = s
        .call("GET", "/api/cameras/127.0.0.40", Some(&admin), Value::Null)
        .await;
    assert_eq!(cam["is_recording"], true);
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.0.40",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 409, "conflict");
    wait_until("the recording to end", 30, async || {
        let (_, st) = s
            .call(
                "GET",
                "/api/nvr/status/127.0.0.40",
                Some(&admin),
                Value::Null,
            )
            .await;
        (st["is_recording"] == false).then_some(())
    })
    .await;
    let rows = s.recordings(&admin, "?camera_ip=127.0.0.40").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (
            r["id"].as_i64(),
            r["status"].as_str(),
            r["camera_ip"].as_str()
        ),
        (Some(id), Some("completed"), Some("127.0.0.40"))
    );
    let dur = r["duration_sec"].as_f64().unwrap();
    assert!((5.0..=7.5).contains(&dur), "duration {dur}");
    let (_, cam) = s
        .call("GET", "/api/cameras/127.0.0.40", Some(&admin), Value::Null)
        .await;
    assert_eq!(cam["is_recording"], false, "is_recording follows the truth");

    // download whole, judge it, then in ranges
    let url = s.url(&format!("/api/nvr/recordings/{id}/download"));
    let resp = s.client.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"127.0.0.40-"));
    let size = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    assert_eq!(size, r["file_size"].as_u64().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.mp4");
    std::fs::write(&file, &body).unwrap();
    let streams = ffprobe(&file, "stream=codec_name");
    assert_eq!(
        streams.lines().collect::<Vec<_>>(),
        vec!["h264", "aac"],
        "video and audio"
    );
    let probed: f64 = ffprobe(&file, "format=duration").parse().unwrap();
    assert!((5.0..=7.5).contains(&probed), "ffprobe duration {probed}");
    decodes_silently(&file);
    let part = s
        .client
        .get(&url)
        .bearer_auth(&admin)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 0-99/{size}")
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(0..100));
    let tail = s
        .client
        .get(&url)
        .bearer_auth(&admin)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), body.slice(body.len() - 10..));
    // the list's download_url works without a header, for that recording only
    let durl = s.url(r["download_url"].as_str().unwrap());
    let plain = reqwest::get(&durl).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.bytes().await.unwrap(), body);
    let token = durl.split("?t=").nth(1).unwrap().to_string();
    let other = reqwest::get(s.url(&format!(
        "/api/nvr/recordings/{}/download?t={token}",
        id + 1
    )))
    .await
    .unwrap();
    assert_eq!(other.status(), 401);
    let (st, _) = s
        .call("GET", "/api/nvr/recordings", Some(&token), Value::Null)
        .await;
    assert_eq!(st, 401, "a download token is not a login");
    let bad = s
        .client
        .get(&url)
        .bearer_auth(&admin)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);
    assert_eq!(
        bad.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{size}")
    );

    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/nvr/recordings/{id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st.as_u16(), v),
        (200, json!({"message": "Recording deleted"}))
    );
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/nvr/recordings/{id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 404);
    assert!(s.recordings(&admin, "").await.is_empty());
    let on_disk = walk(&s.data_dir.join("recordings"));
    assert!(on_disk.is_empty(), "file removed: {on_disk:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_and_recorded_is_one_session_and_roles_apply() {
    let cams = Camsim::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1"), ("MAX_RECORDINGS_PER_USER", "1")]);
    let admin = s.bootstrap_admin().await;
    for (ip, cam) in [
        ("127.0.1.40", "rec1"),
        ("127.0.1.41", "rec2"),
        ("127.0.1.42", "rec3"),
    ] {
        s.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": cams.url(&format!("{cam}/audio"))}),
        )
        .await;
    }
    let (uid, user) = s.add_user(&admin, "ana", "user").await;
    let (vid, viewer) = s.add_user(&admin, "vic", "viewer").await;
    for id in [uid, vid] {
        s.call(
            "POST",
            &format!("/api/users/{id}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.1.40", "127.0.1.41"]}),
        )
        .await;
    }
    let (st, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.1.40",
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.40",
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 403, "forbidden");
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.42",
            Some(&user),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 403, "forbidden");
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.40",
            Some(&user),
            Value::Null,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.41",
            Some(&user),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 429, "too_many_requests");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("MAX_RECORDINGS_PER_USER"));
    let (st, _) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.42",
            Some(&admin),
            json!({"duration": 30}),
        )
        .await;
    assert_eq!(st, 201, "admins have no per-user limit");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cams.sessions("rec1"),
        1,
        "watched and recorded: one RTSP session"
    );
    // the viewer sees the recordings of assigned cameras only, cannot stop or delete
    let seen = s.recordings(&viewer, "").await;
    assert!(
        seen.iter().all(|r| r["camera_ip"] == "127.0.1.40"),
        "{seen:?}"
    );
    let (st, _) = s
        .call(
            "GET",
            "/api/nvr/recordings?camera_ip=127.0.1.42",
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call(
            "DELETE",
            "/api/nvr/record/127.0.1.40",
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_eq!(st, 403);
    let (st, v) = s
        .call(
            "DELETE",
            "/api/nvr/record/127.0.1.40",
            Some(&user),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["message"].as_str()),
        (200, Some("Recording stopped"))
    );
    let (st, _) = s
        .call(
            "DELETE",
            "/api/nvr/record/127.0.1.40",
            Some(&user),
            Value::Null,
        )
        .await;
    assert_eq!(st, 404, "not recording any more");
    let rows = s.recordings(&user, "?camera_ip=127.0.1.40").await;
    assert_eq!(rows[0]["status"], "stopped");
    let id = rows[0]["id"].as_i64().unwrap();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/nvr/recordings/{id}"),
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_eq!(st, 403);
    let running = s.recordings(&admin, "?camera_ip=127.0.1.42").await[0]["id"]
        .as_i64()
        .unwrap();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/nvr/recordings/{running}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 409, "conflict");
    for bad in [
        "/api/nvr/recordings/abc/download",
        "/api/nvr/recordings/-1/download",
        "/api/nvr/recordings/..%2F..%2Fetc/download",
    ] {
        let (st, _) = s.call("GET", bad, Some(&admin), Value::Null).await;
        assert_eq!(st, 404, "{bad}");
    }
    for q in [
        "?start_date=yesterday",
        "?limit=-1",
        "?limit=100000",
        "?offset=10001",
        "?offset=18446744073709551615",
        "?end_date=2026-13-40",
    ] {
        let (st, v) = s
            .call(
                "GET",
                &format!("/api/nvr/recordings{q}"),
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_error(st, &v, 400, "bad_request");
    }
    assert_eq!(
        s.recordings(&admin, "?start_date=2026-01-01&end_date=2099-12-31&limit=1")
            .await
            .len(),
        1
    );
    assert!(s
        .recordings(&admin, "?end_date=2000-01-01")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_last_fragment_and_continuous_recordings_resume() {
    let cams = Camsim::start();
    let mut s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    let ids = ["127.0.1.50", "127.0.1.51", "127.0.1.52", "127.0.1.53"];
    for (i, ip) in ids.iter().enumerate() {
        s.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": cams.url(&format!("crash{i}/audio"))}),
        )
        .await;
        let (st, v) = s
            .call(
                "POST",
                &format!("/api/nvr/record/{ip}"),
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    s.kill9();
    // one file lost with the crash (say, a card that was pulled): its row says so
    for f in walk(&s.data_dir.join("recordings/127.0.1.53")) {
        std::fs::remove_file(f).unwrap();
    }
    // a file nobody knows (say, copied in by hand): reported, left alone
    let stray = s.data_dir.join("recordings/stray.mp4");
    std::fs::write(&stray, b"not ours").unwrap();
    s.start_again();
    let rows = s.recordings(&admin, "?limit=100").await;
    let recovered: Vec<&Value> = rows.iter().filter(|r| r["status"] == "recovered").collect();
    assert_eq!(recovered.len(), 3, "{rows:?}");
    let missing: Vec<&Value> = rows.iter().filter(|r| r["status"] == "missing").collect();
    assert_eq!(missing.len(), 1, "{rows:?}");
    assert_eq!(missing[0]["camera_ip"], "127.0.1.53");
    assert_eq!(missing[0]["file_size"], 0);
    for r in &recovered {
        let d = r["duration_sec"].as_f64().unwrap();
        // 4.5 s recorded (minus connect time); at most the last ~1 s fragment lost
        assert!(d >= 2.0, "kept too little: {r}");
        let id = r["id"].as_i64().unwrap();
        let resp = s
            .client
            .get(s.url(&format!("/api/nvr/recordings/{id}/download")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            body.len() as u64,
            r["file_size"].as_u64().unwrap(),
            "the partial tail was cut"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.mp4");
        std::fs::write(&f, &body).unwrap();
        decodes_silently(&f);
        let probed: f64 = ffprobe(&f, "format=duration").parse().unwrap();
        assert!((probed - d).abs() < 1.0, "row says {d}, file {probed}");
    }
    // the continuous recordings go on in new files without anyone logging in
    let resumed = wait_until("resumed recordings", 30, async || {
        let rows = s.recordings(&admin, "?limit=100").await;
        let n = rows.iter().filter(|r| r["status"] == "recording").count();
        (n == 4).then_some(n)
    })
    .await;
    assert_eq!(resumed, 4);
    assert!(s.logs().contains("recording reconciled after a crash"));
    assert!(s.logs().contains("file=stray.mp4"), "{}", s.logs());
    assert!(stray.exists(), "unknown files are left in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_drops_keeps_being_recorded() {
    let cams = Camsim::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.60", "rtsp_url": cams.url("flaky/drop3")}),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.60",
            Some(&admin),
            json!({"duration": 7}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    wait_until("the recording to end", 40, async || {
        let (_, st) = s
            .call(
                "GET",
                "/api/nvr/status/127.0.1.60",
                Some(&admin),
                Value::Null,
            )
            .await;
        (st["is_recording"] == false).then_some(())
    })
    .await;
    assert!(
        cams.sessions("flaky") >= 2,
        "the camera dropped and came back"
    );
    let rows = s.recordings(&admin, "").await;
    // same parameters after the reconnect: the same file goes on
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "completed");
    assert!(
        rows[0]["duration_sec"].as_f64().unwrap() >= 6.5,
        "{:?}",
        rows[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_only_recorded_keeps_no_live_window_until_someone_watches() {
    let cams = Camsim::start();
    let s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.80", "rtsp_url": cams.url("lazy")}),
    )
    .await;
    let (st, _) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.80",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 201);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(stats["streams"]["active"], 1);
    assert_eq!(
        stats["streams"]["hls_window_bytes"], 0,
        "nobody watches: no window in RAM"
    );
    let (_, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.1.80",
            Some(&admin),
            Value::Null,
        )
        .await;
    let r = reqwest::get(v["hls_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a viewer gets a window from the next key frame"
    );
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert!(stats["streams"]["hls_window_bytes"].as_u64().unwrap() > 0);
    assert_eq!(cams.sessions("lazy"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_recording_rotates_at_a_key_frame() {
    let cams = Camsim::start();
    let s = Server::start_with(&[
        ("MIN_FREE_DISK_MB", "1"),
        ("RECORDING_SEGMENT_SECONDS", "10"),
    ]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.90", "rtsp_url": cams.url("rotate/audio")}),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.90",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let first = v["recording_id"].as_i64().unwrap();
    let rows = wait_until("a rotation", 30, async || {
        let rows = s.recordings(&admin, "").await;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    let old = rows.iter().find(|r| r["id"] == first).unwrap();
    assert_eq!(old["status"], "completed");
    let d = old["duration_sec"].as_f64().unwrap();
    assert!((10.0..=11.5).contains(&d), "rotated after {d} s");
    assert_eq!(rows[0]["status"], "recording", "the next file goes on");
    let (_, st) = s
        .call(
            "GET",
            "/api/nvr/status/127.0.1.90",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        st["recording_id"], rows[0]["id"],
        "status names the file being written"
    );
    // the file being written already plays
    let id = rows[0]["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body = s
        .client
        .get(s.url(&format!("/api/nvr/recordings/{id}/download")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("live.mp4");
    std::fs::write(&f, &body).unwrap();
    decodes_silently(&f);
    let (st, _) = s
        .call(
            "DELETE",
            "/api/nvr/record/127.0.1.90",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_closes_recordings_and_resumes_continuous_ones() {
    let cams = Camsim::start();
    let mut s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.95", "rtsp_url": cams.url("restart")}),
    )
    .await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.96", "rtsp_url": cams.url("fixed")}),
    )
    .await;
    let (st, _) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.95",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.96",
            Some(&admin),
            json!({"duration": 600}),
        )
        .await;
    assert_eq!(st, 201);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.stop().code(), Some(0), "SIGTERM: a clean exit");
    s.start_again();
    let rows = s.recordings(&admin, "").await;
    let closed: Vec<&Value> = rows
        .iter()
        .filter(|r| r["note"] == "vigia shut down")
        .collect();
    assert_eq!(closed.len(), 2, "both closed cleanly: {rows:?}");
    assert!(closed
        .iter()
        .all(|r| r["status"] == "stopped" && r["file_size"].as_u64().unwrap() > 0));
    wait_until("the continuous one to resume", 20, async || {
        let rows = s.recordings(&admin, "").await;
        rows.iter()
            .any(|r| r["camera_ip"] == "127.0.1.95" && r["status"] == "recording")
            .then_some(())
    })
    .await;
    let (_, st) = s
        .call(
            "GET",
            "/api/nvr/status/127.0.1.96",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        st["is_recording"], false,
        "a fixed-duration recording does not resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_a_file_with_a_gibibyte_torn_tail_stays_in_bounded_memory() {
    let cams = Camsim::start();
    let mut s = Server::start_with(&[("MIN_FREE_DISK_MB", "1")]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.1.95", "rtsp_url": cams.url("big/audio")}),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.95",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let dir = s.data_dir.join("recordings");
    let file = wait_until("three fragments on disk", 20, async || {
        let f = walk(&dir).into_iter().next()?;
        (std::fs::metadata(&f).ok()?.len() > 300_000).then_some(f)
    })
    .await;
    s.kill9();
    let whole = std::fs::metadata(&file).unwrap().len();
    // what a power cut in the middle of a day-long segment leaves: 1 GiB past the last whole
    // fragment (a hole here, so the test needs no gibibyte of disk)
    let torn = 1u64 << 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(whole + torn)
        .unwrap();
    s.start_again();
    // the process resets its peak RSS before recovery and logs the peak after it (start-up
    // before it, e.g. argon2's 19 MiB for the timing dummy, is not recovery's)
    let logs = s.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("crash recovery done"))
        .unwrap_or_else(|| panic!("{logs}"));
    let peak: u64 = line
        .split("peak_rss_kib=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {line}"));
    assert!(
        peak < 32 * 1024,
        "peak RSS {peak} KiB while recovering a {} MiB file",
        (whole + torn) >> 20
    );
    assert!(s.status_kib("VmHWM") < 64 * 1024, "and no more since");
    let rows = s.recordings(&admin, "").await;
    let r = rows
        .iter()
        .find(|r| r["status"] == "recovered")
        .unwrap_or_else(|| panic!("{rows:?}"));
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(
        len <= whole && len >= whole - 200_000,
        "cut to {len} of {whole}"
    );
    assert_eq!(r["file_size"].as_u64(), Some(len));
    assert!(
        r["note"]
            .as_str()
            .unwrap()
            .contains(&format!("{} partial bytes cut", whole + torn - len)),
        "{r}"
    );
    decodes_silently(&file);
    eprintln!(
        "recovered {} MiB in a process whose peak RSS was {peak} KiB",
        (whole + torn) >> 20
    );
}
