//! A full disk, on a small file system made for the test (tmpfs, so the test runs as root,
//! as CI does): new recordings get 507, the watcher deletes the oldest finished recordings to
//! free space, running ones stop cleanly with the reason when that is not enough, and every
//! file left plays.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::Camsim;
use support::{assert_error, decodes_silently, Server};

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a small tmpfs and needs root (CI runs as root); run it with sudo"
        );
        let dir = tempfile::tempdir().unwrap().keep();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs failed");
        Tmpfs(dir)
    }

    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn rows(s: &Server, token: &str) -> Vec<Value> {
    let (_, v) = s
        .call(
            "GET",
            "/api/nvr/recordings?limit=100",
            Some(token),
            Value::Null,
        )
        .await;
    v["recordings"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_frees_and_stops_cleanly() {
    let disk = Tmpfs::mount(24);
    let cams = Camsim::start();
    let root = disk.0.join("recordings");
    let s = Server::start_with(&[
        ("RECORDINGS_DIR", root.to_str().unwrap()),
        ("MIN_FREE_DISK_MB", "8"),
    ]);
    let admin = s.bootstrap_admin().await;
    for (ip, cam) in [
        ("127.0.1.70", "d1"),
        ("127.0.1.71", "d2"),
        ("127.0.1.72", "d3"),
    ] {
        s.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": cams.url(&format!("{cam}/audio"))}),
        )
        .await;
    }
    // an old, finished recording
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.70",
            Some(&admin),
            json!({"duration": 2}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let old_id = v["recording_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(&s, &admin)
        .await
        .iter()
        .any(|r| r["status"] == "recording")
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // a running one
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.71",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // something else fills the disk to 6 MiB free, under MIN_FREE_DISK_MB
    let ballast = disk.0.join("ballast");
    let fill = disk.free().saturating_sub(6 * 1024 * 1024);
    std::fs::write(&ballast, vec![0u8; fill as usize]).unwrap();

    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.72",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 507, "insufficient_storage");
    assert!(
        v["error"].as_str().unwrap().contains("MIN_FREE_DISK_MB"),
        "{v}"
    );

    // the watcher deletes the finished recording, then stops the running one with the reason
    let deadline = Instant::now() + Duration::from_secs(20);
    let stopped = loop {
        let all = rows(&s, &admin).await;
        let gone = !all.iter().any(|r| r["id"] == old_id);
        if let Some(r) = all
            .iter()
            .find(|r| r["camera_ip"] == "127.0.1.71" && r["status"] == "stopped")
        {
            assert!(
                gone,
                "the old recording is deleted before a running one stops: {all:?}"
            );
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no clean stop: {all:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        stopped["note"].as_str().unwrap().contains("disk full"),
        "{stopped}"
    );
    // the row is final first; the camera leaves the running set last, after its own row says
    // it no longer records (`Recordings::ended`): a moment later on a busy machine
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, st) = s
            .call(
                "GET",
                "/api/nvr/status/127.0.1.71",
                Some(&admin),
                Value::Null,
            )
            .await;
        if st["is_recording"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "still recording: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // what is left plays, to the last byte
    let id = stopped["id"].as_i64().unwrap();
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
    assert_eq!(body.len() as u64, stopped["file_size"].as_u64().unwrap());
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &body).unwrap();
    decodes_silently(f.path());
    std::fs::remove_file(&ballast).unwrap();
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/record/127.0.1.72",
            Some(&admin),
            json!({"duration": 2}),
        )
        .await;
    assert_eq!(st, 201, "space again: {v}");
}

#[tokio::test]
async fn retention_days_deletes_finished_recordings_by_age_without_a_scan() {
    use std::sync::Arc;
    use vigia::media::hls::HlsConfig;
    use vigia::media::recordings::{RecordingConfig, Recordings};
    use vigia::media::streams::Streams;
    use vigia::store::{NewRecording, RecordingEnd, RecordingStatus};
    let dir = tempfile::tempdir().unwrap();
    let store: vigia::store::DynStore =
        Arc::new(vigia::store::redb::RedbStore::open(&dir.path().join("t.redb")).unwrap());
    let root = dir.path().join("rec");
    let mk = |days: i64, name: &str| NewRecording {
        camera_id: "cam".into(),
        user_id: None,
        path: format!("cam/{name}.mp4"),
        start_time: chrono::Utc::now() - chrono::Duration::days(days),
        continuous: false,
        // "other": a file on another node's disk (shared store), never this node's to delete
        node: if name == "other" { "other" } else { "box" }.into(),
    };
    std::fs::create_dir_all(root.join("cam")).unwrap();
    let mut ids = Vec::new();
    for (days, name) in [(10, "a"), (5, "b"), (1, "c"), (20, "other")] {
        let r = store.create_recording(mk(days, name)).await.unwrap();
        std::fs::write(root.join(&r.path), b"x").unwrap();
        let end = RecordingEnd {
            end_time: r.start_time,
            duration_sec: 1.0,
            file_size: 1,
            status: RecordingStatus::Completed,
            note: None,
        };
        store.finish_recording(r.id, end).await.unwrap();
        ids.push(r.id);
    }
    let running = store.create_recording(mk(30, "running")).await.unwrap();
    let streams = Streams::new(4, Duration::from_secs(1), HlsConfig::default());
    let recs = Recordings::new(
        store.clone(),
        streams,
        RecordingConfig {
            root: root.clone(),
            segment: Duration::from_secs(900),
            sync_every: Duration::from_secs(5),
            fragment: Duration::from_secs(1),
            min_free_bytes: 0,
            retention: Some(Duration::from_secs(3 * 86400)),
            node: "box".into(),
            shared: true,
        },
    );
    recs.enforce().await.unwrap();
    assert!(
        store.recording(ids[0]).await.unwrap().is_none(),
        "10 days old: gone"
    );
    assert!(
        store.recording(ids[1]).await.unwrap().is_none(),
        "5 days old: gone"
    );
    assert!(
        store.recording(ids[2]).await.unwrap().is_some(),
        "1 day old: kept"
    );
    assert!(!root.join("cam/a.mp4").exists() && root.join("cam/c.mp4").exists());
    assert!(
        store.recording(running.id).await.unwrap().is_some(),
        "never one being written"
    );
    assert!(
        store.recording(ids[3]).await.unwrap().is_some() && root.join("cam/other.mp4").exists(),
        "another node's recording is that node's to delete"
    );
}
