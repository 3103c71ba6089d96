//! Live view against independent cameras (GStreamer's rtsp-server), judged by ffprobe and
//! ffmpeg: streams start through the API, play through the `hls_url` with no header, share
//! one RTSP session, and report their state; player tokens are scoped; idle sessions stop.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::{ffmpeg_decode, ffprobe_streams, GstCams};
use support::{assert_error, free_port, Server};

/// Adds a camera with `url` as `ip` and returns the admin token.
async fn setup(s: &Server, ip: &str, url: &str) -> String {
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": ip, "rtsp_url": url}))
        .await;
    admin
}

async fn start(s: &Server, token: &str, cam: &str) -> Value {
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/cameras/stream/{cam}"),
            Some(token),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Polls the camera's state until `want` (or panics after `secs`).
async fn wait_state(s: &Server, token: &str, cam: &str, want: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, v) = s
            .call(
                "GET",
                &format!("/api/cameras/{cam}"),
                Some(token),
                Value::Null,
            )
            .await;
        if v["stream"]["state"] == want {
            return v["stream"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "camera {cam} never became {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_aac_play_through_the_hls_url_without_headers() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.1", &cams.url("h264aac")).await;
    let v = start(&s, &admin, "127.0.0.1").await;
    let url = v["hls_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&s.base) && url.contains("/api/cameras/streams/127.0.0.1/index.m3u8?t="),
        "{url}"
    );

    let (st, playlist) = get_text(&url).await; // waits for the first segment
    assert_eq!(st, 200, "{playlist}");
    for tag in [
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-PART-INF:PART-TARGET=",
        "CAN-BLOCK-RELOAD=YES",
        "#EXT-X-MAP:URI=\"init-1.mp4?t=",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXTINF:",
    ] {
        assert!(playlist.contains(tag), "{tag} missing:\n{playlist}");
    }
    let streams = ffprobe_streams(&url);
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert_eq!(
        streams[0],
        (
            "h264".to_string(),
            "avc1".to_string(),
            "640x360".to_string()
        )
    );
    assert_eq!(streams[1].0, "aac");
    assert_eq!(
        ffmpeg_decode(&url, 5),
        "",
        "ffmpeg decodes 5 s without a word"
    );
    let (_, cam) = s
        .call("GET", "/api/cameras/127.0.0.1", Some(&admin), Value::Null)
        .await;
    assert_eq!(cam["stream"]["state"], "live");
    assert!(
        cam["stream"]["video"].as_str().unwrap().contains("640x360"),
        "{cam}"
    );
    assert_eq!(cam["stream"]["audio"], "mp4a.40.2");
    // blocking reload: ask for the next part; it comes when it exists (parts and the hint
    // are listed from the camera's second key frame on)
    let (_, playlist) = get_text(&url).await;
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    let next = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"))
        .unwrap();
    let (msn, part) = next.split_once(".m4s").unwrap().0.split_once('.').unwrap();
    let t0 = Instant::now();
    let (st, blocked) = get_text(&format!("{url}&_HLS_msn={msn}&_HLS_part={part}")).await;
    assert_eq!(st, 200);
    assert!(
        blocked.contains(&format!("part{msn}.{part}.m4s")),
        "{blocked}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    let (st, _) = get_text(&format!("{url}&_HLS_msn=999999")).await;
    assert_eq!(st, 400, "too far ahead");
    let (st, v) = s
        .call(
            "DELETE",
            "/api/cameras/stream/127.0.0.1",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["message"].as_str()),
        (200, Some("Stream stopped"))
    );
    let (_, cam) = s
        .call("GET", "/api/cameras/127.0.0.1", Some(&admin), Value::Null)
        .await;
    assert_eq!(cam["stream"]["state"], "idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_playlist_is_ready_half_a_second_after_the_first_key_frame() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.6", &cams.url("h264gop2")).await;
    let url = start(&s, &admin, "127.0.0.6").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, pl) = get_text(&url).await; // waits until it is playable
    let answered = chrono::Utc::now();
    assert_eq!(st, 200, "{pl}");
    let live = wait_state(&s, &admin, "127.0.0.6", "live", 5).await;
    let first_key: chrono::DateTime<chrono::Utc> = live["since"].as_str().unwrap().parse().unwrap();
    let after = (answered - first_key).num_milliseconds();
    eprintln!("first playlist {after} ms after the camera's first key frame (2 s GOP)");
    assert!(
        (0..=500).contains(&after),
        "{after} ms after the first key frame:\n{pl}"
    );
    // a whole first segment, shorter than a part; the first GOP lists no part
    assert!(pl.contains("#EXTINF:0.") && pl.contains("seg0.m4s"), "{pl}");
    assert!(!pl.contains("#EXT-X-PART:"), "{pl}");
    // the next one (blocking reload) begins between key frames: players are told to start at
    // the first
    let (st, pl) = get_text(&format!("{url}&_HLS_msn=1")).await;
    assert_eq!(st, 200, "{pl}");
    assert!(pl.contains("seg1.m4s"), "{pl}");
    assert!(
        pl.contains("#EXT-X-START:TIME-OFFSET=0.000,PRECISE=YES"),
        "{pl}"
    );
    // what it names plays: the init and the first two segments decode together
    let base = url.split("/index.m3u8").next().unwrap();
    let q = url.split_once('?').unwrap().1;
    let mut mp4 = Vec::new();
    for name in ["init-1.mp4", "seg0.m4s", "seg1.m4s"] {
        let r = reqwest::get(format!("{base}/{name}?{q}")).await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        mp4.extend(r.bytes().await.unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("first.mp4");
    std::fs::write(&f, &mp4).unwrap();
    support::decodes_silently(&f);
    assert_eq!(ffprobe_streams(&url).len(), 2);
    assert_eq!(ffmpeg_decode(&url, 3), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_share_one_rtsp_session() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.2", &cams.url("h264")).await;
    let (uid, user) = s.add_user(&admin, "ana", "user").await;
    let (vid, viewer) = s.add_user(&admin, "vic", "viewer").await;
    for id in [uid, vid] {
        s.call(
            "POST",
            &format!("/api/users/{id}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.0.2"]}),
        )
        .await;
    }
    let mut urls = Vec::new();
    for t in [&admin, &user, &viewer] {
        urls.push(
            start(&s, t, "127.0.0.2").await["hls_url"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for u in &urls {
        let (st, pl) = get_text(u).await;
        assert_eq!(st, 200, "{pl}");
    }
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(
        stats["cameras"]["detail"][0]["sessions_opened"], 1,
        "{stats}"
    );
    assert_eq!(stats["streams"]["active"], 1);
    // the window (here the first ~0.5 s after the key frame) lives in RAM
    assert!(stats["streams"]["hls_window_bytes"].as_u64().unwrap() > 1_000);
    assert_eq!(
        cams.connections(),
        1,
        "one RTSP connection to the camera for three viewers"
    );
    // each player token is for its user: the viewer's still works after admin logs out
    s.call("POST", "/api/auth/logout", Some(&admin), Value::Null)
        .await;
    assert_eq!(
        get_text(&urls[0]).await.0,
        401,
        "revoked with the login token"
    );
    assert_eq!(get_text(&urls[2]).await.0, 200);
    // players' requests are not an access log at info (three a second per viewer would
    // flood journald), but the refused one is
    let logs = support::wait_until("the refused request in the log", 10, async || {
        let l = s.logs();
        l.lines()
            .any(|l| l.contains("path=/api/cameras/streams/") && l.contains("status=401"))
            .then_some(l)
    })
    .await;
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("path=/api/cameras/streams/") && l.contains("status=200")),
        "{logs}"
    );
    assert!(logs.contains("path=/api/cameras/stream/127.0.0.2 status=200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_is_carried_as_hvc1() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.3", &cams.url("h265")).await;
    let url = start(&s, &admin, "127.0.0.3").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_text(&url).await.0, 200);
    let streams = ffprobe_streams(&url);
    assert_eq!(
        streams[0],
        (
            "hevc".to_string(),
            "hvc1".to_string(),
            "640x360".to_string()
        )
    );
    assert_eq!(ffmpeg_decode(&url, 3), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_tokens_are_scoped_and_hls_names_are_strict() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.4", &cams.url("h264")).await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.5", "rtsp_url": cams.url("h264")}),
    )
    .await;
    let url = start(&s, &admin, "127.0.0.4").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    let other = start(&s, &admin, "127.0.0.5").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_text(&url).await.0, 200);
    let token = url.split("?t=").nth(1).unwrap().to_string();
    let base = format!("{}/api/cameras/streams", s.base);
    // the token of camera .4 opens nothing of camera .5
    let (st, body) = get_text(&format!("{base}/127.0.0.5/index.m3u8?t={token}")).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(get_text(&other).await.0, 200);
    // no token, a login token as t, garbage
    assert_eq!(
        get_text(&format!("{base}/127.0.0.4/index.m3u8")).await.0,
        401
    );
    assert_eq!(
        get_text(&format!("{base}/127.0.0.4/index.m3u8?t={admin}"))
            .await
            .0,
        401
    );
    assert_eq!(
        get_text(&format!("{base}/127.0.0.4/index.m3u8?t=junk"))
            .await
            .0,
        401
    );
    // a player token is not a login token
    let (st, v) = s
        .call("GET", "/api/cameras/list", Some(&token), Value::Null)
        .await;
    assert_error(st, &v, 401, "unauthorized");
    // the header works too
    let r = s
        .client
        .get(format!("{base}/127.0.0.4/index.m3u8"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = reqwest::get(format!("{base}/127.0.0.4/init-1.mp4?t={token}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // nothing outside the window: traversal, encoded slashes, unknown names
    for name in [
        "..%2F..%2Fvigia.redb",
        "%2e%2e%2fsecret_key",
        "seg0.m4s%2F..",
        "index.m3u9",
        "init-9.mp4",
        "part0.99.m4s",
        "seg.m4s",
        "secret_key",
    ] {
        let (st, body) = get_text(&format!("{base}/127.0.0.4/{name}?t={token}")).await;
        assert_eq!(st, 404, "{name}: {body}");
    }
    // dot segments are resolved by the client before sending: whatever they become, never a file
    for path in [
        "/api/cameras/streams/127.0.0.4/../../../etc/passwd",
        "/api/cameras/streams/127.0.0.4/..",
        "/api/cameras/streams/127.0.0.4/%2e%2e",
        "/api/cameras/streams/127.0.0.4/a/b",
    ] {
        let (st, body) = get_text(&format!("{}{path}?t={token}", s.base)).await;
        assert!(st == 404 || st == 401, "{path}: {st} {body}");
    }
    // a camera that is not streaming: no media files, but a playlist request starts the
    // session (a player carries on after a restart or a move to another node)
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.6", "rtsp_url": cams.url("h264")}),
    )
    .await;
    let r = s
        .client
        .get(format!("{base}/127.0.0.6/init-1.mp4"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .client
        .get(format!("{base}/127.0.0.6/index.m3u8"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("#EXTM3U"));
    // a viewer without the camera: 403 for stream start and files
    let (_, viewer) = s.add_user(&admin, "vic", "viewer").await;
    let (st, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.0.4",
            Some(&viewer),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 403, "forbidden");
    let r = s
        .client
        .get(format!("{base}/127.0.0.4/index.m3u8"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_back_off_and_unsupported_codecs_are_reported() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let secure = format!("rtsp://127.0.0.1:{}/secure", cams.secure_port);
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.7", "rtsp_url": secure, "username": "cam", "password": "wrong-pass"}),
    )
    .await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.8", "rtsp_url": secure, "username": "cam", "password": "campass"}),
    )
    .await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.9", "rtsp_url": cams.url("vp8")}),
    )
    .await;
    for cam in ["127.0.0.7", "127.0.0.8", "127.0.0.9"] {
        start(&s, &admin, cam).await;
    }
    let st = wait_state(&s, &admin, "127.0.0.7", "unauthorized", 20).await;
    assert!(
        st["retry_in_sec"].as_u64().unwrap() >= 60,
        "a 401 waits long: {st}"
    );
    assert!(st["last_error"].as_str().unwrap().contains("401"), "{st}");
    assert!(
        !st.to_string().contains("wrong-pass"),
        "no credentials in the state"
    );
    wait_state(&s, &admin, "127.0.0.8", "live", 30).await;
    let st = wait_state(&s, &admin, "127.0.0.9", "unsupported", 20).await;
    assert!(st["reason"].as_str().unwrap().contains("video/vp8"), "{st}");
    assert!(
        !s.logs().contains("wrong-pass") && !s.logs().contains("campass"),
        "no credentials in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_stop_and_max_streams_is_enforced() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("STREAM_TIMEOUT", "2"), ("MAX_STREAMS", "1")]);
    let admin = setup(&s, "127.0.0.10", &cams.url("h264")).await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.11", "rtsp_url": cams.url("h264")}),
    )
    .await;
    start(&s, &admin, "127.0.0.10").await;
    let (st, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.0.11",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 429, "too_many_requests");
    assert!(v["error"].as_str().unwrap().contains("MAX_STREAMS"), "{v}");
    let (_, b) = s
        .call(
            "POST",
            "/api/cameras/streams/batch",
            Some(&admin),
            json!({"ips": ["127.0.0.10", "127.0.0.11", "10.9.9.9"]}),
        )
        .await;
    let r = b["results"].as_array().unwrap();
    assert_eq!(r[0]["status"], "started");
    assert!(r[0]["hls_url"].as_str().is_some());
    assert_eq!(
        (r[1]["status"].as_str(), r[1]["code"].as_str()),
        (Some("error"), Some("too_many_requests"))
    );
    assert_eq!(
        (r[2]["status"].as_str(), r[2]["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    // nobody fetches anything: the session stops after STREAM_TIMEOUT
    wait_state(&s, &admin, "127.0.0.10", "idle", 10).await;
    start(&s, &admin, "127.0.0.11").await;
    let (st, _) = s
        .call(
            "DELETE",
            "/api/cameras/stream/127.0.0.10",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 404, "not streaming");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_camera_is_reconnected_with_a_discontinuity() {
    let port = free_port().to_string();
    let mut cams = GstCams::start_args(&["--port", &port]);
    let s = Server::start();
    let admin = setup(&s, "127.0.0.12", &cams.url("h264")).await;
    let url = start(&s, &admin, "127.0.0.12").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_text(&url).await.0, 200);
    cams.kill();
    let st = wait_state(&s, &admin, "127.0.0.12", "retrying", 20).await;
    assert!(st["attempt"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{st}"
    );
    let _cams = GstCams::start_args(&["--port", &port]);
    wait_state(&s, &admin, "127.0.0.12", "live", 40).await;
    // the window continues after a discontinuity, with the new init
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, pl) = get_text(&url).await;
        assert_eq!(st, 200);
        if pl.contains("#EXT-X-DISCONTINUITY\n")
            && pl.contains("init-2.mp4")
            && pl.matches("#EXTINF").count() >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no discontinuity after the reconnect:\n{pl}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(ffmpeg_decode(&url, 3), "");
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert!(
        stats["cameras"]["detail"][0]["sessions_opened"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_jumping_back_make_a_discontinuity_not_a_reconnect() {
    let cams = GstCams::start();
    let s = Server::start();
    let admin = setup(&s, "127.0.0.13", &cams.url("shared")).await;
    let url = start(&s, &admin, "127.0.0.13").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_text(&url).await.0, 200);
    // let the shared pipeline run a few seconds, then another client's PLAY re-seeks it to 0
    tokio::time::sleep(Duration::from_secs(3)).await;
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "quiet", "-rtsp_transport", "tcp", "-show_streams"])
        .arg(cams.url("shared"))
        .output()
        .unwrap();
    assert!(probe.status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, pl) = get_text(&url).await;
        if pl.contains("#EXT-X-DISCONTINUITY\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no discontinuity after the jump:\n{pl}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(
        stats["cameras"]["detail"][0]["sessions_opened"], 1,
        "no reconnect: {stats}"
    );
    assert_eq!(stats["cameras"]["detail"][0]["stream"]["state"], "live");
    assert_eq!(ffmpeg_decode(&url, 3), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_transport_g711_audio_and_plain_hls() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("LOW_LATENCY_HLS", "false")]);
    let admin = s.bootstrap_admin().await;
    // UDP for RTP when the camera is set so; G.711 audio is left out with a note, video flows
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.30", "rtsp_url": cams.url("h264pcmu"), "transport": "udp"}),
    )
    .await;
    let url = start(&s, &admin, "127.0.0.30").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, pl) = get_text(&url).await;
    assert_eq!(st, 200, "{pl}");
    assert!(
        !pl.contains("EXT-X-PART") && !pl.contains("PRELOAD-HINT"),
        "plain HLS:\n{pl}"
    );
    assert!(
        pl.contains("#EXT-X-VERSION:7") && pl.contains("#EXTINF:"),
        "{pl}"
    );
    let streams = ffprobe_streams(&url);
    assert_eq!(
        streams,
        vec![(
            "h264".to_string(),
            "avc1".to_string(),
            "640x360".to_string()
        )]
    );
    assert_eq!(ffmpeg_decode(&url, 3), "");
    let st = wait_state(&s, &admin, "127.0.0.30", "live", 5).await;
    assert!(st["note"].as_str().unwrap().contains("pcmu"), "{st}");
    assert!(st.get("audio").is_none(), "{st}");
}
