//! vigia under systemd, with systemd played by the test: a real unix datagram
//! `NOTIFY_SOCKET` (an abstract one, `@…`) and `WATCHDOG_USEC`. READY comes once the
//! listener is up, WATCHDOG pings come every half interval, STATUS tells what runs, SIGTERM
//! gives STOPPING, closed recordings, TEARDOWNs and exit 0; and a recorder stalled by a
//! frozen disk (`fsfreeze` on a loop-mounted ext4) stops the pings. The unit file verifies
//! clean and is rated well by `systemd-analyze security`.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::Camsim;
use support::{wait_until, walk, Server};

/// The notify socket's side: every datagram with the time it came.
struct FakeSystemd {
    name: String,
    msgs: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl FakeSystemd {
    fn start() -> FakeSystemd {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "vigia-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m2 = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                m2.lock().unwrap().push((Instant::now(), text));
            }
        });
        FakeSystemd {
            name: format!("@{name}"),
            msgs,
        }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.msgs.lock().unwrap().clone()
    }

    fn pings_since(&self, t: Instant) -> Vec<Instant> {
        self.all()
            .into_iter()
            .filter(|(at, m)| *at >= t && m.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(at, _)| at)
            .collect()
    }

    fn has(&self, line: &str) -> bool {
        self.all().iter().any(|(_, m)| m.lines().any(|l| l == line))
    }

    fn statuses(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .flat_map(|(_, m)| {
                m.lines()
                    .filter_map(|l| l.strip_prefix("STATUS=").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn record(s: &Server, admin: &str, ip: &str, url: &str) {
    s.add_camera(admin, json!({"ip": ip, "rtsp_url": url}))
        .await;
    s.start_recording(admin, ip, json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_status_and_a_clean_stop() {
    let sd = FakeSystemd::start();
    let cams = Camsim::start();
    let started = Instant::now();
    let mut s = Server::start_with(&[
        ("NOTIFY_SOCKET", &sd.name),
        ("WATCHDOG_USEC", "1000000"),
        ("MIN_FREE_DISK_MB", "0"),
    ]);
    wait_until("READY=1", 10, async || sd.has("READY=1").then_some(())).await;
    let ready_at = sd
        .all()
        .iter()
        .find(|(_, m)| m.contains("READY=1"))
        .unwrap()
        .0;
    eprintln!(
        "start to READY: {:?} (process start to listening included)",
        ready_at - started
    );
    let admin = s.bootstrap_admin().await;
    record(&s, &admin, "127.0.2.1", &cams.url("cam1/audio")).await;

    // pings every half interval while healthy, and STATUS says what runs
    let t = Instant::now();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let pings = sd.pings_since(t);
    assert!(
        (5..=8).contains(&pings.len()),
        "{} pings in 3.2 s at WATCHDOG_USEC=1 s",
        pings.len()
    );
    wait_until("STATUS shows the recording", 10, async || {
        sd.statuses()
            .iter()
            .any(|s| s.starts_with("1 live, 1 recording, ") && s.ends_with("% disk free"))
            .then_some(())
    })
    .await;

    // SIGTERM: STOPPING, recordings closed, TEARDOWN sent, exit 0, in bounded time
    let t = Instant::now();
    let status = s.stop();
    let took = t.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    assert!(sd.has("STOPPING=1"), "{:?}", sd.all());
    wait_until("the camera got its TEARDOWN", 5, async || {
        (cams.teardowns() >= 1).then_some(())
    })
    .await;
    s.start_again();
    let admin = s.login("admin", support::ADMIN_PW).await;
    let (_, v) = s
        .call("GET", "/api/nvr/recordings", Some(&admin), Value::Null)
        .await;
    let first = v["recordings"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&first["status"], &first["note"]),
        (&json!("stopped"), &json!("vigia shut down")),
        "closed by the shutdown, not recovered after a crash: {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_background_task_before_the_files_close() {
    let sd = FakeSystemd::start();
    let cams = Camsim::start();
    let mut s = Server::start_with(&[
        ("NOTIFY_SOCKET", &sd.name),
        ("WATCHDOG_USEC", "1000000"),
        ("MIN_FREE_DISK_MB", "1"),
        ("RETENTION_DAYS", "1"),
    ]);
    let admin = s.bootstrap_admin().await;
    for i in 1..=3 {
        let ip = format!("127.0.2.{}", 10 + i);
        record(&s, &admin, &ip, &cams.url(&format!("bg{i}/audio"))).await;
    }
    s.start_stream(&admin, "127.0.2.11").await;
    let dir = s.data_dir.join("recordings");
    wait_until("three files growing", 20, async || {
        let files = walk(&dir);
        (files.len() == 3
            && files
                .iter()
                .all(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 50_000)))
        .then_some(())
    })
    .await;
    // SIGTERM, then the files as they are the moment vigia says STOPPING
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sd.has("STOPPING=1") {
        assert!(Instant::now() < deadline, "no STOPPING=1: {:?}", sd.all());
        std::thread::sleep(Duration::from_millis(1));
    }
    let at_stopping = walk(&dir);
    let status = s.stop();
    assert!(status.success(), "exit status {status:?}");
    let after = walk(&dir);
    assert_eq!(
        after, at_stopping,
        "no file may appear once shutdown has begun"
    );
    let logs = s.logs();
    let line = |needle: &str| {
        logs.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no '{needle}' in:\n{logs}"))
    };
    let tasks = &logs.lines().nth(line("background tasks stopped")).unwrap();
    let n: usize = tasks
        .split("tasks=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    // watchdog, fleet heartbeat, disk watcher, idle sessions, revocation pruning at least
    assert!(n >= 5, "{tasks}");
    assert!(!logs.contains("background tasks aborted"), "{logs}");
    // in that order: tasks, then the files, then the node
    assert!(line("background tasks stopped") < line("recording ended"));
    // every row closed by the shutdown names the size its file has: nothing wrote after
    let sizes: Vec<u64> = after
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    s.start_again();
    let admin = s.login("admin", support::ADMIN_PW).await;
    let rows: Vec<Value> = s
        .recordings(&admin, "")
        .await
        .into_iter()
        .filter(|r| r["note"] == "vigia shut down")
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mut want: Vec<u64> = rows
        .iter()
        .map(|r| r["file_size"].as_u64().unwrap())
        .collect();
    let mut have = sizes;
    want.sort_unstable();
    have.sort_unstable();
    assert_eq!(have, want, "file sizes on disk against the rows");
}

/// An ext4 image mounted on a loop device, unfrozen and unmounted however the test ends.
struct Disk {
    mnt: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Disk {
    fn mount() -> Disk {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?} failed (the stalled-disk test needs root, loop devices, e2fsprogs and util-linux): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("truncate").args(["-s", "64M"]).arg(&img));
        run(Command::new("mkfs.ext4").arg("-q").arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        Disk { mnt, _dir: dir }
    }

    fn freeze(&self, on: bool) {
        let flag = if on { "-f" } else { "-u" };
        let st = Command::new("fsfreeze")
            .arg(flag)
            .arg(&self.mnt)
            .status()
            .unwrap();
        assert!(st.success(), "fsfreeze {flag}");
    }
}

/// Unfreezes the disk when dropped: declared after the server, so a failing test thaws the
/// disk before it kills vigia (whose threads would otherwise wait on the frozen disk forever).
struct Thaw<'a>(&'a Disk);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0.mnt).status();
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.mnt).status();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_recorder_stops_the_watchdog_pings() {
    let disk = Disk::mount();
    let rec_dir = disk.mnt.join("recordings");
    let sd = FakeSystemd::start();
    let cams = Camsim::start();
    let s = Server::start_with(&[
        ("NOTIFY_SOCKET", &sd.name),
        ("WATCHDOG_USEC", "2000000"),
        ("RECORDINGS_DIR", rec_dir.to_str().unwrap()),
        ("MIN_FREE_DISK_MB", "0"),
    ]);
    let _thaw = Thaw(&disk);
    let admin = s.bootstrap_admin().await;
    record(&s, &admin, "127.0.2.2", &cams.url("cam2")).await;
    wait_until("fragments reach the disk", 20, async || {
        let f = walk(&rec_dir)
            .into_iter()
            .find(|p| p.extension().is_some_and(|x| x == "mp4"))?;
        (std::fs::metadata(&f).ok()?.len() > 100_000).then_some(())
    })
    .await;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sd.pings_since(t).len() >= 2, "healthy: pings every second");

    // the disk hangs: the recorder blocks, frames keep coming, nothing is written
    disk.freeze(true);
    let frozen = Instant::now();
    let unhealthy = wait_until("STATUS reports the stall", 30, async || {
        let found = sd
            .statuses()
            .into_iter()
            .find(|s| s.starts_with("unhealthy: 1 recording(s) stalled: camera 127.0.2.2"));
        if found.is_none() && frozen.elapsed() > Duration::from_secs(28) {
            eprintln!("messages: {:?}\nlog:\n{}", sd.all(), s.logs());
        }
        found
    })
    .await;
    eprintln!("{unhealthy} ({:?} after the freeze)", frozen.elapsed());
    // from then on no ping for longer than WATCHDOG_USEC: systemd would kill and restart
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let late = sd.pings_since(quiet_from);
    assert!(late.is_empty(), "{} pings while stalled", late.len());
    let last = sd.pings_since(frozen).last().copied().unwrap_or(frozen);
    assert!(
        quiet_from.elapsed() + (quiet_from - last) > Duration::from_secs(4),
        "the silence outlasts WATCHDOG_USEC twice"
    );

    // the disk comes back: the recording goes on and the pings resume
    disk.freeze(false);
    let back = Instant::now();
    wait_until("pings resume", 20, async || {
        (!sd.pings_since(back).is_empty()).then_some(())
    })
    .await;
    assert!(s.logs().contains("unhealthy: watchdog pings withheld"));
}

#[test]
fn the_unit_file_verifies_clean_and_is_sandboxed() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/vigia.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "StartLimitBurst=5",
        "User=vigia",
        "StateDirectory=vigia",
        "EnvironmentFile=-/etc/vigia/vigia.env",
        "ProtectSystem=strict",
        "ReadWritePaths=-/srv/vigia",
        "NoNewPrivileges=yes",
        "MemoryHigh=40%",
        "MemoryMax=60%",
        "TasksMax=640",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectHome=yes",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    // verify checks that ExecStart exists: point it at the binary under test
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigia.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/vigia", env!("CARGO_BIN_EXE_vigia")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt-get install systemd; ./scripts/test.sh does this)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // it exits 0 even on typos: any output is a failure
    assert!(
        said.trim().is_empty() && out.status.success(),
        "systemd-analyze verify: {said}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for vigia.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 3.0, "exposure {score} > 3.0");
}
