//! Settings: environment (and `./.env`), overridden by flags, validated once at start.
//!
//! The variable names are the old Flask backend's (`SECRET_KEY`, `MAX_STREAMS`, …) plus new ones
//! in the same style (`LISTEN_ADDR`, `DATA_DIR`, `TLS_CERT`, `TLS_KEY`). Every value is parsed
//! here, so a bad one stops start-up with one line naming the variable (exit code 78,
//! `EX_CONFIG`) instead of failing later in a handler.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::store::{DbConfig, DbLocation};

use clap::Args;
use jsonwebtoken::Algorithm;

/// Exit code for a configuration error (sysexits.h `EX_CONFIG`).
pub const EXIT_CONFIG: i32 = 78;

/// Largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most HTTP connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 2048;

/// The raw settings as clap reads them from flags and environment.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<String>,
    /// Directory for the embedded database and the generated secret key.
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<String>,
    /// Key for JWT signatures and credential sealing (>= 32 bytes). Generated when unset.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Bearer token a Prometheus scraper sends for `/metrics` (>= 16 characters); admins'
    /// login tokens work too.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// HS256, HS384 or HS512.
    #[arg(long, env = "JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    /// Token lifetime in seconds.
    #[arg(long, env = "JWT_TOKEN_EXPIRATION")]
    pub jwt_token_expiration: Option<String>,
    /// Comma-separated origins allowed by CORS (`*` for any).
    #[arg(long, env = "ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Comma-separated host names the box answers to besides its addresses, `localhost` and
    /// its own host name (`*` for any name).
    #[arg(long, env = "ALLOWED_HOSTS")]
    pub allowed_hosts: Option<String>,
    /// Most camera sessions open at once.
    #[arg(long, env = "MAX_STREAMS")]
    pub max_streams: Option<String>,
    /// Seconds a live session stays up after its last viewer.
    #[arg(long, env = "STREAM_TIMEOUT")]
    pub stream_timeout: Option<String>,
    /// Seconds discovery results are cached.
    #[arg(long, env = "CACHE_TTL")]
    pub cache_ttl: Option<String>,
    /// Serve LL-HLS parts (true) or plain HLS segments only (false).
    #[arg(long, env = "LOW_LATENCY_HLS")]
    pub low_latency_hls: Option<String>,
    /// Where recordings are written (default: DATA_DIR/recordings).
    #[arg(long, env = "RECORDINGS_DIR")]
    pub recordings_dir: Option<String>,
    /// Most recordings one user may have running at once.
    #[arg(long, env = "MAX_RECORDINGS_PER_USER")]
    pub max_recordings_per_user: Option<String>,
    /// Comma-separated TCP ports discovery scans.
    #[arg(long, env = "SCAN_PORTS")]
    pub scan_ports: Option<String>,
    /// JSON object brand → RTSP URL template with {ip}, {port}, {user}, {password},
    /// {channel} (the old backend's setting): replaces built-in brands' templates, adds brands.
    #[arg(long, env = "RTSP_TEMPLATES")]
    pub rtsp_templates: Option<String>,
    /// Seconds to wait for ONVIF answers.
    #[arg(long, env = "ONVIF_TIMEOUT")]
    pub onvif_timeout: Option<String>,
    /// CIDR discovery scans when the request names none.
    #[arg(long, env = "DEFAULT_NETWORK_RANGE")]
    pub default_network_range: Option<String>,
    /// PEM certificate chain; with TLS_KEY, serve HTTPS.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key; with TLS_CERT, serve HTTPS.
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<String>,
    /// Seconds after which a continuous recording rotates to a new file.
    #[arg(long, env = "RECORDING_SEGMENT_SECONDS")]
    pub recording_segment_seconds: Option<String>,
    /// Most seconds between fdatasync calls of a recording file.
    #[arg(long, env = "RECORDING_SYNC_SECONDS")]
    pub recording_sync_seconds: Option<String>,
    /// Free space (MiB) under RECORDINGS_DIR below which recordings do not start.
    #[arg(long, env = "MIN_FREE_DISK_MB")]
    pub min_free_disk_mb: Option<String>,
    /// Days finished recordings are kept (unset: until space is needed).
    #[arg(long, env = "RETENTION_DAYS")]
    pub retention_days: Option<String>,
    /// postgres://user:pass@host:port/db?sslmode=require: use PostgreSQL instead of redb.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL host (the old backend's DB_* settings; DATABASE_URL wins).
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,
    #[arg(long, env = "DB_PORT")]
    pub db_port: Option<String>,
    #[arg(long, env = "DB_USER")]
    pub db_user: Option<String>,
    #[arg(long, env = "DB_PASS", hide_env_values = true)]
    pub db_pass: Option<String>,
    #[arg(long, env = "DB_NAME")]
    pub db_name: Option<String>,
    /// PEM CA certificate(s) that sign the PostgreSQL server's certificate (TLS).
    #[arg(long, env = "DB_CA_CERT")]
    pub db_ca_cert: Option<String>,
    /// TLS to PostgreSQL: `require` or `disable` (default: disable on loopback or a Unix
    /// socket, require elsewhere; a DATABASE_URL with `sslmode=` keeps its own).
    #[arg(long, env = "DB_SSLMODE")]
    pub db_sslmode: Option<String>,
    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "DB_POOL_SIZE")]
    pub db_pool_size: Option<String>,
    /// This box's name among the boxes sharing a database (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The URL other boxes send this box's cameras' requests to (default: from LISTEN_ADDR).
    #[arg(long, env = "NODE_URL")]
    pub node_url: Option<String>,
    /// Seconds without a heartbeat after which a node counts as down.
    #[arg(long, env = "NODE_STALE_SECONDS")]
    pub node_stale_seconds: Option<String>,
    /// Threads that run the async work (RTSP, HTTP, HLS); disk writes and password hashing
    /// have their own pool.
    #[arg(long, env = "WORKER_THREADS")]
    pub worker_threads: Option<String>,
    /// Most HTTP connections open at once from one address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: use (or create) `DATA_DIR/secret_key`.
    pub secret_key: Option<Vec<u8>>,
    pub jwt_algorithm: Algorithm,
    pub jwt_expiration_secs: u64,
    /// `METRICS_TOKEN`: a scraper's bearer token for `/metrics`.
    pub metrics_token: Option<String>,
    pub allowed_origins: Vec<String>,
    /// `ALLOWED_HOSTS` without `*`, lowercased.
    pub allowed_hosts: Vec<String>,
    /// `ALLOWED_HOSTS` has `*`: any `Host` is answered.
    pub any_host: bool,
    pub max_streams: u32,
    pub stream_timeout_secs: u64,
    pub cache_ttl_secs: u64,
    pub low_latency_hls: bool,
    pub recordings_dir: PathBuf,
    pub max_recordings_per_user: u32,
    pub scan_ports: Vec<u16>,
    /// `RTSP_TEMPLATES`, checked (see `camera::templates::configure`).
    pub rtsp_templates: Vec<(crate::store::Brand, String)>,
    pub onvif_timeout_secs: u64,
    pub default_network_range: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `Some`: Postgres mode; `None`: the embedded redb store.
    pub database: Option<DbConfig>,
    pub recording_segment_secs: u64,
    pub recording_sync_secs: u64,
    pub min_free_disk_mb: u64,
    /// `None`: keep recordings until space is needed.
    pub retention_days: Option<u64>,
    /// `NODE_NAME`.
    pub node_name: String,
    /// `NODE_URL`, without a trailing slash; `None`: [`default_node_url`] of the bound address.
    pub node_url: Option<String>,
    pub node_stale_secs: u64,
    /// `WORKER_THREADS`.
    pub worker_threads: usize,
    /// `MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: usize,
}

/// The machine's host name (`NODE_NAME`'s default).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "vigia".into())
}

/// `NODE_NAME`: 1-64 letters, digits, `.`, `_` or `-`.
fn node_name(a: &ServeArgs) -> Result<String, ConfigError> {
    let name = nonempty(&a.node_name).map_or_else(host_name, str::to_string);
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(err(
            "NODE_NAME",
            format!("'{name}' must be 1 to 64 letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(name)
}

/// `NODE_URL`'s default: the address the listener is bound to, or the host name when it
/// listens on every interface.
pub fn default_node_url(bound: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match bound.ip() {
        ip if ip.is_unspecified() => host_name(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}", bound.port())
}

/// `NODE_URL`: http(s)://host[:port] without a path.
fn node_url(a: &ServeArgs) -> Result<Option<String>, ConfigError> {
    let Some(u) = nonempty(&a.node_url) else {
        return Ok(None);
    };
    let u = u.trim_end_matches('/');
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']) => {
            Ok(Some(u.to_string()))
        }
        _ => Err(err(
            "NODE_URL",
            format!("'{u}' must look like http://host:port (no path, no credentials)"),
        )),
    }
}

/// A setting that cannot be used, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Parses an integer in `[min, max]`, or returns the default when unset or empty.
fn int<T>(
    var: &'static str,
    v: &Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => {
            let n: T = s
                .parse()
                .map_err(|_| err(var, format!("'{s}' is not a whole number")))?;
            if n < min || n > max {
                return Err(err(var, format!("{n} is out of range {min}..={max}")));
            }
            Ok(n)
        }
    }
}

fn boolean(var: &'static str, v: &Option<String>, default: bool) -> Result<bool, ConfigError> {
    match v.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) => match s.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(err(var, format!("'{s}' is not true or false"))),
        },
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The items of a comma-separated setting, trimmed, empty ones left out.
fn items(v: &Option<String>) -> impl Iterator<Item = &str> {
    v.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
}

/// Checks an IPv4 CIDR such as `192.168.1.0/24`.
/// Settings of the Flask backend that vigia has no use for (it remuxes in-process: no ffmpeg,
/// HLS in RAM, no Flask), among `vars`: sorted names, for one warning at start.
pub fn unused_flask_settings(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut names: Vec<String> = vars
        .map(|(k, _)| k)
        .filter(|k| {
            k.starts_with("FFMPEG_")
                || ["HLS_OUTPUT_DIR", "BASE_DIR", "FLASK_ENV"].contains(&k.as_str())
        })
        .collect();
    names.sort();
    names
}

pub fn parse_cidr(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (ip, len) = s.trim().split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip, len))
}

/// `LISTEN_ADDR` (default `0.0.0.0:5000`).
fn listen_addr(a: &ServeArgs) -> Result<SocketAddr, ConfigError> {
    match nonempty(&a.listen_addr) {
        None => Ok(SocketAddr::from(([0, 0, 0, 0], 5000))),
        Some(s) => s.parse().map_err(|_| {
            err(
                "LISTEN_ADDR",
                format!("'{s}' is not an address:port such as 0.0.0.0:5000"),
            )
        }),
    }
}

/// `SECRET_KEY`: at least 32 bytes, or unset (one is generated in `DATA_DIR`).
fn secret_key(a: &ServeArgs) -> Result<Option<Vec<u8>>, ConfigError> {
    match a.secret_key.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.len() < 32 => Err(err(
            "SECRET_KEY",
            format!(
                "too short ({} bytes); use at least 32 random bytes, e.g. `openssl rand -hex 32`, or unset it to have one generated",
                s.len()
            ),
        )),
        Some(s) => Ok(Some(s.as_bytes().to_vec())),
    }
}

/// `METRICS_TOKEN`: 16 to 256 visible ASCII characters, or unset (only admins read `/metrics`).
fn metrics_token(a: &ServeArgs) -> Result<Option<String>, ConfigError> {
    match nonempty(&a.metrics_token) {
        None => Ok(None),
        Some(t) if (16..=256).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(t.to_string()))
        }
        Some(t) => Err(err(
            "METRICS_TOKEN",
            format!(
                "must be 16 to 256 visible ASCII characters (it has {}), e.g. `openssl rand -hex 24`",
                t.len()
            ),
        )),
    }
}

/// `JWT_ALGORITHM`: HS256 (default), HS384 or HS512.
fn jwt_algorithm(a: &ServeArgs) -> Result<Algorithm, ConfigError> {
    match nonempty(&a.jwt_algorithm).unwrap_or("HS256") {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        other => Err(err(
            "JWT_ALGORITHM",
            format!("'{other}' is not supported (expected HS256, HS384 or HS512)"),
        )),
    }
}

/// `ALLOWED_HOSTS`: host names, lowercased, without a trailing dot; `*` kept as it is.
fn allowed_hosts(a: &ServeArgs) -> Result<Vec<String>, ConfigError> {
    let hosts: Vec<String> = items(&a.allowed_hosts)
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(bad) = hosts.iter().find(|h| {
        *h != "*"
            && !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    }) {
        return Err(err(
            "ALLOWED_HOSTS",
            format!("'{bad}' is not a host name (a comma-separated list of names, or *)"),
        ));
    }
    Ok(hosts)
}

/// `ALLOWED_ORIGINS`: `http(s)://` origins without a trailing slash, or `*`.
fn allowed_origins(a: &ServeArgs) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = items(&a.allowed_origins)
        .map(|o| o.trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    for o in &origins {
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(err(
                "ALLOWED_ORIGINS",
                format!("'{o}' is not an origin such as http://192.168.1.20:8080 (or *)"),
            ));
        }
    }
    Ok(origins)
}

/// `SCAN_PORTS`: TCP ports, comma-separated (default: the RTSP and ONVIF ports cameras use).
fn scan_ports(a: &ServeArgs) -> Result<Vec<u16>, ConfigError> {
    if nonempty(&a.scan_ports).is_none() {
        return Ok(vec![554, 80, 8000, 8554, 8899, 37777, 34567]);
    }
    let mut ports = Vec::new();
    for p in items(&a.scan_ports) {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => ports.push(n),
            _ => return Err(err("SCAN_PORTS", format!("'{p}' is not a TCP port"))),
        }
    }
    if ports.is_empty() {
        return Err(err("SCAN_PORTS", "no port given"));
    }
    Ok(ports)
}

/// `DEFAULT_NETWORK_RANGE`: an IPv4 CIDR (default `192.168.1.0/24`).
fn default_network_range(a: &ServeArgs) -> Result<String, ConfigError> {
    let range = nonempty(&a.default_network_range).unwrap_or("192.168.1.0/24");
    if parse_cidr(range).is_none() {
        return Err(err(
            "DEFAULT_NETWORK_RANGE",
            format!("'{range}' is not an IPv4 CIDR such as 192.168.1.0/24"),
        ));
    }
    Ok(range.to_string())
}

/// `TLS_CERT` and `TLS_KEY`: both readable files, or neither.
fn tls(a: &ServeArgs) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (nonempty(&a.tls_cert), nonempty(&a.tls_key)) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => {
            for (var, path) in [("TLS_CERT", c), ("TLS_KEY", k)] {
                std::fs::File::open(path)
                    .map_err(|e| err(var, format!("cannot read {path}: {e}")))?;
            }
            Ok(Some((PathBuf::from(c), PathBuf::from(k))))
        }
        (Some(_), None) => Err(err("TLS_KEY", "TLS_CERT is set but TLS_KEY is not")),
        (None, Some(_)) => Err(err("TLS_CERT", "TLS_KEY is set but TLS_CERT is not")),
    }
}

/// The PostgreSQL settings in `a` (`DATABASE_URL` or `DB_*`), `None` for the embedded store.
pub fn database(a: &ServeArgs) -> Result<Option<DbConfig>, ConfigError> {
    let location = if let Some(url) = nonempty(&a.database_url) {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(err(
                "DATABASE_URL",
                "must start with postgres:// (unset it to use the embedded store)",
            ));
        }
        DbLocation::Url(url.to_string())
    } else if let Some(host) = nonempty(&a.db_host) {
        DbLocation::Parts {
            host: host.to_string(),
            port: int("DB_PORT", &a.db_port, 5432, 1, 65535)?,
            user: nonempty(&a.db_user).unwrap_or("vigia").to_string(),
            password: a.db_pass.clone().filter(|p| !p.is_empty()),
            dbname: nonempty(&a.db_name).unwrap_or("vigia").to_string(),
        }
    } else {
        return Ok(None);
    };
    let var = match location {
        DbLocation::Url(_) => "DATABASE_URL",
        DbLocation::Parts { .. } => "DB_HOST",
    };
    #[cfg(feature = "postgres")]
    crate::store::postgres::pg_config(&location).map_err(|e| err(var, e))?;
    if !cfg!(feature = "postgres") {
        return Err(err(
            var,
            "this vigia was built without PostgreSQL support (cargo feature `postgres`); rebuild with --features postgres, or unset DATABASE_URL and DB_HOST to use the embedded store",
        ));
    }
    let ca_cert = nonempty(&a.db_ca_cert).map(PathBuf::from);
    if let Some(p) = &ca_cert {
        std::fs::File::open(p)
            .map_err(|e| err("DB_CA_CERT", format!("cannot read {}: {e}", p.display())))?;
    }
    let require_tls = match nonempty(&a.db_sslmode) {
        None => None,
        Some("require") => Some(true),
        Some("disable") => Some(false),
        Some(other) => {
            return Err(err(
                "DB_SSLMODE",
                format!("'{other}' must be require or disable (vigia never falls back silently)"),
            ))
        }
    };
    Ok(Some(DbConfig {
        location,
        ca_cert,
        require_tls,
        pool_size: int("DB_POOL_SIZE", &a.db_pool_size, 16, 1, 512)?,
    }))
}

impl Config {
    pub fn from_args(a: &ServeArgs) -> Result<Config, ConfigError> {
        let data_dir = PathBuf::from(nonempty(&a.data_dir).unwrap_or("./data"));
        let secret_key = secret_key(a)?;
        let allowed_hosts = allowed_hosts(a)?;
        let recordings_dir = nonempty(&a.recordings_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("recordings"));
        let database = database(a)?;
        if database.is_some() && secret_key.is_none() {
            return Err(err(
                "SECRET_KEY",
                "is required in Postgres mode: every box sharing the database must use the same key (copy DATA_DIR/secret_key of the first box)",
            ));
        }
        Ok(Config {
            recording_segment_secs: int(
                "RECORDING_SEGMENT_SECONDS",
                &a.recording_segment_seconds,
                900,
                10,
                86400,
            )?,
            recording_sync_secs: int(
                "RECORDING_SYNC_SECONDS",
                &a.recording_sync_seconds,
                5,
                1,
                3600,
            )?,
            min_free_disk_mb: int("MIN_FREE_DISK_MB", &a.min_free_disk_mb, 1024, 0, 1 << 30)?,
            retention_days: match nonempty(&a.retention_days) {
                None => None,
                Some(_) => Some(int("RETENTION_DAYS", &a.retention_days, 0, 1, 36500)?),
            },
            node_name: node_name(a)?,
            node_url: node_url(a)?,
            node_stale_secs: int("NODE_STALE_SECONDS", &a.node_stale_seconds, 10, 2, 3600)?,
            worker_threads: int("WORKER_THREADS", &a.worker_threads, 1, 1, 64)? as usize,
            max_connections_per_ip: int(
                "MAX_CONNECTIONS_PER_IP",
                &a.max_connections_per_ip,
                128,
                1,
                MAX_CONNECTIONS as u64,
            )? as usize,
            database,
            listen_addr: listen_addr(a)?,
            data_dir,
            secret_key,
            jwt_algorithm: jwt_algorithm(a)?,
            metrics_token: metrics_token(a)?,
            jwt_expiration_secs: int(
                "JWT_TOKEN_EXPIRATION",
                &a.jwt_token_expiration,
                3600,
                60,
                30 * 86400,
            )?,
            allowed_origins: allowed_origins(a)?,
            allowed_hosts: allowed_hosts
                .iter()
                .filter(|h| *h != "*")
                .cloned()
                .collect(),
            any_host: allowed_hosts.iter().any(|h| h == "*"),
            max_streams: int("MAX_STREAMS", &a.max_streams, 128, 1, 4096)?,
            stream_timeout_secs: int("STREAM_TIMEOUT", &a.stream_timeout, 300, 0, 86400)?,
            cache_ttl_secs: int("CACHE_TTL", &a.cache_ttl, 300, 0, 86400)?,
            low_latency_hls: boolean("LOW_LATENCY_HLS", &a.low_latency_hls, true)?,
            recordings_dir,
            max_recordings_per_user: int(
                "MAX_RECORDINGS_PER_USER",
                &a.max_recordings_per_user,
                50,
                0,
                100_000,
            )?,
            scan_ports: scan_ports(a)?,
            rtsp_templates: match nonempty(&a.rtsp_templates) {
                None => Vec::new(),
                Some(json) => crate::camera::templates::parse_configured(json)
                    .map_err(|e| err("RTSP_TEMPLATES", e))?,
            },
            onvif_timeout_secs: int("ONVIF_TIMEOUT", &a.onvif_timeout, 5, 1, 60)?,
            default_network_range: default_network_range(a)?,
            tls: tls(a)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flask_backends_unused_settings_are_named() {
        let vars = [
            ("FFMPEG_PATH", "/usr/bin/ffmpeg"),
            ("SECRET_KEY", "x"),
            ("FLASK_ENV", "production"),
            ("HLS_OUTPUT_DIR", "/tmp/hls"),
            ("BASE_DIR", "/opt/app"),
            ("FFMPEG_LOGLEVEL", "error"),
            ("MAX_STREAMS", "16"),
            ("XFFMPEG_", "no"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            unused_flask_settings(vars),
            [
                "BASE_DIR",
                "FFMPEG_LOGLEVEL",
                "FFMPEG_PATH",
                "FLASK_ENV",
                "HLS_OUTPUT_DIR"
            ]
        );
    }

    #[test]
    fn defaults_are_the_old_backends() {
        let c = Config::from_args(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen_addr.port(), 5000);
        assert_eq!(c.jwt_expiration_secs, 3600);
        assert_eq!(c.max_streams, 128);
        assert_eq!(c.stream_timeout_secs, 300);
        assert_eq!(c.cache_ttl_secs, 300);
        assert!(c.low_latency_hls);
        assert_eq!(c.max_recordings_per_user, 50);
        assert_eq!(c.onvif_timeout_secs, 5);
        assert_eq!(c.scan_ports, vec![554, 80, 8000, 8554, 8899, 37777, 34567]);
        assert!(c.secret_key.is_none());
        assert!(c.tls.is_none());
        assert_eq!(c.recordings_dir, PathBuf::from("./data/recordings"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: Vec<(ServeArgs, &str)> = vec![
            (
                ServeArgs {
                    jwt_algorithm: Some("RS256".into()),
                    ..Default::default()
                },
                "JWT_ALGORITHM",
            ),
            (
                ServeArgs {
                    jwt_algorithm: Some("none".into()),
                    ..Default::default()
                },
                "JWT_ALGORITHM",
            ),
            (
                ServeArgs {
                    max_streams: Some("lots".into()),
                    ..Default::default()
                },
                "MAX_STREAMS",
            ),
            (
                ServeArgs {
                    max_streams: Some("0".into()),
                    ..Default::default()
                },
                "MAX_STREAMS",
            ),
            (
                ServeArgs {
                    listen_addr: Some("nowhere".into()),
                    ..Default::default()
                },
                "LISTEN_ADDR",
            ),
            (
                ServeArgs {
                    secret_key: Some("short".into()),
                    ..Default::default()
                },
                "SECRET_KEY",
            ),
            (
                ServeArgs {
                    metrics_token: Some("short".into()),
                    ..Default::default()
                },
                "METRICS_TOKEN",
            ),
            (
                ServeArgs {
                    low_latency_hls: Some("maybe".into()),
                    ..Default::default()
                },
                "LOW_LATENCY_HLS",
            ),
            (
                ServeArgs {
                    scan_ports: Some("554,99999".into()),
                    ..Default::default()
                },
                "SCAN_PORTS",
            ),
            (
                ServeArgs {
                    default_network_range: Some("10.0.0.0/33".into()),
                    ..Default::default()
                },
                "DEFAULT_NETWORK_RANGE",
            ),
            (
                ServeArgs {
                    allowed_origins: Some("example.com".into()),
                    ..Default::default()
                },
                "ALLOWED_ORIGINS",
            ),
            (
                ServeArgs {
                    tls_cert: Some("/c.pem".into()),
                    ..Default::default()
                },
                "TLS_KEY",
            ),
            (
                ServeArgs {
                    jwt_token_expiration: Some("-5".into()),
                    ..Default::default()
                },
                "JWT_TOKEN_EXPIRATION",
            ),
        ];
        for (args, var) in cases {
            let e = Config::from_args(&args).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().starts_with(&format!("invalid {var}: ")));
        }
    }

    #[test]
    fn lists_are_parsed() {
        let c = Config::from_args(&ServeArgs {
            allowed_origins: Some("http://a.lan:8080/, https://b.lan".into()),
            scan_ports: Some("554, 8554".into()),
            jwt_algorithm: Some("HS512".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["http://a.lan:8080", "https://b.lan"]
        );
        assert_eq!(c.scan_ports, vec![554, 8554]);
        assert_eq!(c.jwt_algorithm, Algorithm::HS512);
    }

    #[test]
    fn postgres_settings() {
        let key = Some("k".repeat(32));
        let e = Config::from_args(&ServeArgs {
            database_url: Some("postgres://u:p@h/db".into()),
            ..Default::default()
        })
        .unwrap_err();
        if cfg!(feature = "postgres") {
            assert_eq!(e.var, "SECRET_KEY", "{e}");
            let c = Config::from_args(&ServeArgs {
                db_host: Some("db.lan".into()),
                db_pass: Some("pw".into()),
                secret_key: key.clone(),
                ..Default::default()
            })
            .unwrap();
            let db = c.database.unwrap();
            assert_eq!(db.pool_size, 16);
            assert_eq!(
                format!("{:?}", db.location),
                "DbLocation::Parts(vigia@db.lan:5432/vigia)"
            );
            let e = Config::from_args(&ServeArgs {
                database_url: Some("postgres://h/db?sslmode=bogus".into()),
                secret_key: key.clone(),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(e.var, "DATABASE_URL");
            // TLS to the database is decided, never "prefer" (a silent fall-back to clear text)
            let e = Config::from_args(&ServeArgs {
                db_host: Some("db.lan".into()),
                db_sslmode: Some("prefer".into()),
                secret_key: key,
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(e.var, "DB_SSLMODE");
        } else {
            // a lean build told to use Postgres says so instead of silently using redb
            assert_eq!(e.var, "DATABASE_URL");
            assert!(e.message.contains("without PostgreSQL support"), "{e}");
        }
        let e = Config::from_args(&ServeArgs {
            database_url: Some("mysql://h/db".into()),
            secret_key: Some("k".repeat(32)),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
    }
}
