//! A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary directory and
//! `pg_ctl start` on a free loopback port, once per test binary; each test gets its own
//! database. A watcher process stops the cluster and removes its files when the test binary
//! exits, however it exits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct PgCluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. Install them with:\n  \
             apt-get install -y --no-install-recommends postgresql postgresql-client\n\
             (./scripts/test.sh does this for you)"
        )
    })
}

impl PgCluster {
    fn cmd(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, mut c: Command, what: &str) {
        let out = c
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> PgCluster {
        Self::start_custom(None)
    }

    /// A cluster of its own; with `tls` (certificate PEM, key PEM) it accepts TLS
    /// connections only (`hostssl` in pg_hba.conf).
    pub fn start_custom(tls: Option<(&str, &str)>) -> PgCluster {
        let bin = pg_bin();
        let as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("vigia-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if as_postgres {
            let pg = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("the postgres user (created by the postgresql package)");
            nix::unistd::chown(&dir, Some(pg.uid), Some(pg.gid)).unwrap();
        }
        let c = PgCluster {
            port: super::free_port(),
            dir: dir.clone(),
            bin,
            as_postgres,
        };
        let data = dir.join("data");
        let mut init = c.cmd(&c.bin.join("initdb"));
        init.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        c.run(init, "initdb");
        let mut extra = String::new();
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            if as_postgres {
                let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
                for f in ["server.crt", "server.key", "pg_hba.conf"] {
                    nix::unistd::chown(&data.join(f), Some(pg.uid), Some(pg.gid)).unwrap();
                }
            }
            extra = " -c ssl=on".into();
        }
        let mut start = c.cmd(&c.bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200{extra}",
                c.port,
                dir.display()
            ));
        start.args(["-w", "start"]);
        c.run(start, "pg_ctl start");
        // stop the cluster and remove it when this test binary exits
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runas} {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runas = if as_postgres { "runuser -u postgres --" } else { "" },
            pg_ctl = c.bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("setsid")
            .args(["-f", "sh", "-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn the cluster watcher");
        c
    }

    /// Runs SQL as the superuser on `db`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("psql (apt-get install postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database and its URL.
    pub fn new_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static PgCluster {
    CLUSTER.get_or_init(PgCluster::start)
}
