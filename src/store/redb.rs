//! The embedded store: one redb file in `DATA_DIR`.
//!
//! Values are postcard-encoded serde enums whose variant is the row's schema version
//! (`UserRow::V1`, …), so a later version can read old rows and rewrite them lazily. Uniqueness
//! (usernames, camera ids, camera `(ip, channel)`) and the "at least one admin" rule are checked
//! inside the write transaction that makes the change; redb allows one writer at a time, so the
//! check and the write cannot interleave with another change. Writes (which fsync) run on
//! tokio's blocking pool; reads are short B-tree look-ups done in place.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::error::{Error, Kind, Result};
use super::{
    Brand, Camera, CameraPatch, CreateMode, Dump, ImportReport, NewRecording, NewUser, Node,
    NodeBeat, Recording, RecordingEnd, RecordingFilter, RecordingStatus, Role, Session, Store,
    Transport, User,
};

/// The schema this binary writes. A file with a newer one is refused at open.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");
const CAMERAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cameras");
const CAMERA_ADDRS: TableDefinition<(&str, u32), &str> = TableDefinition::new("camera_addrs");
const USER_CAMERAS: MultimapTableDefinition<u64, &str> =
    MultimapTableDefinition::new("user_cameras");
const CAMERA_USERS: MultimapTableDefinition<&str, u64> =
    MultimapTableDefinition::new("camera_users");
const REVOKED: TableDefinition<&str, i64> = TableDefinition::new("revoked_tokens");
/// User id → token generation, for users whose sessions were ever ended (absent: 0).
const TOKEN_GEN: TableDefinition<u64, i64> = TableDefinition::new("token_generation");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const RECORDINGS: TableDefinition<u64, &[u8]> = TableDefinition::new("recordings");
/// (start time µs, id): listing newest first and retention oldest first without a scan.
const REC_BY_START: TableDefinition<(i64, u64), ()> = TableDefinition::new("recordings_by_start");
/// Ids of recordings still being written.
const REC_OPEN: TableDefinition<u64, ()> = TableDefinition::new("recordings_open");

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::failed("embedded store failed", e)
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[derive(Serialize, Deserialize)]
enum UserRow {
    V1 {
        username: String,
        role: Role,
        password_hash: String,
        created_at_us: i64,
    },
}

/// A camera's stored fields (schema 1). Schema 2 adds the owning node after them; postcard
/// writes a variant's fields in order, so `V1(fields)` reads what `V1 { … }` wrote.
#[derive(Serialize, Deserialize)]
struct CameraFields {
    ip: String,
    channel: u32,
    name: String,
    brand: Brand,
    port: u16,
    rtsp_url_sealed: Vec<u8>,
    rtsp_url_display: String,
    transport: Transport,
    is_active: bool,
    last_seen_us: Option<i64>,
    is_recording: bool,
    created_at_us: i64,
}

#[derive(Serialize, Deserialize)]
enum CameraRow {
    V1(CameraFields),
    /// The fields and the node that owns the camera.
    V2(CameraFields, String),
    /// Schema 3: and its `type` (rows before it read as [`Camera::default_kind`]).
    V3(CameraFields, String, String),
}

/// A recording's stored fields (schema 1); schema 2 adds the node holding the file.
#[derive(Serialize, Deserialize)]
struct RecordingFields {
    camera_id: String,
    user_id: Option<i64>,
    path: String,
    start_us: i64,
    end_us: Option<i64>,
    duration_sec: f64,
    file_size: u64,
    status: RecordingStatus,
    continuous: bool,
    note: Option<String>,
}

#[derive(Serialize, Deserialize)]
enum RecordingRow {
    V1(RecordingFields),
    /// The fields and the node whose disk holds the file.
    V2(RecordingFields, String),
}

fn recording_row(r: &Recording) -> Result<Vec<u8>> {
    encode(&RecordingRow::V2(
        RecordingFields {
            camera_id: r.camera_id.clone(),
            user_id: r.user_id,
            path: r.path.clone(),
            start_us: to_us(r.start_time),
            end_us: r.end_time.map(to_us),
            duration_sec: r.duration_sec,
            file_size: r.file_size,
            status: r.status,
            continuous: r.continuous,
            note: r.note.clone(),
        },
        r.node.clone(),
    ))
}

/// The keys of the start-time index within `f`'s window (`since` included, `until` not).
fn start_window(f: &RecordingFilter) -> std::ops::Range<(i64, u64)> {
    (f.since.map_or(i64::MIN, to_us), 0)..(f.until.map_or(i64::MAX, to_us), 0)
}

fn recording_from_row(id: u64, bytes: &[u8]) -> Result<Recording> {
    let (f, node) = match decode(bytes, "recording")? {
        RecordingRow::V1(f) => (f, String::new()),
        RecordingRow::V2(f, node) => (f, node),
    };
    Ok(Recording {
        id: id as i64,
        camera_id: f.camera_id,
        user_id: f.user_id,
        path: f.path,
        start_time: from_us(f.start_us),
        end_time: f.end_us.map(from_us),
        duration_sec: f.duration_sec,
        file_size: f.file_size,
        status: f.status,
        continuous: f.continuous,
        note: f.note,
        node,
    })
}

fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| Error::failed("cannot encode a row", e))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::failed(format!("corrupt {what} row in the embedded store"), e))
}

/// Moves user `id`'s token generation on; returns the new one.
fn bump_generation(txn: &WriteTransaction, id: u64) -> Result<i64> {
    let mut t = txn.open_table(TOKEN_GEN)?;
    let next = t.get(id)?.map_or(0, |g| g.value()) + 1;
    t.insert(id, next)?;
    Ok(next)
}

fn user_from_row(id: u64, bytes: &[u8]) -> Result<(User, String)> {
    let UserRow::V1 {
        username,
        role,
        password_hash,
        created_at_us,
    } = decode(bytes, "user")?;
    Ok((
        User {
            id: id as i64,
            username,
            role,
            created_at: from_us(created_at_us),
        },
        password_hash,
    ))
}

fn camera_from_row(id: &str, bytes: &[u8]) -> Result<Camera> {
    let (f, node, kind) = match decode(bytes, "camera")? {
        CameraRow::V1(f) => (f, String::new(), None),
        CameraRow::V2(f, node) => (f, node, None),
        CameraRow::V3(f, node, kind) => (f, node, Some(kind)),
    };
    let kind = kind.unwrap_or_else(|| Camera::default_kind(f.channel).to_string());
    Ok(Camera {
        id: id.to_string(),
        ip: f.ip,
        channel: f.channel,
        name: f.name,
        brand: f.brand,
        port: f.port,
        rtsp_url_sealed: f.rtsp_url_sealed,
        rtsp_url_display: f.rtsp_url_display,
        transport: f.transport,
        is_active: f.is_active,
        last_seen: f.last_seen_us.map(from_us),
        is_recording: f.is_recording,
        created_at: from_us(f.created_at_us),
        node,
        kind,
    })
}

fn camera_row(c: &Camera) -> Result<Vec<u8>> {
    encode(&CameraRow::V3(
        CameraFields {
            ip: c.ip.clone(),
            channel: c.channel,
            name: c.name.clone(),
            brand: c.brand,
            port: c.port,
            rtsp_url_sealed: c.rtsp_url_sealed.clone(),
            rtsp_url_display: c.rtsp_url_display.clone(),
            transport: c.transport,
            is_active: c.is_active,
            last_seen_us: c.last_seen.map(to_us),
            is_recording: c.is_recording,
            created_at_us: to_us(c.created_at),
        },
        c.node.clone(),
        c.kind.clone(),
    ))
}

fn user_id(id: i64) -> Result<u64> {
    u64::try_from(id).map_err(|_| Error::not_found(format!("user {id} not found")))
}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: Arc<Database>,
    /// Heartbeats: an embedded store serves one box, so they live in memory (and a box that
    /// only watches live video writes nothing to disk).
    nodes: NodeMap,
}

type NodeMap = std::sync::Mutex<
    // (beat, its wall time, its monotonic time, seconds added to its age: a day once it left)
    std::collections::HashMap<String, (NodeBeat, DateTime<Utc>, std::time::Instant, f64)>,
>;

/// redb's page cache. Its default (1 GiB) grows with the file: on a box that records for
/// months (64 cameras rotating every minute add ~90 000 rows a day) the process would grow
/// towards that, past what a 512 MiB appliance has. Pages that miss come from the OS page
/// cache, which the kernel can reclaim; this cache cannot be.
pub const CACHE_BYTES: usize = 16 << 20;

impl RedbStore {
    /// Opens (or creates) `path`, creating missing tables and checking the schema version.
    pub fn open(path: &Path) -> Result<RedbStore> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::unavailable(format!(
                "the database {} is already open by another process (is another vigia running on this DATA_DIR?)",
                path.display()
            )),
            e => Error::failed(format!("cannot open the database {}", path.display()), e),
        })?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(Error::internal(format!(
                        "the database {} has schema version {v}, newer than this vigia knows ({SCHEMA_VERSION}); run a newer vigia",
                        path.display()
                    )))
                }
                Some(_) => {}
            }
            txn.open_table(USERS)?;
            txn.open_table(USERNAMES)?;
            txn.open_table(CAMERAS)?;
            txn.open_table(CAMERA_ADDRS)?;
            txn.open_multimap_table(USER_CAMERAS)?;
            txn.open_multimap_table(CAMERA_USERS)?;
            txn.open_table(REVOKED)?;
            txn.open_table(TOKEN_GEN)?;
            txn.open_table(SETTINGS)?;
            txn.open_table(RECORDINGS)?;
            txn.open_table(REC_BY_START)?;
            txn.open_table(REC_OPEN)?;
        }
        txn.commit()?;
        Ok(RedbStore {
            db: Arc::new(db),
            nodes: NodeMap::default(),
        })
    }

    /// Runs `f` in a write transaction on the blocking pool; commits when it returns `Ok`.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let txn = db.begin_write()?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::failed("store task failed", e))?;
        crate::metrics::STORE_WRITE.observe_since(started);
        out
    }

    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let started = std::time::Instant::now();
        let txn = self.db.begin_read()?;
        let out = f(&txn);
        crate::metrics::STORE_READ.observe_since(started);
        out
    }
}

/// Number of admins other than `except`, read inside the caller's transaction.
fn other_admins(users: &impl ReadableTable<u64, &'static [u8]>, except: u64) -> Result<usize> {
    let mut n = 0;
    for entry in users.iter()? {
        let (k, v) = entry?;
        if k.value() != except && user_from_row(k.value(), v.value())?.0.role == Role::Admin {
            n += 1;
        }
    }
    Ok(n)
}

#[async_trait]
impl Store for RedbStore {
    async fn ping(&self) -> Result<()> {
        self.read(|t| {
            t.open_table(META)?.get("schema_version")?;
            Ok(())
        })
    }

    async fn create_user(&self, new: NewUser, mode: CreateMode) -> Result<User> {
        self.write(move |txn| {
            let mut meta = txn.open_table(META)?;
            let mut users = txn.open_table(USERS)?;
            let mut names = txn.open_table(USERNAMES)?;
            if mode == CreateMode::FirstUser && !users.is_empty()? {
                return Err(Error::forbidden(
                    "users exist already; only an admin may register new ones",
                ));
            }
            if names.get(new.username.as_str())?.is_some() {
                return Err(Error::conflict(format!(
                    "username '{}' is taken",
                    new.username
                )));
            }
            let id = meta.get("next_user_id")?.map(|v| v.value()).unwrap_or(1);
            meta.insert("next_user_id", id + 1)?;
            let created_at = Utc::now();
            let row = encode(&UserRow::V1 {
                username: new.username.clone(),
                role: new.role,
                password_hash: new.password_hash,
                created_at_us: to_us(created_at),
            })?;
            users.insert(id, row.as_slice())?;
            names.insert(new.username.as_str(), id)?;
            Ok(User {
                id: id as i64,
                username: new.username,
                role: new.role,
                created_at: from_us(to_us(created_at)),
            })
        })
        .await
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        let Ok(id) = u64::try_from(id) else {
            return Ok(None);
        };
        self.read(|t| {
            let users = t.open_table(USERS)?;
            let row = users.get(id)?;
            row.map(|v| user_from_row(id, v.value()).map(|(u, _)| u))
                .transpose()
        })
    }

    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        self.read(|t| {
            let Some(id) = t.open_table(USERNAMES)?.get(username)?.map(|v| v.value()) else {
                return Ok(None);
            };
            let users = t.open_table(USERS)?;
            let row = users.get(id)?;
            row.map(|v| user_from_row(id, v.value())).transpose()
        })
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.read(|t| {
            let users = t.open_table(USERS)?;
            let mut out = Vec::new();
            for entry in users.iter()? {
                let (k, v) = entry?;
                out.push(user_from_row(k.value(), v.value())?.0);
            }
            Ok(out)
        })
    }

    async fn count_users(&self) -> Result<u64> {
        self.read(|t| Ok(t.open_table(USERS)?.len()?))
    }

    async fn set_role(&self, id: i64, role: Role) -> Result<User> {
        let id = user_id(id)?;
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            let (mut user, hash) = match users.get(id)? {
                Some(v) => user_from_row(id, v.value())?,
                None => return Err(Error::not_found(format!("user {id} not found"))),
            };
            if user.role == Role::Admin && role != Role::Admin && other_admins(&users, id)? == 0 {
                return Err(Error::conflict(format!(
                    "user {id} is the last admin; make another user admin first"
                )));
            }
            user.role = role;
            let row = encode(&UserRow::V1 {
                username: user.username.clone(),
                role,
                password_hash: hash,
                created_at_us: to_us(user.created_at),
            })?;
            users.insert(id, row.as_slice())?;
            Ok(user)
        })
        .await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let id = user_id(id)?;
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            let user = match users.get(id)? {
                Some(v) => user_from_row(id, v.value())?.0,
                None => return Err(Error::not_found(format!("user {id} not found"))),
            };
            if user.role == Role::Admin && other_admins(&users, id)? == 0 {
                return Err(Error::conflict(format!(
                    "user {id} is the last admin and cannot be deleted"
                )));
            }
            users.remove(id)?;
            txn.open_table(TOKEN_GEN)?.remove(id)?;
            txn.open_table(USERNAMES)?.remove(user.username.as_str())?;
            let mut by_user = txn.open_multimap_table(USER_CAMERAS)?;
            let mut by_camera = txn.open_multimap_table(CAMERA_USERS)?;
            let cams: Vec<String> = by_user
                .remove_all(id)?
                .map(|v| v.map(|v| v.value().to_string()))
                .collect::<Result<_, _>>()?;
            for cam in cams {
                by_camera.remove(cam.as_str(), id)?;
            }
            Ok(())
        })
        .await
    }

    async fn create_camera(&self, camera: Camera) -> Result<Camera> {
        self.write(move |txn| {
            let mut cams = txn.open_table(CAMERAS)?;
            let mut addrs = txn.open_table(CAMERA_ADDRS)?;
            if cams.get(camera.id.as_str())?.is_some() {
                return Err(Error::conflict(format!(
                    "camera {} already exists",
                    camera.id
                )));
            }
            if let Some(other) = addrs.get((camera.ip.as_str(), camera.channel))? {
                return Err(Error::conflict(format!(
                    "channel {} of {} is already camera {}",
                    camera.channel,
                    camera.ip,
                    other.value()
                )));
            }
            let row = camera_row(&camera)?;
            cams.insert(camera.id.as_str(), row.as_slice())?;
            addrs.insert((camera.ip.as_str(), camera.channel), camera.id.as_str())?;
            camera_from_row(&camera.id, &row)
        })
        .await
    }

    async fn camera(&self, id: &str) -> Result<Option<Camera>> {
        self.read(|t| {
            let cams = t.open_table(CAMERAS)?;
            let row = cams.get(id)?;
            row.map(|v| camera_from_row(id, v.value())).transpose()
        })
    }

    async fn camera_ids(&self) -> Result<Vec<String>> {
        self.read(|t| {
            let cams = t.open_table(CAMERAS)?;
            let mut out = Vec::new();
            for entry in cams.iter()? {
                out.push(entry?.0.value().to_string());
            }
            Ok(out)
        })
    }

    async fn cameras(&self) -> Result<Vec<Camera>> {
        self.read(|t| {
            let cams = t.open_table(CAMERAS)?;
            let mut out = Vec::new();
            for entry in cams.iter()? {
                let (k, v) = entry?;
                out.push(camera_from_row(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    async fn update_camera(&self, id: &str, patch: CameraPatch) -> Result<Camera> {
        let id = id.to_string();
        self.write(move |txn| {
            let mut cams = txn.open_table(CAMERAS)?;
            let mut c = match cams.get(id.as_str())? {
                Some(v) => camera_from_row(&id, v.value())?,
                None => return Err(Error::not_found(format!("camera {id} not found"))),
            };
            if let Some(v) = patch.name {
                c.name = v;
            }
            if let Some(v) = patch.brand {
                c.brand = v;
            }
            if let Some(v) = patch.port {
                c.port = v;
            }
            if let Some((sealed, display)) = patch.rtsp_url {
                c.rtsp_url_sealed = sealed;
                c.rtsp_url_display = display;
            }
            if let Some(v) = patch.transport {
                c.transport = v;
            }
            if let Some(v) = patch.is_active {
                c.is_active = v;
            }
            if let Some(v) = patch.last_seen {
                c.last_seen = Some(v);
            }
            if let Some(v) = patch.is_recording {
                c.is_recording = v;
            }
            if let Some(v) = patch.node {
                c.node = v;
            }
            if let Some(v) = patch.kind {
                c.kind = v;
            }
            let row = camera_row(&c)?;
            cams.insert(id.as_str(), row.as_slice())?;
            camera_from_row(&id, &row)
        })
        .await
    }

    async fn delete_camera(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |txn| {
            let mut cams = txn.open_table(CAMERAS)?;
            let c = match cams.remove(id.as_str())? {
                Some(v) => camera_from_row(&id, v.value())?,
                None => return Err(Error::not_found(format!("camera {id} not found"))),
            };
            txn.open_table(CAMERA_ADDRS)?
                .remove((c.ip.as_str(), c.channel))?;
            let mut by_user = txn.open_multimap_table(USER_CAMERAS)?;
            let mut by_camera = txn.open_multimap_table(CAMERA_USERS)?;
            let users: Vec<u64> = by_camera
                .remove_all(id.as_str())?
                .map(|v| v.map(|v| v.value()))
                .collect::<Result<_, _>>()?;
            for u in users {
                by_user.remove(u, id.as_str())?;
            }
            Ok(())
        })
        .await
    }

    async fn assign(&self, user_id_: i64, camera_ids: &[String]) -> Result<()> {
        let uid = user_id(user_id_)?;
        let ids = camera_ids.to_vec();
        self.write(move |txn| {
            if txn.open_table(USERS)?.get(uid)?.is_none() {
                return Err(Error::not_found(format!("user {uid} not found")));
            }
            let cams = txn.open_table(CAMERAS)?;
            let mut unknown = Vec::new();
            for id in &ids {
                if cams.get(id.as_str())?.is_none() && !unknown.contains(id) {
                    unknown.push(id.clone());
                }
            }
            if !unknown.is_empty() {
                return Err(Error::new(
                    Kind::NotFound,
                    format!(
                        "unknown camera(s): {}; nothing assigned",
                        unknown.join(", ")
                    ),
                ));
            }
            let mut by_user = txn.open_multimap_table(USER_CAMERAS)?;
            let mut by_camera = txn.open_multimap_table(CAMERA_USERS)?;
            for id in &ids {
                by_user.insert(uid, id.as_str())?;
                by_camera.insert(id.as_str(), uid)?;
            }
            Ok(())
        })
        .await
    }

    async fn unassign(&self, user_id_: i64, camera_id: &str) -> Result<()> {
        let uid = user_id(user_id_)?;
        let cam = camera_id.to_string();
        self.write(move |txn| {
            if txn.open_table(USERS)?.get(uid)?.is_none() {
                return Err(Error::not_found(format!("user {uid} not found")));
            }
            let mut by_user = txn.open_multimap_table(USER_CAMERAS)?;
            if !by_user.remove(uid, cam.as_str())? {
                return Err(Error::not_found(format!(
                    "camera {cam} is not assigned to user {uid}"
                )));
            }
            txn.open_multimap_table(CAMERA_USERS)?
                .remove(cam.as_str(), uid)?;
            Ok(())
        })
        .await
    }

    async fn assigned_cameras(&self, user_id_: i64) -> Result<Vec<String>> {
        let Ok(uid) = u64::try_from(user_id_) else {
            return Ok(Vec::new());
        };
        self.read(|t| {
            let by_user = t.open_multimap_table(USER_CAMERAS)?;
            let mut out = Vec::new();
            for v in by_user.get(uid)? {
                out.push(v?.value().to_string());
            }
            Ok(out)
        })
    }

    async fn is_assigned(&self, user_id_: i64, camera_id: &str) -> Result<bool> {
        let Ok(uid) = u64::try_from(user_id_) else {
            return Ok(false);
        };
        self.read(|t| {
            let by_camera = t.open_multimap_table(CAMERA_USERS)?;
            for v in by_camera.get(camera_id)? {
                if v?.value() == uid {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    async fn revoke_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<()> {
        let jti = jti.to_string();
        self.write(move |txn| {
            txn.open_table(REVOKED)?
                .insert(jti.as_str(), expires_at.timestamp())?;
            Ok(())
        })
        .await
    }

    async fn session(&self, uid: i64, jti: &str, generation: i64) -> Result<Session> {
        let Ok(id) = u64::try_from(uid) else {
            return Ok(Session::NoUser);
        };
        self.read(|t| {
            if t.open_table(REVOKED)?.get(jti)?.is_some() {
                return Ok(Session::Revoked);
            }
            let users = t.open_table(USERS)?;
            let row = users.get(id)?;
            let Some(v) = row else {
                return Ok(Session::NoUser);
            };
            let current = t.open_table(TOKEN_GEN)?.get(id)?.map_or(0, |g| g.value());
            if current != generation {
                return Ok(Session::Revoked);
            }
            Ok(Session::Active(user_from_row(id, v.value())?.0))
        })
    }

    async fn token_generation(&self, uid: i64) -> Result<i64> {
        let id = user_id(uid)?;
        self.read(|t| {
            if t.open_table(USERS)?.get(id)?.is_none() {
                return Err(Error::not_found(format!("user {id} not found")));
            }
            Ok(t.open_table(TOKEN_GEN)?.get(id)?.map_or(0, |g| g.value()))
        })
    }

    async fn set_password(&self, uid: i64, hash: &str) -> Result<i64> {
        let id = user_id(uid)?;
        let hash = hash.to_string();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            let (user, _) = match users.get(id)? {
                Some(v) => user_from_row(id, v.value())?,
                None => return Err(Error::not_found(format!("user {id} not found"))),
            };
            let row = encode(&UserRow::V1 {
                username: user.username,
                role: user.role,
                password_hash: hash,
                created_at_us: to_us(user.created_at),
            })?;
            users.insert(id, row.as_slice())?;
            bump_generation(txn, id)
        })
        .await
    }

    async fn end_sessions(&self, uid: i64) -> Result<i64> {
        let id = user_id(uid)?;
        self.write(move |txn| {
            if txn.open_table(USERS)?.get(id)?.is_none() {
                return Err(Error::not_found(format!("user {id} not found")));
            }
            bump_generation(txn, id)
        })
        .await
    }

    async fn prune_revocations(&self, now: DateTime<Utc>) -> Result<u64> {
        let cutoff = now.timestamp();
        self.write(move |txn| {
            let mut t = txn.open_table(REVOKED)?;
            let removed = t.extract_if(|_, exp| exp < cutoff)?.count();
            Ok(removed as u64)
        })
        .await
    }

    async fn create_recording(&self, new: NewRecording) -> Result<Recording> {
        self.write(move |txn| {
            {
                let open = txn.open_table(REC_OPEN)?;
                let rows = txn.open_table(RECORDINGS)?;
                for entry in open.iter()? {
                    let id = entry?.0.value();
                    if let Some(v) = rows.get(id)? {
                        if recording_from_row(id, v.value())?.camera_id == new.camera_id {
                            return Err(Error::conflict(format!(
                                "camera {} is already being recorded (recording {id})",
                                new.camera_id
                            )));
                        }
                    }
                }
            }
            let mut meta = txn.open_table(META)?;
            let id = meta
                .get("next_recording_id")?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert("next_recording_id", id + 1)?;
            let r = Recording {
                id: id as i64,
                camera_id: new.camera_id,
                user_id: new.user_id,
                path: new.path,
                start_time: from_us(to_us(new.start_time)),
                end_time: None,
                duration_sec: 0.0,
                file_size: 0,
                status: RecordingStatus::Recording,
                continuous: new.continuous,
                note: None,
                node: new.node,
            };
            txn.open_table(RECORDINGS)?
                .insert(id, recording_row(&r)?.as_slice())?;
            txn.open_table(REC_BY_START)?
                .insert((to_us(r.start_time), id), ())?;
            txn.open_table(REC_OPEN)?.insert(id, ())?;
            Ok(r)
        })
        .await
    }

    async fn finish_recording(&self, id: i64, end: RecordingEnd) -> Result<Recording> {
        let rid =
            u64::try_from(id).map_err(|_| Error::not_found(format!("recording {id} not found")))?;
        self.write(move |txn| {
            let mut t = txn.open_table(RECORDINGS)?;
            let mut r = match t.get(rid)? {
                Some(v) => recording_from_row(rid, v.value())?,
                None => return Err(Error::not_found(format!("recording {rid} not found"))),
            };
            r.end_time = Some(from_us(to_us(end.end_time)));
            r.duration_sec = end.duration_sec;
            r.file_size = end.file_size;
            r.status = end.status;
            r.note = end.note;
            t.insert(rid, recording_row(&r)?.as_slice())?;
            txn.open_table(REC_OPEN)?.remove(rid)?;
            Ok(r)
        })
        .await
    }

    async fn recording(&self, id: i64) -> Result<Option<Recording>> {
        let Ok(rid) = u64::try_from(id) else {
            return Ok(None);
        };
        self.read(|t| {
            let table = t.open_table(RECORDINGS)?;
            let row = table.get(rid)?;
            row.map(|v| recording_from_row(rid, v.value())).transpose()
        })
    }

    async fn count_recordings(&self, f: &RecordingFilter) -> Result<u64> {
        self.read(|t| {
            let by_start = t.open_table(REC_BY_START)?;
            let rows = t.open_table(RECORDINGS)?;
            let mut n = 0u64;
            for entry in by_start.range(start_window(f))? {
                let id = entry?.0.value().1;
                if f.camera_ids.is_none() {
                    // no camera filter: the index alone counts
                    n += 1;
                    continue;
                }
                let Some(v) = rows.get(id)? else { continue };
                if f.selects_camera(&recording_from_row(id, v.value())?.camera_id) {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn recordings(&self, f: &RecordingFilter) -> Result<Vec<Recording>> {
        self.read(|t| {
            let by_start = t.open_table(REC_BY_START)?;
            let rows = t.open_table(RECORDINGS)?;
            let mut out = Vec::new();
            let mut skipped = 0;
            for entry in by_start.range(start_window(f))?.rev() {
                let (k, _) = entry?;
                let id = k.value().1;
                let Some(v) = rows.get(id)? else { continue };
                let r = recording_from_row(id, v.value())?;
                if !f.selects_camera(&r.camera_id) {
                    continue;
                }
                if skipped < f.offset {
                    skipped += 1;
                    continue;
                }
                out.push(r);
                if out.len() >= f.limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    async fn open_recordings(&self) -> Result<Vec<Recording>> {
        self.read(|t| {
            let open = t.open_table(REC_OPEN)?;
            let rows = t.open_table(RECORDINGS)?;
            let mut out = Vec::new();
            for entry in open.iter()? {
                let id = entry?.0.value();
                if let Some(v) = rows.get(id)? {
                    out.push(recording_from_row(id, v.value())?);
                }
            }
            Ok(out)
        })
    }

    async fn oldest_recordings(&self, limit: usize, node: Option<&str>) -> Result<Vec<Recording>> {
        self.read(|t| {
            let by_start = t.open_table(REC_BY_START)?;
            let rows = t.open_table(RECORDINGS)?;
            let mut out = Vec::new();
            for entry in by_start.iter()? {
                let id = entry?.0.value().1;
                let Some(v) = rows.get(id)? else { continue };
                let r = recording_from_row(id, v.value())?;
                if r.status != RecordingStatus::Recording && node.is_none_or(|n| n == r.node) {
                    out.push(r);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    async fn delete_recording(&self, id: i64) -> Result<()> {
        let rid =
            u64::try_from(id).map_err(|_| Error::not_found(format!("recording {id} not found")))?;
        self.write(move |txn| {
            let mut t = txn.open_table(RECORDINGS)?;
            let r = match t.get(rid)? {
                Some(v) => recording_from_row(rid, v.value())?,
                None => return Err(Error::not_found(format!("recording {rid} not found"))),
            };
            if r.status == RecordingStatus::Recording {
                return Err(Error::conflict(format!(
                    "recording {rid} is still being written; stop it first"
                )));
            }
            t.remove(rid)?;
            txn.open_table(REC_BY_START)?
                .remove((to_us(r.start_time), rid))?;
            Ok(())
        })
        .await
    }

    async fn key_fingerprint(&self, fingerprint: &str, replace: bool) -> Result<Option<String>> {
        let fp = fingerprint.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(SETTINGS)?;
            let old = t.get("key_fingerprint")?.map(|v| v.value().to_string());
            match old {
                Some(o) if o == fp => Ok(None),
                Some(o) => {
                    if replace {
                        t.insert("key_fingerprint", fp.as_str())?;
                    }
                    Ok(Some(o))
                }
                None => {
                    t.insert("key_fingerprint", fp.as_str())?;
                    Ok(None)
                }
            }
        })
        .await
    }

    async fn heartbeat(&self, b: &NodeBeat) -> Result<()> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((old, _, at, extra)) = nodes.get(&b.name) {
            if old.instance != b.instance && at.elapsed().as_secs_f64() + extra < b.stale_secs {
                return Err(Error::conflict(format!(
                    "another running vigia already uses NODE_NAME '{}'",
                    b.name
                )));
            }
        }
        nodes.insert(
            b.name.clone(),
            (b.clone(), Utc::now(), std::time::Instant::now(), 0.0),
        );
        Ok(())
    }

    async fn leave(&self, name: &str, instance: &str) -> Result<()> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, hb, _, extra)) = nodes
            .get_mut(name)
            .filter(|(b, _, _, _)| b.instance == instance)
        {
            *hb -= chrono::Duration::days(1);
            *extra = 86400.0;
            b.live = 0;
            b.recording = 0;
        }
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<Node>> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Node> = nodes
            .values()
            .map(|(b, heartbeat, at, extra)| Node {
                name: b.name.clone(),
                url: b.url.clone(),
                started_at: b.started_at,
                heartbeat: *heartbeat,
                age_secs: at.elapsed().as_secs_f64() + extra,
                live: b.live,
                recording: b.recording,
                version: b.version.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn claim_unowned(&self, node: &str) -> Result<u64> {
        // rows written since nodes exist always name one: the scan runs once per store
        let done = self.read(|t| Ok(t.open_table(META)?.get("nodes_claimed")?.is_some()))?;
        if done {
            return Ok(0);
        }
        let node = node.to_string();
        self.write(move |txn| {
            txn.open_table(META)?.insert("nodes_claimed", 1)?;
            let mut n = 0;
            let mut cams = txn.open_table(CAMERAS)?;
            let mut fix = Vec::new();
            for entry in cams.iter()? {
                let (k, v) = entry?;
                let c = camera_from_row(k.value(), v.value())?;
                if c.node.is_empty() {
                    fix.push(c);
                }
            }
            for mut c in fix {
                c.node = node.clone();
                cams.insert(c.id.as_str(), camera_row(&c)?.as_slice())?;
                n += 1;
            }
            let mut recs = txn.open_table(RECORDINGS)?;
            let mut fix = Vec::new();
            for entry in recs.iter()? {
                let (k, v) = entry?;
                let r = recording_from_row(k.value(), v.value())?;
                if r.node.is_empty() {
                    fix.push(r);
                }
            }
            for mut r in fix {
                r.node = node.clone();
                recs.insert(r.id as u64, recording_row(&r)?.as_slice())?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn export(&self) -> Result<Dump> {
        self.read(|t| {
            let mut dump = Dump::default();
            for entry in t.open_table(USERS)?.iter()? {
                let (k, v) = entry?;
                dump.users.push(user_from_row(k.value(), v.value())?);
            }
            for entry in t.open_table(CAMERAS)?.iter()? {
                let (k, v) = entry?;
                dump.cameras.push(camera_from_row(k.value(), v.value())?);
            }
            for entry in t.open_multimap_table(USER_CAMERAS)?.iter()? {
                let (k, values) = entry?;
                for v in values {
                    dump.assignments
                        .push((k.value() as i64, v?.value().to_string()));
                }
            }
            for entry in t.open_table(REVOKED)?.iter()? {
                let (k, v) = entry?;
                let exp = Utc.timestamp_opt(v.value(), 0).single().unwrap_or_default();
                dump.revocations.push((k.value().to_string(), exp));
            }
            for entry in t.open_table(TOKEN_GEN)?.iter()? {
                let (k, v) = entry?;
                dump.generations.push((k.value() as i64, v.value()));
            }
            for entry in t.open_table(RECORDINGS)?.iter()? {
                let (k, v) = entry?;
                dump.recordings
                    .push(recording_from_row(k.value(), v.value())?);
            }
            Ok(dump)
        })
    }

    async fn import(&self, dump: &Dump) -> Result<ImportReport> {
        let dump = dump.clone();
        self.write(move |txn| {
            let mut rep = ImportReport::default();
            let mut meta = txn.open_table(META)?;
            let mut users = txn.open_table(USERS)?;
            let mut names = txn.open_table(USERNAMES)?;
            let mut next = meta.get("next_user_id")?.map(|v| v.value()).unwrap_or(1);
            for (u, hash) in &dump.users {
                let id = user_id(u.id)?;
                let by_name = names.get(u.username.as_str())?.map(|v| v.value());
                match by_name {
                    Some(existing) if existing == id => rep.users.1 += 1,
                    Some(existing) => {
                        return Err(Error::conflict(format!(
                            "username '{}' is user {existing} here but user {id} in the source; nothing imported",
                            u.username
                        )))
                    }
                    None if users.get(id)?.is_some() => {
                        return Err(Error::conflict(format!(
                            "user id {id} is taken by another username here; nothing imported"
                        )))
                    }
                    None => {
                        let row = encode(&UserRow::V1 {
                            username: u.username.clone(),
                            role: u.role,
                            password_hash: hash.clone(),
                            created_at_us: to_us(u.created_at),
                        })?;
                        users.insert(id, row.as_slice())?;
                        names.insert(u.username.as_str(), id)?;
                        rep.users.0 += 1;
                    }
                }
                next = next.max(id + 1);
            }
            meta.insert("next_user_id", next)?;
            let mut gens = txn.open_table(TOKEN_GEN)?;
            for (uid, generation) in &dump.generations {
                let id = user_id(*uid)?;
                let have = gens.get(id)?.map_or(0, |g| g.value());
                gens.insert(id, have.max(*generation))?;
            }
            let mut cams = txn.open_table(CAMERAS)?;
            let mut addrs = txn.open_table(CAMERA_ADDRS)?;
            for c in &dump.cameras {
                if cams.get(c.id.as_str())?.is_some() {
                    rep.cameras.1 += 1;
                    continue;
                }
                if let Some(other) = addrs.get((c.ip.as_str(), c.channel))? {
                    return Err(Error::conflict(format!(
                        "channel {} of {} is camera {} here but {} in the source; nothing imported",
                        c.channel,
                        c.ip,
                        other.value(),
                        c.id
                    )));
                }
                cams.insert(c.id.as_str(), camera_row(c)?.as_slice())?;
                addrs.insert((c.ip.as_str(), c.channel), c.id.as_str())?;
                rep.cameras.0 += 1;
            }
            let mut by_user = txn.open_multimap_table(USER_CAMERAS)?;
            let mut by_camera = txn.open_multimap_table(CAMERA_USERS)?;
            for (uid, cam) in &dump.assignments {
                let uid = user_id(*uid)?;
                if users.get(uid)?.is_none() || cams.get(cam.as_str())?.is_none() {
                    return Err(Error::conflict(format!(
                        "assignment of camera {cam} to user {uid} names a missing row; nothing imported"
                    )));
                }
                if by_user.insert(uid, cam.as_str())? {
                    rep.assignments.1 += 1;
                } else {
                    rep.assignments.0 += 1;
                }
                by_camera.insert(cam.as_str(), uid)?;
            }
            let mut revoked = txn.open_table(REVOKED)?;
            for (jti, exp) in &dump.revocations {
                if revoked.get(jti.as_str())?.is_some() {
                    rep.revocations.1 += 1;
                } else {
                    revoked.insert(jti.as_str(), exp.timestamp())?;
                    rep.revocations.0 += 1;
                }
            }
            let mut recs = txn.open_table(RECORDINGS)?;
            let mut by_start = txn.open_table(REC_BY_START)?;
            let mut open = txn.open_table(REC_OPEN)?;
            let mut next_rec = meta.get("next_recording_id")?.map(|v| v.value()).unwrap_or(1);
            for r in &dump.recordings {
                let id = u64::try_from(r.id).map_err(|_| Error::conflict("a recording id is negative"))?;
                next_rec = next_rec.max(id + 1);
                if recs.get(id)?.is_some() {
                    rep.recordings.1 += 1;
                    continue;
                }
                recs.insert(id, recording_row(r)?.as_slice())?;
                by_start.insert((to_us(r.start_time), id), ())?;
                if r.status == RecordingStatus::Recording {
                    open.insert(id, ())?;
                }
                rep.recordings.0 += 1;
            }
            meta.insert("next_recording_id", next_rec)?;
            Ok(rep)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built-in brands keep the encoding the derived enum gave them (rows written before added
    /// brands existed read the same); an added brand is stored by name; JSON has names only.
    #[test]
    fn brands_keep_their_encoding() {
        #[derive(Serialize)]
        enum OldBrand {
            Generic,
            Hikvision,
            Dahua,
            Xmeye,
            Onvif,
        }
        for (old, new) in [
            (OldBrand::Generic, Brand::Generic),
            (OldBrand::Hikvision, Brand::Hikvision),
            (OldBrand::Dahua, Brand::Dahua),
            (OldBrand::Xmeye, Brand::Xmeye),
            (OldBrand::Onvif, Brand::Onvif),
        ] {
            let bytes = encode(&old).unwrap();
            assert_eq!(encode(&new).unwrap(), bytes);
            assert_eq!(decode::<Brand>(&bytes, "brand").unwrap(), new);
        }
        let acme = Brand::named("acme").unwrap();
        assert_eq!(acme, Brand::Custom("acme"));
        assert_eq!(
            decode::<Brand>(&encode(&acme).unwrap(), "brand").unwrap(),
            acme
        );
        assert_eq!(serde_json::to_string(&acme).unwrap(), r#""acme""#);
        assert_eq!(serde_json::to_string(&Brand::Dahua).unwrap(), r#""dahua""#);
        assert_eq!(
            serde_json::from_str::<Brand>(r#""onvif""#).unwrap(),
            Brand::Onvif
        );
        assert!(Brand::named("Not A Name").is_none());
        assert!(
            Brand::from_input("acme", |_| false).is_none(),
            "input needs a template"
        );
        assert_eq!(Brand::from_input(" ACME ", |n| n == "acme"), Some(acme));
    }

    /// Rows as schema 1 wrote them (struct variants, no node) still read, with no node.
    #[test]
    fn schema_1_rows_read() {
        #[derive(Serialize)]
        enum OldCamera {
            V1 {
                ip: String,
                channel: u32,
                name: String,
                brand: Brand,
                port: u16,
                rtsp_url_sealed: Vec<u8>,
                rtsp_url_display: String,
                transport: Transport,
                is_active: bool,
                last_seen_us: Option<i64>,
                is_recording: bool,
                created_at_us: i64,
            },
        }
        #[derive(Serialize)]
        enum OldRecording {
            V1 {
                camera_id: String,
                user_id: Option<i64>,
                path: String,
                start_us: i64,
                end_us: Option<i64>,
                duration_sec: f64,
                file_size: u64,
                status: RecordingStatus,
                continuous: bool,
                note: Option<String>,
            },
        }
        let cam = encode(&OldCamera::V1 {
            ip: "10.0.0.1".into(),
            channel: 2,
            name: "gate".into(),
            brand: Brand::Dahua,
            port: 554,
            rtsp_url_sealed: vec![1, 2, 3],
            rtsp_url_display: "rtsp://x".into(),
            transport: Transport::Udp,
            is_active: true,
            last_seen_us: Some(5),
            is_recording: true,
            created_at_us: 7,
        })
        .unwrap();
        let c = camera_from_row("10.0.0.1-ch2", &cam).unwrap();
        assert_eq!(
            (
                c.channel,
                c.name.as_str(),
                c.brand,
                c.transport,
                c.node.as_str(),
                c.kind.as_str()
            ),
            (2, "gate", Brand::Dahua, Transport::Udp, "", "dvr"),
            "rows from before `type` read with the default a new camera gets"
        );
        assert_eq!(camera_from_row(&c.id, &camera_row(&c).unwrap()).unwrap(), c);
        let rec = encode(&OldRecording::V1 {
            camera_id: "cam".into(),
            user_id: Some(3),
            path: "cam/a.mp4".into(),
            start_us: 1,
            end_us: Some(2),
            duration_sec: 1.5,
            file_size: 99,
            status: RecordingStatus::Completed,
            continuous: true,
            note: Some("n".into()),
        })
        .unwrap();
        let r = recording_from_row(4, &rec).unwrap();
        assert_eq!(
            (
                r.id,
                r.path.as_str(),
                r.file_size,
                r.note.as_deref(),
                r.node.as_str()
            ),
            (4, "cam/a.mp4", 99, Some("n"), "")
        );
        assert_eq!(
            recording_from_row(4, &recording_row(&r).unwrap()).unwrap(),
            r
        );
    }
}
