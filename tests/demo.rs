//! `vigia demo`: one command, and a newcomer has cameras to watch and a login that works.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cams::{ffmpeg_decode, ffprobe_streams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_playable_urls_and_a_working_login() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .args(["demo", "--listen-addr", "127.0.0.1:0"])
        .env_clear()
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        let done = l.contains("API:");
        lines.push(l);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    // the first line is the page's address
    assert!(
        lines[0].starts_with("vigia demo: open http://127.0.0.1:")
            && lines[0].ends_with("/ in a browser"),
        "{text}"
    );
    let base = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect(&text)
        .trim_end_matches('/')
        .to_string();
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("log in: admin / "))
        .expect(&text)
        .to_string();
    let urls: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.contains("/index.m3u8?t="))
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    assert!(urls.len() >= 4, "{text}");
    assert!(text.contains("ffplay"), "{text}");
    let streams = ffprobe_streams(&urls[0]);
    assert_eq!(
        streams[0],
        (
            "h264".to_string(),
            "avc1".to_string(),
            "640x360".to_string()
        ),
        "{text}"
    );
    assert_eq!(streams[1].0, "aac");
    assert_eq!(ffmpeg_decode(&urls[1], 2), "");
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
}
