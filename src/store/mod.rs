//! The storage trait and its model types.
//!
//! Handlers and media code see only [`Store`] and the plain structs below; nothing outside this
//! module names redb (or, in Postgres mode, tokio-postgres). Both back ends keep the same
//! semantics, checked by one conformance suite (`tests/support/conformance.rs`, which
//! `tests/store.rs` runs on each; test code, not in the product): numeric user ids assigned by
//! the store, camera ids chosen by the caller, uniqueness of usernames and of camera
//! `(ip, channel)` enforced inside write transactions, "last admin" rules enforced in the same
//! transaction as the change, and every time in UTC.

pub mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redb;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::error::{Error, Kind, Result};

/// What a user may do; see `auth::authorize` for the one place that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
        }
    }
}

/// A user as the API shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A user to create; the hash is a PHC string (argon2id).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// How [`Store::create_user`] treats an empty or non-empty user table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Create only if there is no user at all (first start); otherwise `Forbidden`.
    FirstUser,
    /// Create alongside existing users.
    Normal,
}

/// Camera makes with an RTSP URL template (`camera::templates`): the five built in, and
/// those `RTSP_TEMPLATES` adds (their names live for the whole process, so a brand stays
/// `Copy`). In JSON a brand is its name; in redb rows the built-in ones keep the enum
/// encoding they always had and an added one is `Custom(name)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    Generic,
    Hikvision,
    Dahua,
    Xmeye,
    Onvif,
    /// A brand `RTSP_TEMPLATES` added (or a stored camera's, whose template may be gone).
    Custom(&'static str),
}

/// Names of added brands, each kept once for the life of the process.
static BRAND_NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// The longest brand name accepted.
pub const MAX_BRAND_NAME: usize = 32;

impl Brand {
    pub const ALL: [Brand; 5] = [
        Brand::Generic,
        Brand::Hikvision,
        Brand::Dahua,
        Brand::Xmeye,
        Brand::Onvif,
    ];
    /// A brand as a client sends it: any case, `dahu` (the Flask backend's template key) for
    /// Dahua, or a name `RTSP_TEMPLATES` added (`known` tells which).
    pub fn from_input(s: &str, known: impl Fn(&str) -> bool) -> Option<Brand> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dahu" => Some(Brand::Dahua),
            s => Brand::parse(s).or_else(|| known(s).then(|| Brand::named(s)).flatten()),
        }
    }

    /// A built-in brand by its name.
    pub fn parse(s: &str) -> Option<Brand> {
        Brand::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The brand called `name` (lowercase letters, digits, `-`, `_`; at most
    /// [`MAX_BRAND_NAME`]): a built-in one, or an added one (its name kept once).
    pub fn named(name: &str) -> Option<Brand> {
        if let Some(b) = Brand::parse(name) {
            return Some(b);
        }
        let valid = !name.is_empty()
            && name.len() <= MAX_BRAND_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return None;
        }
        let mut names = BRAND_NAMES.lock().unwrap_or_else(|p| p.into_inner());
        let kept = match names.iter().find(|n| **n == name) {
            Some(n) => *n,
            None => {
                let n: &'static str = Box::leak(name.to_string().into_boxed_str());
                names.push(n);
                n
            }
        };
        Some(Brand::Custom(kept))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Generic => "generic",
            Brand::Hikvision => "hikvision",
            Brand::Dahua => "dahua",
            Brand::Xmeye => "xmeye",
            Brand::Onvif => "onvif",
            Brand::Custom(name) => name,
        }
    }
}

/// The variant names of the binary encoding, in their order (index 5: `Custom(name)`).
const BRAND_VARIANTS: [&str; 6] = ["Generic", "Hikvision", "Dahua", "Xmeye", "Onvif", "Custom"];

impl Serialize for Brand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.serialize_str(self.as_str());
        }
        match self {
            Brand::Custom(name) => s.serialize_newtype_variant("Brand", 5, "Custom", name),
            b => {
                let i = Brand::ALL.iter().position(|x| x == b).unwrap_or(0);
                s.serialize_unit_variant("Brand", i as u32, BRAND_VARIANTS[i])
            }
        }
    }
}

impl<'de> Deserialize<'de> for Brand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Brand, D::Error> {
        use serde::de::{Error as _, VariantAccess};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Brand;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a camera brand")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Brand, E> {
                Brand::named(v).ok_or_else(|| E::custom(format!("'{v}' is not a brand name")))
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> std::result::Result<Brand, A::Error> {
                let (i, variant): (u32, _) = data.variant()?;
                match Brand::ALL.get(i as usize) {
                    Some(b) => variant.unit_variant().map(|_| *b),
                    None if i == 5 => {
                        let name: String = variant.newtype_variant()?;
                        Brand::named(&name).ok_or_else(|| {
                            A::Error::custom(format!("'{name}' is not a brand name"))
                        })
                    }
                    None => Err(A::Error::custom(format!("brand variant {i}"))),
                }
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_enum("Brand", &BRAND_VARIANTS, V)
        }
    }
}

/// RTP transport for the camera's RTSP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// One video channel of a camera or DVR/NVR. The RTSP URL is kept sealed (AEAD, see
/// `camera::seal`); `rtsp_url_display` is the same URL with the password masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    pub id: String,
    pub ip: String,
    pub channel: u32,
    pub name: String,
    pub brand: Brand,
    pub port: u16,
    pub rtsp_url_sealed: Vec<u8>,
    pub rtsp_url_display: String,
    pub transport: Transport,
    pub is_active: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub is_recording: bool,
    pub created_at: DateTime<Utc>,
    /// The node (vigia box) that pulls, serves and records it; see `fleet`.
    pub node: String,
    /// The old backend's `type`: free text an installer chose ("ip", "dvr", "ptz", …);
    /// [`Camera::default_kind`] when none was given.
    pub kind: String,
}

impl Camera {
    /// The `type` of a camera nobody named one for: a DVR/NVR channel past the first is
    /// "dvr", anything else "ip" (the old backend's two common values).
    pub fn default_kind(channel: u32) -> &'static str {
        if channel > 1 {
            "dvr"
        } else {
            "ip"
        }
    }
}

/// Fields of a camera that `update_camera` may change (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct CameraPatch {
    pub name: Option<String>,
    pub brand: Option<Brand>,
    pub port: Option<u16>,
    /// New sealed URL and its masked form, together.
    pub rtsp_url: Option<(Vec<u8>, String)>,
    pub transport: Option<Transport>,
    pub is_active: Option<bool>,
    pub last_seen: Option<DateTime<Utc>>,
    pub is_recording: Option<bool>,
    /// Moves the camera to another node.
    pub node: Option<String>,
    pub kind: Option<String>,
}

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Being written now.
    Recording,
    /// Reached its duration, or rotated to the next file.
    Completed,
    /// Stopped by a user, a shutdown, a full disk or a camera change (see `note`).
    Stopped,
    /// The process died while writing; reconciled with the file at the next start.
    Recovered,
    /// The row's file is gone.
    Missing,
    /// Copied from the old Flask backend (`vigia store import-flask`): an ffmpeg-made MP4,
    /// finished, handled like any finished recording.
    Imported,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Completed => "completed",
            RecordingStatus::Stopped => "stopped",
            RecordingStatus::Recovered => "recovered",
            RecordingStatus::Missing => "missing",
            RecordingStatus::Imported => "imported",
        }
    }
    pub fn parse(s: &str) -> Option<RecordingStatus> {
        [
            RecordingStatus::Recording,
            RecordingStatus::Completed,
            RecordingStatus::Stopped,
            RecordingStatus::Recovered,
            RecordingStatus::Missing,
            RecordingStatus::Imported,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One recorded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: i64,
    pub camera_id: String,
    /// Who started it (kept when a continuous recording resumes after a restart).
    pub user_id: Option<i64>,
    /// Path relative to `RECORDINGS_DIR`, built from the camera id and time only.
    pub path: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_sec: f64,
    pub file_size: u64,
    pub status: RecordingStatus,
    /// Continuous (rotating, resumed after a restart) rather than fixed-duration.
    pub continuous: bool,
    /// Why it ended, when that is worth saying.
    pub note: Option<String>,
    /// The node whose disk holds the file.
    pub node: String,
}

/// A recording to create (status `recording`).
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub camera_id: String,
    pub user_id: Option<i64>,
    pub path: String,
    pub start_time: DateTime<Utc>,
    pub continuous: bool,
    pub node: String,
}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct RecordingEnd {
    pub end_time: DateTime<Utc>,
    pub duration_sec: f64,
    pub file_size: u64,
    pub status: RecordingStatus,
    pub note: Option<String>,
}

/// Which recordings to list: newest first.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// `None`: every camera.
    pub camera_ids: Option<Vec<String>>,
    /// Recordings that started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Recordings that started before this time.
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
    pub offset: usize,
}

impl RecordingFilter {
    /// Whether recordings of `camera` pass the camera filter.
    pub fn selects_camera(&self, camera: &str) -> bool {
        self.camera_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == camera))
    }
}

/// A vigia box as the store knows it: its last heartbeat and what it was doing then.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// Where other boxes send its cameras' requests (`NODE_URL`).
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat: DateTime<Utc>,
    /// Seconds since the heartbeat, by the store's clock (one clock for every box).
    pub age_secs: f64,
    pub live: u32,
    pub recording: u32,
    pub version: String,
}

/// One heartbeat of this box.
#[derive(Debug, Clone)]
pub struct NodeBeat {
    pub name: String,
    pub url: String,
    /// Tells this process from another one started with the same `NODE_NAME`.
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub live: u32,
    pub recording: u32,
    pub version: String,
    /// A heartbeat older than this is a dead node: another instance may take the name.
    pub stale_secs: f64,
}

/// What a token's subject and id come to, read in one look-up per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    Active(User),
    /// The token was logged out.
    Revoked,
    /// The user was deleted.
    NoUser,
}

/// Everything a store holds, for moving an installation between back ends
/// (`vigia store migrate`). Password hashes and sealed URLs travel as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    pub users: Vec<(User, String)>,
    pub cameras: Vec<Camera>,
    pub assignments: Vec<(i64, String)>,
    pub revocations: Vec<(String, DateTime<Utc>)>,
    pub recordings: Vec<Recording>,
    /// (user id, token generation) for users whose sessions were ever ended.
    pub generations: Vec<(i64, i64)>,
}

/// What an import did: rows added, and rows that were there already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub users: (u64, u64),
    pub cameras: (u64, u64),
    pub assignments: (u64, u64),
    pub revocations: (u64, u64),
    pub recordings: (u64, u64),
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |f: &mut std::fmt::Formatter<'_>, name: &str, (added, kept): (u64, u64)| {
            writeln!(f, "  {name:<12} {added:>6} copied, {kept:>6} already there")
        };
        row(f, "users", self.users)?;
        row(f, "cameras", self.cameras)?;
        row(f, "assignments", self.assignments)?;
        row(f, "revocations", self.revocations)?;
        row(f, "recordings", self.recordings)
    }
}

/// A short, non-reversible fingerprint of `SECRET_KEY`, so a store can tell whether it is
/// opened with the key its sealed credentials and tokens were made with.
pub fn key_fingerprint(secret: &[u8]) -> String {
    let mut out = [0u8; 16];
    hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
        .expand(b"vigia secret key fingerprint v1", &mut out)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    hex::encode(out)
}

/// Storage for users, cameras, assignments and revoked tokens.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap check that the store answers (health, watchdog).
    async fn ping(&self) -> Result<()>;

    /// Creates a user. `Conflict` when the username is taken; with [`CreateMode::FirstUser`],
    /// `Forbidden` when any user exists.
    async fn create_user(&self, new: NewUser, mode: CreateMode) -> Result<User>;
    async fn user(&self, id: i64) -> Result<Option<User>>;
    /// The user and password hash for a login.
    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>>;
    /// All users, by id.
    async fn users(&self) -> Result<Vec<User>>;
    async fn count_users(&self) -> Result<u64>;
    /// `NotFound`; `Conflict` when it would leave no admin.
    async fn set_role(&self, id: i64, role: Role) -> Result<User>;
    /// Deletes the user and their assignments. `NotFound`; `Conflict` when it would leave no admin.
    async fn delete_user(&self, id: i64) -> Result<()>;

    /// `Conflict` when the id or `(ip, channel)` exists.
    async fn create_camera(&self, camera: Camera) -> Result<Camera>;
    async fn camera(&self, id: &str) -> Result<Option<Camera>>;
    /// All cameras, by id.
    async fn cameras(&self) -> Result<Vec<Camera>>;
    /// The ids of all cameras, in the same order, without reading the rest of their rows
    /// (`/metrics`).
    async fn camera_ids(&self) -> Result<Vec<String>>;
    async fn update_camera(&self, id: &str, patch: CameraPatch) -> Result<Camera>;
    /// Deletes the camera and its assignments. `NotFound`.
    async fn delete_camera(&self, id: &str) -> Result<()>;

    /// Assigns cameras to a user, all or nothing: `NotFound` naming the unknown user or every
    /// unknown camera. Assigning twice is not an error.
    async fn assign(&self, user_id: i64, camera_ids: &[String]) -> Result<()>;
    /// `NotFound` when the user is unknown or the camera is not assigned to them.
    async fn unassign(&self, user_id: i64, camera_id: &str) -> Result<()>;
    /// Ids of the cameras assigned to a user, sorted.
    async fn assigned_cameras(&self, user_id: i64) -> Result<Vec<String>>;
    async fn is_assigned(&self, user_id: i64, camera_id: &str) -> Result<bool>;

    /// Records a logged-out token id until it would have expired anyway.
    async fn revoke_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<()>;
    /// The token's user, unless the token was revoked, the user deleted, or the user's
    /// sessions ended since the token was issued (its `generation` is not the user's).
    async fn session(&self, user_id: i64, jti: &str, generation: i64) -> Result<Session>;
    /// The generation new tokens of the user carry (0 until their sessions are first ended).
    async fn token_generation(&self, user_id: i64) -> Result<i64>;
    /// Replaces the user's password hash and ends all their sessions; the new generation.
    async fn set_password(&self, user_id: i64, hash: &str) -> Result<i64>;
    /// Ends all the user's sessions (every token issued so far); the new generation.
    async fn end_sessions(&self, user_id: i64) -> Result<i64>;
    /// Forgets revocations that expired before `now`; returns how many.
    async fn prune_revocations(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Records the fingerprint of the secret key in use. Returns the stored one when it
    /// differs (and, with `replace`, stores the new one instead); `None` when it matched or
    /// none was stored.
    async fn key_fingerprint(&self, fingerprint: &str, replace: bool) -> Result<Option<String>>;

    /// Creates a recording row with status `recording`. `Conflict` when the camera has an
    /// open row already (on any node): one camera is never recorded twice at once.
    async fn create_recording(&self, new: NewRecording) -> Result<Recording>;
    /// Ends a recording. `NotFound`.
    async fn finish_recording(&self, id: i64, end: RecordingEnd) -> Result<Recording>;
    async fn recording(&self, id: i64) -> Result<Option<Recording>>;
    /// Newest first, filtered.
    async fn recordings(&self, filter: &RecordingFilter) -> Result<Vec<Recording>>;
    /// How many recordings `filter` selects, whatever its `limit` and `offset`.
    async fn count_recordings(&self, filter: &RecordingFilter) -> Result<u64>;
    /// Rows still marked `recording` (after a crash: to reconcile).
    async fn open_recordings(&self) -> Result<Vec<Recording>>;
    /// Up to `limit` finished recordings, oldest first (retention), without a full scan;
    /// with `node`, only the ones whose file that node holds.
    async fn oldest_recordings(&self, limit: usize, node: Option<&str>) -> Result<Vec<Recording>>;
    /// Deletes a finished recording's row. `NotFound`; `Conflict` while it is being written.
    async fn delete_recording(&self, id: i64) -> Result<()>;

    /// Records this node's heartbeat. `Conflict` when another live instance (a fresh
    /// heartbeat with another `instance`) already uses the name.
    async fn heartbeat(&self, beat: &NodeBeat) -> Result<()>;
    /// Marks a node stopped (its heartbeat made stale) if `instance` still holds the name.
    async fn leave(&self, name: &str, instance: &str) -> Result<()>;
    /// Every node that ever sent a heartbeat, by name.
    async fn nodes(&self) -> Result<Vec<Node>>;
    /// Gives cameras and recordings that have no node (made before nodes existed) to `node`;
    /// returns how many rows changed.
    async fn claim_unowned(&self, node: &str) -> Result<u64>;

    /// Every row, for migration.
    async fn export(&self) -> Result<Dump>;
    /// Adds the rows of `dump` that are missing, in one transaction; idempotent. `Conflict`
    /// (nothing imported) when a username or camera address is taken by another id.
    async fn import(&self, dump: &Dump) -> Result<ImportReport>;
}

/// Opens the store the configuration names: PostgreSQL when `database` is set, else redb in
/// `DATA_DIR`.
pub async fn open(database: Option<&DbConfig>, data_dir: &std::path::Path) -> Result<DynStore> {
    match database {
        #[cfg(feature = "postgres")]
        Some(db) => Ok(Arc::new(postgres::PgStore::connect(db).await?)),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(Error::internal(
            "this vigia was built without PostgreSQL support",
        )),
        None => Ok(Arc::new(redb::RedbStore::open(
            &data_dir.join("vigia.redb"),
        )?)),
    }
}

pub type DynStore = Arc<dyn Store>;

/// Where PostgreSQL is, as given (parsed by the Postgres back end).
#[derive(Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// `DATABASE_URL`.
    Url(String),
    /// The old backend's `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASS`, `DB_NAME`.
    Parts {
        host: String,
        port: u16,
        user: String,
        password: Option<String>,
        dbname: String,
    },
}

impl std::fmt::Debug for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the password
        match self {
            DbLocation::Url(_) => f.write_str("DbLocation::Url(..)"),
            DbLocation::Parts {
                host,
                port,
                user,
                dbname,
                ..
            } => {
                write!(f, "DbLocation::Parts({user}@{host}:{port}/{dbname})")
            }
        }
    }
}

/// PostgreSQL settings: Postgres mode when present.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub location: DbLocation,
    pub ca_cert: Option<std::path::PathBuf>,
    /// `DB_SSLMODE`: `Some(true)` require, `Some(false)` disable, `None` by where the server is.
    pub require_tls: Option<bool>,
    pub pool_size: usize,
}

/// `vigia store migrate`: copies an appliance's redb data into PostgreSQL, idempotently.
/// The Postgres database must be new or already use the same `SECRET_KEY` (the sealed camera
/// credentials and the tokens depend on it), so the key's fingerprint is checked first: a key
/// that does not fit is a setting to change ([`Kind::Setting`]), as is a
/// `DATA_DIR` without an embedded store.
#[cfg(feature = "postgres")]
pub async fn migrate_redb_to_postgres(
    data_dir: &std::path::Path,
    secret: &[u8],
    target: &DbConfig,
) -> Result<ImportReport> {
    let path = data_dir.join("vigia.redb");
    if !path.exists() {
        return Err(Error::setting(format!(
            "no embedded store at {} (is DATA_DIR right?)",
            path.display()
        )));
    }
    let source = redb::RedbStore::open(&path)?;
    let fp = key_fingerprint(secret);
    if source.key_fingerprint(&fp, false).await?.is_some() {
        return Err(Error::setting(
            "SECRET_KEY is not the key this appliance's data was made with",
        ));
    }
    let dump = source.export().await?;
    let target = postgres::PgStore::connect(target).await?;
    if target.key_fingerprint(&fp, false).await?.is_some() {
        return Err(Error::setting(
            "the Postgres database is used with another SECRET_KEY; migrate only into a new database or one whose boxes share this appliance's key",
        ));
    }
    target.import(&dump).await
}
