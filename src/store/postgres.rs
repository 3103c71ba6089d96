//! The PostgreSQL store (cargo feature `postgres`), for installations where several boxes
//! share users, cameras, permissions and, later, the recording index.
//!
//! Same semantics as the redb store, checked by the same conformance suite. Every statement is
//! a fixed SQL text with `$n` parameters (no SQL is ever assembled from values). Uniqueness is
//! the schema's (`UNIQUE`, primary keys), cascades are foreign keys, the last-admin rule locks
//! the admin rows (`FOR UPDATE`) in the transaction that changes a role, and the first-user
//! rule takes a transaction-scoped advisory lock. Nothing is cached in the process, so a
//! change made through one box is seen by every other at once.
//!
//! Migrations (`migrations/NNNN_*.sql`) are embedded and applied at start in one transaction
//! holding an advisory lock, so two boxes starting together do not race.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use tracing::info;

use super::error::{Error, Kind, Result};
use super::{
    Brand, Camera, CameraPatch, CreateMode, Dump, ImportReport, NewRecording, NewUser, Node,
    NodeBeat, Recording, RecordingEnd, RecordingFilter, RecordingStatus, Role, Session, Store,
    Transport, User,
};
use super::{DbConfig, DbLocation};

/// The embedded migrations, in order.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_recordings.sql")),
    (3, include_str!("../../migrations/0003_fleet.sql")),
    (
        4,
        include_str!("../../migrations/0004_token_generation.sql"),
    ),
    (5, include_str!("../../migrations/0005_imported.sql")),
    (6, include_str!("../../migrations/0006_camera_type.sql")),
];

/// Advisory lock keys ("vigia" + n).
const MIGRATION_LOCK: i64 = 0x0076_6967_6961_0001;
const FIRST_USER_LOCK: i64 = 0x0076_6967_6961_0002;

/// Set on every connection: a statement running longer is cancelled by the server.
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=30000";

/// Builds the driver configuration from `DATABASE_URL` or the `DB_*` parts.
pub fn pg_config(loc: &DbLocation) -> std::result::Result<tokio_postgres::Config, String> {
    match loc {
        DbLocation::Url(url) => url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("cannot be parsed: {e}")),
        DbLocation::Parts {
            host,
            port,
            user,
            password,
            dbname,
        } => {
            let mut c = tokio_postgres::Config::new();
            c.host(host).port(*port).user(user).dbname(dbname);
            if let Some(p) = password {
                c.password(p);
            }
            Ok(c)
        }
    }
}

/// Whether every host is this machine (a Unix socket, `localhost` or a loopback address).
fn is_local(c: &tokio_postgres::Config) -> bool {
    c.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Unix(_) => true,
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// `user@host:port/db`, for messages (never the password).
fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// The driver settings for `db` (every statement limited to 30 s; TLS decided, never
/// `prefer`), the TLS connector and a description of the target for messages.
fn client_config(
    db: &DbConfig,
) -> Result<(
    tokio_postgres::Config,
    tokio_postgres_rustls::MakeRustlsConnect,
    String,
)> {
    let mut cfg = pg_config(&db.location).map_err(Error::internal)?;
    // no query of a request may hold a connection (and its locks) for long
    let options = match cfg.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {STATEMENT_TIMEOUT}"),
        _ => STATEMENT_TIMEOUT.to_string(),
    };
    cfg.options(&options);
    // `prefer` falls back to clear text without a word
    let url_says = matches!(&db.location, DbLocation::Url(u) if u.contains("sslmode="));
    if !url_says {
        let require = db.require_tls.unwrap_or_else(|| !is_local(&cfg));
        cfg.ssl_mode(if require {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Disable
        });
    }
    let target = format!("{} (TLS {:?})", describe(&cfg), cfg.get_ssl_mode());
    Ok((cfg, tls_connector(db.ca_cert.as_deref())?, target))
}

/// One connection to a database that is not vigia's (the old Flask backend's, to import from):
/// the same TLS rules as the store, no migration, nothing written. Returns the client and a
/// description of the target (never the password).
pub async fn connect_foreign(db: &DbConfig) -> Result<(tokio_postgres::Client, String)> {
    let (cfg, tls, target) = client_config(db)?;
    let (client, connection) = cfg.connect(tls).await.map_err(|e| {
        Error::unavailable(format!(
            "cannot connect to PostgreSQL at {target}: {}",
            detail(&e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "connection to the old database ended");
        }
    });
    Ok((client, target))
}

fn tls_connector(ca: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::failed(format!("cannot read DB_CA_CERT {}", path.display()), e)
                })?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::failed(
                        format!("DB_CA_CERT {} holds a bad certificate", path.display()),
                        e,
                    )
                })?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::failed("TLS setup failed", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
}

/// The error with its causes ("error performing TLS handshake: invalid peer certificate: …"),
/// or the server's own message for database errors.
fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

fn pg_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            let msg = match db.constraint() {
                Some("users_username_key") => "the username is taken",
                Some("cameras_pkey") => "the camera already exists",
                Some("cameras_ip_channel_key") => {
                    "this channel of this address is already a camera"
                }
                Some("recordings_one_open_per_camera") => {
                    "the camera is already being recorded (by this or another node)"
                }
                _ => "a row with the same key exists",
            };
            return Error::conflict(msg);
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return Error::not_found("a user or camera named in the request no longer exists");
        }
        return Error::internal(format!("database error: {}", db.message()));
    }
    if e.is_closed() {
        return Error::unavailable(format!("the database connection was lost: {}", detail(&e)));
    }
    Error::unavailable(format!("the database does not answer: {}", detail(&e)))
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        pg_error(e)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Error {
        match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error(e),
            e => Error::unavailable(format!("no database connection: {e}")),
        }
    }
}

/// Timestamps are stored with microsecond precision, as PostgreSQL keeps them.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| Error::internal(format!("unknown role '{s}' in the database")))
}

fn user_from(row: &Row) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: role(row.try_get("role")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn transport_str(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    }
}

const CAMERA_COLUMNS: &str = "id, ip, channel, name, brand, port, rtsp_url_sealed, \
    rtsp_url_display, transport, is_active, last_seen, is_recording, created_at, node, kind";

fn camera_from(row: &Row) -> Result<Camera> {
    let brand: &str = row.try_get("brand")?;
    let transport: &str = row.try_get("transport")?;
    let channel: i32 = row.try_get("channel")?;
    let port: i32 = row.try_get("port")?;
    Ok(Camera {
        id: row.try_get("id")?,
        ip: row.try_get("ip")?,
        channel: u32::try_from(channel)
            .map_err(|_| Error::internal("bad channel in the database"))?,
        name: row.try_get("name")?,
        brand: Brand::named(brand)
            .ok_or_else(|| Error::internal(format!("unknown brand '{brand}' in the database")))?,
        port: u16::try_from(port).map_err(|_| Error::internal("bad port in the database"))?,
        rtsp_url_sealed: row.try_get("rtsp_url_sealed")?,
        rtsp_url_display: row.try_get("rtsp_url_display")?,
        transport: match transport {
            "udp" => Transport::Udp,
            _ => Transport::Tcp,
        },
        is_active: row.try_get("is_active")?,
        last_seen: row.try_get("last_seen")?,
        is_recording: row.try_get("is_recording")?,
        created_at: row.try_get("created_at")?,
        kind: row.try_get("kind")?,
        node: row.try_get("node")?,
    })
}

/// A pooled connection whose statements are prepared once per connection and then reused
/// (one round trip per query instead of two).
/// A pooled connection, and when it was asked for (its time held is the store call's
/// latency in `/metrics`).
struct Conn(deadpool_postgres::Object, std::time::Instant);

impl Drop for Conn {
    fn drop(&mut self) {
        crate::metrics::STORE_POSTGRES.observe_since(self.1);
    }
}
/// A transaction on a [`Conn`], with the same statement cache.
struct Tx<'a>(deadpool_postgres::Transaction<'a>);

type Params<'p> = &'p [&'p (dyn tokio_postgres::types::ToSql + Sync)];
type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

macro_rules! cached_statements {
    ($t:ty) => {
        impl $t {
            async fn query(&self, sql: &str, p: Params<'_>) -> PgResult<Vec<Row>> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query(&st, p).await
            }
            async fn query_one(&self, sql: &str, p: Params<'_>) -> PgResult<Row> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query_one(&st, p).await
            }
            async fn query_opt(&self, sql: &str, p: Params<'_>) -> PgResult<Option<Row>> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query_opt(&st, p).await
            }
            async fn execute(&self, sql: &str, p: Params<'_>) -> PgResult<u64> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.execute(&st, p).await
            }
        }
    };
}
cached_statements!(Conn);
cached_statements!(Tx<'_>);

impl Conn {
    async fn transaction(&mut self) -> PgResult<Tx<'_>> {
        Ok(Tx(self.0.transaction().await?))
    }
    /// A read-only snapshot (export sees one consistent state).
    async fn snapshot(&mut self) -> PgResult<Tx<'_>> {
        Ok(Tx(self
            .0
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?))
    }
}

impl Tx<'_> {
    async fn commit(self) -> PgResult<()> {
        self.0.commit().await
    }
    async fn batch_execute(&self, sql: &str) -> PgResult<()> {
        self.0.batch_execute(sql).await
    }
}

/// What a [`RecordingFilter`] selects: `$1` camera ids (NULL: all), `$2` since, `$3` until.
const RECORDING_FILTER: &str = "WHERE ($1::text[] IS NULL OR camera_id = ANY($1))
    AND ($2::timestamptz IS NULL OR start_time >= $2)
    AND ($3::timestamptz IS NULL OR start_time < $3)";

const RECORDING_COLUMNS: &str = "id, camera_id, user_id, path, start_time, end_time, \
    duration_sec, file_size, status, continuous, note, node";

fn recording_from(row: &Row) -> Result<Recording> {
    let status: &str = row.try_get("status")?;
    let size: i64 = row.try_get("file_size")?;
    Ok(Recording {
        id: row.try_get("id")?,
        camera_id: row.try_get("camera_id")?,
        user_id: row.try_get("user_id")?,
        path: row.try_get("path")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        duration_sec: row.try_get("duration_sec")?,
        file_size: size.max(0) as u64,
        status: RecordingStatus::parse(status)
            .ok_or_else(|| Error::internal(format!("unknown recording status '{status}'")))?,
        continuous: row.try_get("continuous")?,
        note: row.try_get("note")?,
        node: row.try_get("node")?,
    })
}

/// The PostgreSQL-backed [`Store`].
pub struct PgStore {
    pool: Pool,
    target: String,
}

impl PgStore {
    /// Connects, checks the server answers, and applies missing migrations.
    /// Connects (a pool), with every statement limited to 30 s.
    pub async fn connect(db: &DbConfig) -> Result<PgStore> {
        let (cfg, tls, target) = client_config(db)?;
        let mgr = Manager::from_config(
            cfg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(db.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::failed("database pool", e))?;
        let store = PgStore { pool, target };
        let client = store.pool.get().await.map_err(|e| {
            let why = match &e {
                deadpool_postgres::PoolError::Backend(e) => detail(e),
                e => e.to_string(),
            };
            Error::unavailable(format!(
                "cannot connect to PostgreSQL at {}: {why}",
                store.target
            ))
        })?;
        migrate(&mut Conn(client, std::time::Instant::now())).await?;
        info!(database = %store.target, "PostgreSQL store ready");
        Ok(store)
    }

    async fn client(&self) -> Result<Conn> {
        let asked = std::time::Instant::now();
        Ok(Conn(self.pool.get().await?, asked))
    }
}

/// Applies the embedded migrations the database lacks, under an advisory lock.
async fn migrate(client: &mut Conn) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vigia_schema (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM vigia_schema", &[])
        .await?
        .get(0);
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(Error::internal(format!(
            "the database schema is version {current}, newer than this vigia knows ({newest}); run a newer vigia"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            Error::internal(format!(
                "migration {version} failed: {}",
                pg_error(e).message
            ))
        })?;
        tx.execute("INSERT INTO vigia_schema (version) VALUES ($1)", &[version])
            .await?;
        info!(version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}

/// Locks the admin rows and tells whether an admin other than `except` exists.
async fn other_admin_exists(tx: &Tx<'_>, except: i64) -> Result<bool> {
    let rows = tx
        .query("SELECT id FROM users WHERE role = 'admin' FOR UPDATE", &[])
        .await?;
    Ok(rows.iter().any(|r| r.get::<_, i64>(0) != except))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        self.client().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn create_user(&self, new: NewUser, mode: CreateMode) -> Result<User> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if mode == CreateMode::FirstUser {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_USER_LOCK])
                .await?;
            let n: i64 = tx
                .query_one("SELECT count(*) FROM users", &[])
                .await?
                .get(0);
            if n > 0 {
                return Err(Error::forbidden(
                    "users exist already; only an admin may register new ones",
                ));
            }
        }
        let row = tx
            .query_one(
                "INSERT INTO users (username, role, password_hash, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id, username, role, created_at",
                &[
                    &new.username,
                    &new.role.as_str(),
                    &new.password_hash,
                    &micros(Utc::now()),
                ],
            )
            .await
            .map_err(|e| match pg_error(e) {
                c if c.kind == Kind::Conflict => {
                    Error::conflict(format!("username '{}' is taken", new.username))
                }
                other => other,
            })?;
        let user = user_from(&row)?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, username, role, created_at FROM users WHERE id = $1",
                &[&id],
            )
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, username, role, created_at, password_hash FROM users WHERE username = $1",
                &[&username],
            )
            .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, username, role, created_at FROM users ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM users", &[])
            .await?
            .get(0);
        Ok(n as u64)
    }

    async fn set_role(&self, id: i64, new_role: Role) -> Result<User> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let others = other_admin_exists(&tx, id).await?;
        let row = tx
            .query_opt("SELECT role FROM users WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .ok_or_else(|| Error::not_found(format!("user {id} not found")))?;
        let current = role(row.get(0))?;
        if current == Role::Admin && new_role != Role::Admin && !others {
            return Err(Error::conflict(format!(
                "user {id} is the last admin; make another user admin first"
            )));
        }
        let row = tx
            .query_one(
                "UPDATE users SET role = $2 WHERE id = $1 RETURNING id, username, role, created_at",
                &[&id, &new_role.as_str()],
            )
            .await?;
        let user = user_from(&row)?;
        tx.commit().await?;
        Ok(user)
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let others = other_admin_exists(&tx, id).await?;
        let row = tx
            .query_opt("SELECT role FROM users WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .ok_or_else(|| Error::not_found(format!("user {id} not found")))?;
        if role(row.get(0))? == Role::Admin && !others {
            return Err(Error::conflict(format!(
                "user {id} is the last admin and cannot be deleted"
            )));
        }
        tx.execute("DELETE FROM users WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_camera(&self, c: Camera) -> Result<Camera> {
        let sql = format!(
            "INSERT INTO cameras ({CAMERA_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING {CAMERA_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_one(
                &sql,
                &[
                    &c.id,
                    &c.ip,
                    &(c.channel as i32),
                    &c.name,
                    &c.brand.as_str(),
                    &(c.port as i32),
                    &c.rtsp_url_sealed,
                    &c.rtsp_url_display,
                    &transport_str(c.transport),
                    &c.is_active,
                    &c.last_seen.map(micros),
                    &c.is_recording,
                    &micros(c.created_at),
                    &c.node,
                    &c.kind,
                ],
            )
            .await
            .map_err(|e| match pg_error(e) {
                x if x.kind == Kind::Conflict => Error::conflict(format!(
                    "camera {} (channel {} of {}) conflicts with an existing camera: {}",
                    c.id, c.channel, c.ip, x.message
                )),
                other => other,
            })?;
        camera_from(&row)
    }

    async fn camera(&self, id: &str) -> Result<Option<Camera>> {
        let sql = format!("SELECT {CAMERA_COLUMNS} FROM cameras WHERE id = $1");
        let row = self.client().await?.query_opt(&sql, &[&id]).await?;
        row.as_ref().map(camera_from).transpose()
    }

    async fn camera_ids(&self) -> Result<Vec<String>> {
        let sql = "SELECT id FROM cameras ORDER BY id COLLATE \"C\"";
        let rows = self.client().await?.query(sql, &[]).await?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
            .collect()
    }

    async fn cameras(&self) -> Result<Vec<Camera>> {
        let sql = format!("SELECT {CAMERA_COLUMNS} FROM cameras ORDER BY id COLLATE \"C\"");
        let rows = self.client().await?.query(&sql, &[]).await?;
        rows.iter().map(camera_from).collect()
    }

    async fn update_camera(&self, id: &str, p: CameraPatch) -> Result<Camera> {
        let (sealed, display) = match p.rtsp_url {
            Some((s, d)) => (Some(s), Some(d)),
            None => (None, None),
        };
        let sql = format!(
            "UPDATE cameras SET
                name = COALESCE($2, name),
                brand = COALESCE($3, brand),
                port = COALESCE($4, port),
                rtsp_url_sealed = COALESCE($5, rtsp_url_sealed),
                rtsp_url_display = COALESCE($6, rtsp_url_display),
                transport = COALESCE($7, transport),
                is_active = COALESCE($8, is_active),
                last_seen = COALESCE($9, last_seen),
                is_recording = COALESCE($10, is_recording),
                node = COALESCE($11, node),
                kind = COALESCE($12, kind)
             WHERE id = $1 RETURNING {CAMERA_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_opt(
                &sql,
                &[
                    &id,
                    &p.name,
                    &p.brand.map(Brand::as_str),
                    &p.port.map(|v| v as i32),
                    &sealed,
                    &display,
                    &p.transport.map(transport_str),
                    &p.is_active,
                    &p.last_seen.map(micros),
                    &p.is_recording,
                    &p.node,
                    &p.kind,
                ],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("camera {id} not found")))?;
        camera_from(&row)
    }

    async fn delete_camera(&self, id: &str) -> Result<()> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM cameras WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("camera {id} not found")));
        }
        Ok(())
    }

    async fn assign(&self, user_id: i64, camera_ids: &[String]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if tx
            .query_opt(
                "SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE",
                &[&user_id],
            )
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!("user {user_id} not found")));
        }
        let ids: Vec<String> = camera_ids.to_vec();
        let known: Vec<String> = tx
            .query(
                "SELECT id FROM cameras WHERE id = ANY($1) FOR KEY SHARE",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut unknown: Vec<String> = Vec::new();
        for id in &ids {
            if !known.contains(id) && !unknown.contains(id) {
                unknown.push(id.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(Error::not_found(format!(
                "unknown camera(s): {}; nothing assigned",
                unknown.join(", ")
            )));
        }
        tx.execute(
            "INSERT INTO user_cameras (user_id, camera_id)
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            &[&user_id, &ids],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unassign(&self, user_id: i64, camera_id: &str) -> Result<()> {
        let client = self.client().await?;
        if client
            .query_opt("SELECT 1 FROM users WHERE id = $1", &[&user_id])
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!("user {user_id} not found")));
        }
        let n = client
            .execute(
                "DELETE FROM user_cameras WHERE user_id = $1 AND camera_id = $2",
                &[&user_id, &camera_id],
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!(
                "camera {camera_id} is not assigned to user {user_id}"
            )));
        }
        Ok(())
    }

    async fn assigned_cameras(&self, user_id: i64) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT camera_id FROM user_cameras WHERE user_id = $1 ORDER BY camera_id COLLATE \"C\"",
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn is_assigned(&self, user_id: i64, camera_id: &str) -> Result<bool> {
        Ok(self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM user_cameras WHERE user_id = $1 AND camera_id = $2)",
                &[&user_id, &camera_id],
            )
            .await?
            .get(0))
    }

    async fn revoke_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
                 ON CONFLICT (jti) DO NOTHING",
                &[&jti, &micros(expires_at)],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, user_id: i64, jti: &str, generation: i64) -> Result<Session> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked,
                        u.id, u.username, u.role, u.created_at, u.token_generation
                 FROM (VALUES (1)) AS one LEFT JOIN users u ON u.id = $1",
                &[&user_id, &jti],
            )
            .await?;
        if row.try_get::<_, bool>("revoked")? {
            return Ok(Session::Revoked);
        }
        if row.try_get::<_, Option<i64>>("id")?.is_none() {
            return Ok(Session::NoUser);
        }
        if row.try_get::<_, i64>("token_generation")? != generation {
            return Ok(Session::Revoked);
        }
        Ok(Session::Active(user_from(&row)?))
    }

    async fn token_generation(&self, user_id: i64) -> Result<i64> {
        self.client()
            .await?
            .query_opt(
                "SELECT token_generation FROM users WHERE id = $1",
                &[&user_id],
            )
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| Error::not_found(format!("user {user_id} not found")))
    }

    async fn set_password(&self, user_id: i64, hash: &str) -> Result<i64> {
        self.client()
            .await?
            .query_opt(
                "UPDATE users SET password_hash = $2, token_generation = token_generation + 1
                 WHERE id = $1 RETURNING token_generation",
                &[&user_id, &hash],
            )
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| Error::not_found(format!("user {user_id} not found")))
    }

    async fn end_sessions(&self, user_id: i64) -> Result<i64> {
        self.client()
            .await?
            .query_opt(
                "UPDATE users SET token_generation = token_generation + 1
                 WHERE id = $1 RETURNING token_generation",
                &[&user_id],
            )
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| Error::not_found(format!("user {user_id} not found")))
    }

    async fn prune_revocations(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .execute("DELETE FROM revoked_tokens WHERE expires_at < $1", &[&now])
            .await?)
    }

    async fn create_recording(&self, new: NewRecording) -> Result<Recording> {
        let sql = format!(
            "INSERT INTO recordings (camera_id, user_id, path, start_time, status, continuous, node)
             VALUES ($1, $2, $3, $4, 'recording', $5, $6) RETURNING {RECORDING_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_one(
                &sql,
                &[
                    &new.camera_id,
                    &new.user_id,
                    &new.path,
                    &micros(new.start_time),
                    &new.continuous,
                    &new.node,
                ],
            )
            .await
            .map_err(|e| match pg_error(e) {
                x if x.kind == Kind::Conflict => Error::conflict(format!(
                    "camera {} is already being recorded (by this or another node)",
                    new.camera_id
                )),
                other => other,
            })?;
        recording_from(&row)
    }

    async fn finish_recording(&self, id: i64, end: RecordingEnd) -> Result<Recording> {
        let sql = format!(
            "UPDATE recordings SET end_time = $2, duration_sec = $3, file_size = $4, status = $5, note = $6
             WHERE id = $1 RETURNING {RECORDING_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_opt(
                &sql,
                &[
                    &id,
                    &micros(end.end_time),
                    &end.duration_sec,
                    &(end.file_size.min(i64::MAX as u64) as i64),
                    &end.status.as_str(),
                    &end.note,
                ],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("recording {id} not found")))?;
        recording_from(&row)
    }

    async fn recording(&self, id: i64) -> Result<Option<Recording>> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = $1");
        let row = self.client().await?.query_opt(&sql, &[&id]).await?;
        row.as_ref().map(recording_from).transpose()
    }

    async fn recordings(&self, f: &RecordingFilter) -> Result<Vec<Recording>> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings {RECORDING_FILTER}
             ORDER BY start_time DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &f.camera_ids,
                    &f.since,
                    &f.until,
                    &(f.limit.min(i64::MAX as usize) as i64),
                    &(f.offset.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        rows.iter().map(recording_from).collect()
    }

    async fn count_recordings(&self, f: &RecordingFilter) -> Result<u64> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!("SELECT count(*) FROM recordings {RECORDING_FILTER}"),
                &[&f.camera_ids, &f.since, &f.until],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn open_recordings(&self) -> Result<Vec<Recording>> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE status = 'recording' ORDER BY id"
        );
        let rows = self.client().await?.query(&sql, &[]).await?;
        rows.iter().map(recording_from).collect()
    }

    async fn oldest_recordings(&self, limit: usize, node: Option<&str>) -> Result<Vec<Recording>> {
        let client = self.client().await?;
        let rows = match node {
            Some(node) => {
                let sql = format!(
                    "SELECT {RECORDING_COLUMNS} FROM recordings
                     WHERE status <> 'recording' AND node = $2
                     ORDER BY node, start_time, id LIMIT $1"
                );
                client.query(&sql, &[&(limit as i64), &node]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {RECORDING_COLUMNS} FROM recordings WHERE status <> 'recording'
                     ORDER BY start_time, id LIMIT $1"
                );
                client.query(&sql, &[&(limit as i64)]).await?
            }
        };
        rows.iter().map(recording_from).collect()
    }

    async fn heartbeat(&self, b: &NodeBeat) -> Result<()> {
        // the row is taken over only from the same process or from a dead one
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO nodes (name, url, instance, started_at, heartbeat, live, recording, version)
                 VALUES ($1, $2, $3, $4, now(), $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET
                    url = EXCLUDED.url, instance = EXCLUDED.instance,
                    started_at = EXCLUDED.started_at, heartbeat = now(),
                    live = EXCLUDED.live, recording = EXCLUDED.recording,
                    version = EXCLUDED.version
                 WHERE nodes.instance = EXCLUDED.instance
                    OR nodes.heartbeat < now() - make_interval(secs => $8)",
                &[
                    &b.name,
                    &b.url,
                    &b.instance,
                    &micros(b.started_at),
                    &(b.live as i32),
                    &(b.recording as i32),
                    &b.version,
                    &b.stale_secs,
                ],
            )
            .await?;
        if n == 0 {
            return Err(Error::conflict(format!(
                "another running vigia already uses NODE_NAME '{}'; give every box its own name",
                b.name
            )));
        }
        Ok(())
    }

    async fn leave(&self, name: &str, instance: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE nodes SET heartbeat = heartbeat - interval '1 day', live = 0, recording = 0
                 WHERE name = $1 AND instance = $2",
                &[&name, &instance],
            )
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<Node>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, url, started_at, heartbeat, live, recording, version,
                        EXTRACT(EPOCH FROM (now() - heartbeat))::float8 AS age
                 FROM nodes ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let live: i32 = r.try_get("live")?;
                let recording: i32 = r.try_get("recording")?;
                Ok(Node {
                    name: r.try_get("name")?,
                    url: r.try_get("url")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat: r.try_get("heartbeat")?,
                    age_secs: r.try_get::<_, f64>("age")?.max(0.0),
                    live: live.max(0) as u32,
                    recording: recording.max(0) as u32,
                    version: r.try_get("version")?,
                })
            })
            .collect()
    }

    async fn claim_unowned(&self, node: &str) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let a = tx
            .execute("UPDATE cameras SET node = $1 WHERE node = ''", &[&node])
            .await?;
        let b = tx
            .execute("UPDATE recordings SET node = $1 WHERE node = ''", &[&node])
            .await?;
        tx.commit().await?;
        Ok(a + b)
    }

    async fn delete_recording(&self, id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let status: String = tx
            .query_opt(
                "SELECT status FROM recordings WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("recording {id} not found")))?
            .get(0);
        if status == "recording" {
            return Err(Error::conflict(format!(
                "recording {id} is still being written; stop it first"
            )));
        }
        tx.execute("DELETE FROM recordings WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_fingerprint(&self, fingerprint: &str, replace: bool) -> Result<Option<String>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('key_fingerprint', $1)
             ON CONFLICT (key) DO NOTHING",
            &[&fingerprint],
        )
        .await?;
        let stored: String = tx
            .query_one(
                "SELECT value FROM settings WHERE key = 'key_fingerprint' FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        if stored == fingerprint {
            tx.commit().await?;
            return Ok(None);
        }
        if replace {
            tx.execute(
                "UPDATE settings SET value = $1 WHERE key = 'key_fingerprint'",
                &[&fingerprint],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(stored))
    }

    async fn export(&self) -> Result<Dump> {
        let mut client = self.client().await?;
        let tx = client.snapshot().await?;
        let mut dump = Dump::default();
        for r in tx
            .query(
                "SELECT id, username, role, created_at, password_hash FROM users ORDER BY id",
                &[],
            )
            .await?
        {
            dump.users
                .push((user_from(&r)?, r.try_get("password_hash")?));
        }
        for r in tx
            .query(
                "SELECT id, token_generation FROM users WHERE token_generation <> 0 ORDER BY id",
                &[],
            )
            .await?
        {
            dump.generations.push((r.get(0), r.get(1)));
        }
        let sql = format!("SELECT {CAMERA_COLUMNS} FROM cameras ORDER BY id COLLATE \"C\"");
        for r in tx.query(&sql, &[]).await? {
            dump.cameras.push(camera_from(&r)?);
        }
        for r in tx
            .query("SELECT user_id, camera_id FROM user_cameras ORDER BY user_id, camera_id COLLATE \"C\"", &[])
            .await?
        {
            dump.assignments.push((r.get(0), r.get(1)));
        }
        for r in tx
            .query(
                "SELECT jti, expires_at FROM revoked_tokens ORDER BY jti COLLATE \"C\"",
                &[],
            )
            .await?
        {
            dump.revocations.push((r.get(0), r.get(1)));
        }
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings ORDER BY id");
        for r in tx.query(&sql, &[]).await? {
            dump.recordings.push(recording_from(&r)?);
        }
        tx.commit().await?;
        Ok(dump)
    }

    async fn import(&self, dump: &Dump) -> Result<ImportReport> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut rep = ImportReport::default();
        for (u, hash) in &dump.users {
            let by_name: Option<i64> = tx
                .query_opt("SELECT id FROM users WHERE username = $1", &[&u.username])
                .await?
                .map(|r| r.get(0));
            match by_name {
                Some(existing) if existing == u.id => rep.users.1 += 1,
                Some(existing) => {
                    return Err(Error::conflict(format!(
                        "username '{}' is user {existing} here but user {} in the source; nothing imported",
                        u.username, u.id
                    )))
                }
                None => {
                    let n = tx
                        .execute(
                            "INSERT INTO users (id, username, role, password_hash, created_at)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                            &[&u.id, &u.username, &u.role.as_str(), hash, &u.created_at],
                        )
                        .await?;
                    if n == 0 {
                        return Err(Error::conflict(format!(
                            "user id {} is taken by another username here; nothing imported",
                            u.id
                        )));
                    }
                    rep.users.0 += 1;
                }
            }
        }
        for (id, generation) in &dump.generations {
            tx.execute(
                "UPDATE users SET token_generation = GREATEST(token_generation, $2) WHERE id = $1",
                &[id, generation],
            )
            .await?;
        }
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'),
                           GREATEST((SELECT MAX(id) FROM users), 1))",
            &[],
        )
        .await?;
        let insert_camera = format!(
            "INSERT INTO cameras ({CAMERA_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (id) DO NOTHING"
        );
        for c in &dump.cameras {
            let n = tx
                .execute(
                    &insert_camera,
                    &[
                        &c.id,
                        &c.ip,
                        &(c.channel as i32),
                        &c.name,
                        &c.brand.as_str(),
                        &(c.port as i32),
                        &c.rtsp_url_sealed,
                        &c.rtsp_url_display,
                        &transport_str(c.transport),
                        &c.is_active,
                        &c.last_seen,
                        &c.is_recording,
                        &c.created_at,
                        &c.node,
                        &c.kind,
                    ],
                )
                .await
                .map_err(|e| match pg_error(e) {
                    x if x.kind == Kind::Conflict => Error::conflict(format!(
                        "channel {} of {} is another camera here than {} in the source; nothing imported",
                        c.channel, c.ip, c.id
                    )),
                    other => other,
                })?;
            if n == 1 {
                rep.cameras.0 += 1;
            } else {
                rep.cameras.1 += 1;
            }
        }
        for (uid, cam) in &dump.assignments {
            let n = tx
                .execute(
                    "INSERT INTO user_cameras (user_id, camera_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[uid, cam],
                )
                .await
                .map_err(|e| match pg_error(e) {
                    x if x.kind == Kind::NotFound => Error::conflict(format!(
                        "assignment of camera {cam} to user {uid} names a missing row; nothing imported"
                    )),
                    other => other,
                })?;
            if n == 1 {
                rep.assignments.0 += 1;
            } else {
                rep.assignments.1 += 1;
            }
        }
        for (jti, exp) in &dump.revocations {
            let n = tx
                .execute(
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[jti, exp],
                )
                .await?;
            if n == 1 {
                rep.revocations.0 += 1;
            } else {
                rep.revocations.1 += 1;
            }
        }
        let insert_recording = format!(
            "INSERT INTO recordings ({RECORDING_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING"
        );
        for r in &dump.recordings {
            let n = tx
                .execute(
                    &insert_recording,
                    &[
                        &r.id,
                        &r.camera_id,
                        &r.user_id,
                        &r.path,
                        &r.start_time,
                        &r.end_time,
                        &r.duration_sec,
                        &(r.file_size.min(i64::MAX as u64) as i64),
                        &r.status.as_str(),
                        &r.continuous,
                        &r.note,
                        &r.node,
                    ],
                )
                .await?;
            if n == 1 {
                rep.recordings.0 += 1;
            } else {
                rep.recordings.1 += 1;
            }
        }
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('recordings', 'id'),
                           GREATEST((SELECT MAX(id) FROM recordings), 1))",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(rep)
    }
}
