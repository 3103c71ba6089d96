//! Independent test cameras: GStreamer's rtsp-server (tests/support/rtsp_server.py) run with
//! Debian's /usr/bin/python3, which has the `gi` bindings.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const INSTALL: &str = "apt-get install -y --no-install-recommends gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 \
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad \
gstreamer1.0-libav gstreamer1.0-tools python3-gi ffmpeg (./scripts/test.sh does this)";

pub struct GstCams {
    child: Child,
    pub port: u16,
    pub secure_port: u16,
    /// RTSP client connections the server saw.
    pub connects: Arc<AtomicUsize>,
}

impl GstCams {
    pub fn start() -> GstCams {
        Self::start_args(&[])
    }

    pub fn start_args(args: &[&str]) -> GstCams {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run /usr/bin/python3 ({e}); install: {INSTALL}"));
        let out = child.stdout.take().unwrap();
        let connects = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let c2 = connects.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let _ = tx.send(rest.to_string());
                } else if line == "CONNECT" {
                    c2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!("the GStreamer RTSP server did not start; install: {INSTALL}")
            });
        let mut ports = ready.split_whitespace().map(|p| p.parse::<u16>().unwrap());
        GstCams {
            child,
            port: ports.next().unwrap(),
            secure_port: ports.next().unwrap(),
            connects,
        }
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GstCams {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs ffprobe on `url`: (codec_name, width, height) per stream.
pub fn ffprobe_streams(url: &str) -> Vec<(String, String, String)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}; install: {INSTALL}"));
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // HLS input lists its streams twice (in the program, then globally): keep each once
    let mut v: Vec<(String, String, String)> = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
    {
        let f: Vec<&str> = l.split(',').collect();
        let s = (
            f[0].to_string(),
            f.get(1).unwrap_or(&"").to_string(),
            f[2..].join("x"),
        );
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// `ffmpeg -v error -prefer_x_start 1 -i <url> -t <secs> -f null -`: what it printed (nothing
/// is good).
pub fn ffmpeg_decode(url: &str, secs: u32) -> String {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            // start where the playlist says (EXT-X-START): in a fresh window's first GOP the
            // newest segments begin between key frames (ffmpeg ignores the tag by default)
            "-prefer_x_start",
            "1",
            "-i",
            url,
            "-t",
            &secs.to_string(),
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}; install: {INSTALL}"));
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Our own simulator (`vigia camsim`), for faults and load.
pub struct Camsim {
    child: Child,
    pub port: u16,
    sessions: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Camsim {
    pub fn start() -> Camsim {
        Self::start_args(&["--listen", "127.0.0.1:0"])
    }

    /// `vigia camsim --events` with these arguments (`--listen` among them).
    pub fn start_args(args: &[&str]) -> Camsim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigia"))
            .arg("camsim")
            .arg("--events")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let sessions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = sessions.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("READY ") {
                    let _ = tx.send(p.parse::<u16>().unwrap());
                } else if let Some(cam) = line.strip_prefix("SESSION ") {
                    s2.lock().unwrap().push(cam.to_string());
                } else if line.starts_with("AUTHFAIL ") || line.starts_with("TEARDOWN ") {
                    s2.lock().unwrap().push(line);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("camsim started");
        Camsim {
            child,
            port,
            sessions,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// Freezes the process (SIGSTOP): its connections stay open and nothing more is sent,
    /// as with a camera whose network stalls.
    pub fn freeze(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// TEARDOWN requests received.
    pub fn teardowns(&self) -> usize {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("TEARDOWN "))
            .count()
    }

    /// Requests refused for wrong credentials (failed logins).
    pub fn failed_logins(&self) -> usize {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("AUTHFAIL "))
            .count()
    }

    /// RTSP sessions played for camera `name` (e.g. "cam1").
    pub fn sessions(&self, name: &str) -> usize {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.trim_start_matches('/') == name)
            .count()
    }
}

impl Drop for Camsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
