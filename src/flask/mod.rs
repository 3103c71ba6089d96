//! `vigia store import-flask`: the old Flask backend's users, cameras, assignments and
//! recordings copied into vigia's store (redb or PostgreSQL), in one transaction and
//! idempotently (a second run finds everything there and adds nothing).
//!
//! - Users keep their bcrypt hashes; a login verifies them and replaces them with argon2id
//!   (`auth::password`). A username vigia already has is left as it is.
//! - Camera URLs are Fernet tokens keyed from the old `SECRET_KEY`: the key itself when it is
//!   a Fernet key, else url-safe base64 of its SHA-256 (`--fernet-key` overrides both). Each
//!   opened URL is sealed with vigia's key; a token that does not open leaves the camera with
//!   its brand template's URL and no credentials, named in the report.
//! - Recordings: the file of each row is looked for under `--recordings-from` by the tail of
//!   its old absolute path (then at that path itself), hard-linked into vigia's layout (copied
//!   across file systems) and given a row with status `imported`; rows whose file is missing
//!   are reported, not imported. Files are placed before the transaction: a run that fails
//!   after placing some leaves them for the next run, which reuses them.

pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::camera::{self, seal::Sealer, templates, url};
use crate::error::{Error, Result};
use crate::store::{
    Brand, Camera, Dump, ImportReport, Recording, RecordingFilter, RecordingStatus, Role, Store,
    Transport, User,
};
use source::{OldCamera, OldData, OldRecording};

/// What the command was asked to do.
pub struct Options {
    /// The old backend's `SECRET_KEY`.
    pub old_secret_key: String,
    /// A Fernet key (url-safe base64 of 32 bytes) to use instead of the ones derived from it.
    pub fernet_key: Option<String>,
    /// Where the old recordings' files are now.
    pub recordings_from: Option<PathBuf>,
}

/// Where the imported data goes, besides the store.
pub struct Target<'a> {
    pub sealer: &'a Sealer,
    pub recordings_dir: &'a Path,
    /// This box's `NODE_NAME`: the node that pulls the cameras and holds the files.
    pub node: &'a str,
    pub now: DateTime<Utc>,
}

/// The Fernet keys to try, each with how it was made (for the report).
pub fn fernet_keys(opts: &Options) -> Result<Vec<(&'static str, fernet::Fernet)>> {
    if let Some(k) = &opts.fernet_key {
        let f = fernet::Fernet::new(k.trim()).ok_or_else(|| {
            Error::bad_request("--fernet-key is not a Fernet key (url-safe base64 of 32 bytes)")
        })?;
        return Ok(vec![("--fernet-key", f)]);
    }
    use base64::Engine;
    use sha2::Digest;
    let secret = opts.old_secret_key.as_str();
    let mut keys = Vec::new();
    if let Some(f) = fernet::Fernet::new(secret.trim()) {
        keys.push(("the old SECRET_KEY as a Fernet key", f));
    }
    let derived =
        base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(secret.as_bytes()));
    if let Some(f) = fernet::Fernet::new(&derived) {
        keys.push(("url-safe base64 of SHA-256(old SECRET_KEY)", f));
    }
    Ok(keys)
}

/// What vigia's store holds already, as far as an import cares.
#[derive(Debug, Default)]
pub struct Existing {
    pub users: HashMap<String, i64>,
    pub max_user_id: i64,
    pub cameras: HashSet<String>,
    pub recording_paths: HashSet<String>,
    pub max_recording_id: i64,
}

impl Existing {
    pub async fn read(store: &dyn Store) -> Result<Existing> {
        let users = store.users().await?;
        let recordings = store
            .recordings(&RecordingFilter {
                limit: usize::MAX,
                ..Default::default()
            })
            .await?;
        Ok(Existing {
            max_user_id: users.iter().map(|u| u.id).max().unwrap_or(0),
            users: users.into_iter().map(|u| (u.username, u.id)).collect(),
            cameras: store.cameras().await?.into_iter().map(|c| c.id).collect(),
            max_recording_id: recordings.iter().map(|r| r.id).max().unwrap_or(0),
            recording_paths: recordings.into_iter().map(|r| r.path).collect(),
        })
    }
}

/// A file to put into vigia's layout.
#[derive(Debug, Clone)]
pub struct Placement {
    pub from: PathBuf,
    /// Relative to `RECORDINGS_DIR`.
    pub to: String,
}

/// What an import will do: the rows for the store's one transaction, the files to place,
/// rows already there, and every item left out or changed, with its reason.
#[derive(Debug, Default)]
pub struct Plan {
    pub dump: Dump,
    pub files: Vec<Placement>,
    /// Users, cameras and recordings that vigia has already (by username, id, file).
    pub already: (u64, u64, u64),
    pub skipped: Vec<String>,
    /// How each camera URL was opened: key description → count.
    pub opened_with: BTreeMap<&'static str, u64>,
}

/// The plan for importing `old` next to `existing`. Reads no database; looks for the
/// recordings' files.
pub fn plan(
    old: &OldData,
    existing: &Existing,
    keys: &[(&'static str, fernet::Fernet)],
    opts: &Options,
    target: &Target<'_>,
) -> Result<Plan> {
    let mut p = Plan::default();
    // users: by username; new ones get ids after vigia's own
    let mut user_ids: HashMap<i64, i64> = HashMap::new();
    let mut next_user = existing.max_user_id;
    for u in &old.users {
        if let Some(&id) = existing.users.get(&u.username) {
            user_ids.insert(u.id, id);
            p.already.0 += 1;
            continue;
        }
        let Some(role) = Role::parse(u.role.trim().to_ascii_lowercase().as_str()) else {
            p.skipped
                .push(format!("user '{}': unknown role '{}'", u.username, u.role));
            continue;
        };
        if u.username.is_empty() || u.password_hash.is_empty() {
            p.skipped
                .push(format!("user {}: no username or no password hash", u.id));
            continue;
        }
        next_user += 1;
        user_ids.insert(u.id, next_user);
        let user = User {
            id: next_user,
            username: u.username.clone(),
            role,
            created_at: u.created_at.unwrap_or(target.now),
        };
        p.dump.users.push((user, u.password_hash.clone()));
    }
    // cameras, and the user each was assigned to
    let mut by_ip: HashMap<String, Vec<(u32, String)>> = HashMap::new();
    for c in &old.cameras {
        let Some(cam) = camera(c, keys, target, &mut p)? else {
            continue;
        };
        by_ip
            .entry(cam.ip.clone())
            .or_default()
            .push((cam.channel, cam.id.clone()));
        if let Some(old_uid) = c.user_id {
            match user_ids.get(&old_uid) {
                Some(&uid) => p.dump.assignments.push((uid, cam.id.clone())),
                None => p.skipped.push(format!(
                    "assignment of camera {} to old user {old_uid}: that user was not imported",
                    cam.id
                )),
            }
        }
        if existing.cameras.contains(&cam.id) {
            p.already.1 += 1;
        } else {
            p.dump.cameras.push(cam);
        }
    }
    // recordings whose files are found
    let mut next_rec = existing.max_recording_id;
    for r in &old.recordings {
        let Some(start) = r.start_time else {
            p.skipped.push(format!("recording {}: no start_time", r.id));
            continue;
        };
        let ip = camera::normalize_address(&r.camera_ip).unwrap_or_else(|_| r.camera_ip.clone());
        let camera_id = by_ip
            .get(&ip)
            .and_then(|chs| chs.iter().min().map(|(_, id)| id.clone()))
            .unwrap_or_else(|| camera::camera_id(&ip, 1));
        let rel = imported_path(&camera_id, start, r.id);
        if existing.recording_paths.contains(&rel) {
            p.already.2 += 1;
            continue;
        }
        let Some(from) = find_file(&r.file_path, opts.recordings_from.as_deref()) else {
            p.skipped.push(format!(
                "recording {} ({}): file not found{}",
                r.id,
                r.file_path,
                opts.recordings_from
                    .as_ref()
                    .map_or(String::new(), |d| format!(" under {}", d.display()))
            ));
            continue;
        };
        let size = std::fs::metadata(&from).map(|m| m.len()).unwrap_or(0);
        next_rec += 1;
        p.dump.recordings.push(recording(
            r, next_rec, camera_id, &rel, start, size, &user_ids, target,
        ));
        p.files.push(Placement { from, to: rel });
    }
    Ok(p)
}

/// vigia's camera for an old row, its URL opened and sealed again (`None`: left out, with the
/// reason in `p.skipped`).
fn camera(
    c: &OldCamera,
    keys: &[(&'static str, fernet::Fernet)],
    target: &Target<'_>,
    p: &mut Plan,
) -> Result<Option<Camera>> {
    let Ok(ip) = camera::normalize_address(&c.ip) else {
        p.skipped
            .push(format!("camera {} ('{}'): not an address", c.id, c.ip));
        return Ok(None);
    };
    let channel = c
        .channel
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=camera::MAX_CHANNEL).contains(n))
        .unwrap_or(1);
    let id = camera::camera_id(&ip, channel);
    let brand = match c.brand.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        None => Brand::Generic,
        Some(b) => Brand::from_input(b, templates::is_configured).unwrap_or_else(|| {
            p.skipped.push(format!(
                "camera {id}: unknown brand '{b}', imported as generic"
            ));
            Brand::Generic
        }),
    };
    let port = c
        .port
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| templates::default_port(brand));
    let opened = c.token.as_deref().and_then(|t| {
        keys.iter().find_map(|(how, k)| {
            let plain = k.decrypt(t.trim()).ok()?;
            let url = String::from_utf8(plain).ok()?;
            url::parse(&url).is_some().then_some((*how, url))
        })
    });
    let rtsp = match opened {
        Some((how, url)) => {
            *p.opened_with.entry(how).or_default() += 1;
            url
        }
        None => {
            p.skipped.push(format!(
                "camera {id}: {}; imported with its brand's URL and no credentials",
                if c.token.is_some() {
                    "its rtsp_url_encrypted does not open with the Fernet key(s) tried"
                } else {
                    "no rtsp_url_encrypted"
                }
            ));
            camera::resolve_rtsp_url(None, brand, &ip, port, channel, None, None)?
        }
    };
    // the API refuses what breaks its rules; an import keeps what it can of the old values
    use crate::services::cameras::{kind, kind_allowed, name_or_default, MAX_KIND, MAX_NAME};
    let name = name_or_default(
        c.name
            .as_deref()
            .map(|n| camera::truncate(n.trim(), MAX_NAME))
            .as_deref(),
        &id,
    );
    let kind = kind(c.kind.as_deref())
        .map(|k| camera::truncate(&k, MAX_KIND))
        .filter(|k| kind_allowed(k))
        .unwrap_or_else(|| Camera::default_kind(channel).to_string());
    Ok(Some(Camera {
        rtsp_url_sealed: target.sealer.seal(&id, &rtsp)?,
        rtsp_url_display: url::masked(&rtsp),
        name,
        ip,
        channel,
        brand,
        port,
        transport: Transport::Tcp,
        is_active: c.is_active.unwrap_or(true),
        last_seen: c.last_seen,
        is_recording: false,
        created_at: target.now,
        node: target.node.to_string(),
        kind,
        id,
    }))
}

#[allow(clippy::too_many_arguments)]
fn recording(
    r: &OldRecording,
    id: i64,
    camera_id: String,
    rel: &str,
    start: DateTime<Utc>,
    size: u64,
    user_ids: &HashMap<i64, i64>,
    target: &Target<'_>,
) -> Recording {
    let duration = r
        .duration_sec
        .filter(|d| d.is_finite() && *d >= 0.0)
        .or_else(|| {
            r.end_time
                .map(|e| (e - start).num_milliseconds() as f64 / 1000.0)
        })
        .unwrap_or(0.0)
        .max(0.0);
    Recording {
        id,
        camera_id,
        user_id: r.user_id.and_then(|u| user_ids.get(&u).copied()),
        path: rel.to_string(),
        start_time: start,
        // an absurd old duration (past chrono's range) gives no end past the start, not a panic
        end_time: Some(r.end_time.unwrap_or_else(|| {
            chrono::Duration::try_milliseconds((duration * 1000.0) as i64)
                .and_then(|d| start.checked_add_signed(d))
                .unwrap_or(start)
        })),
        duration_sec: duration,
        file_size: size,
        status: RecordingStatus::Imported,
        continuous: false,
        note: Some(format!("imported from the Flask backend ({})", r.file_path)),
        node: target.node.to_string(),
    }
}

/// The relative path of an imported file: the camera and start time as vigia's own files,
/// and the old row's id instead of a random suffix (a second import finds it again).
pub fn imported_path(camera: &str, start: DateTime<Utc>, old_id: i64) -> String {
    crate::media::recorder::path_with(camera, start, &format!("flask{old_id}"))
}

/// Where the file the old backend wrote at `old_path` is now: under `dir` by the longest tail
/// of that path that exists there, else at the path itself.
pub fn find_file(old_path: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let parts: Vec<&str> = old_path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect();
    if let Some(dir) = dir {
        for k in (1..=parts.len()).rev() {
            let p = parts[parts.len() - k..]
                .iter()
                .fold(dir.to_path_buf(), |acc, s| acc.join(s));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = Path::new(old_path);
    (p.is_absolute() && p.is_file()).then(|| p.to_path_buf())
}

/// Puts each file into vigia's layout: a hard link, or a copy (through a temporary name)
/// where a link cannot be made. A file already there with the same size is kept (a run that
/// stopped after placing it).
pub fn place(files: &[Placement], recordings_dir: &Path) -> Result<()> {
    for f in files {
        let to = recordings_dir.join(&f.to);
        let io = |what: &str, e: std::io::Error| {
            Error::failed(format!("cannot {what} {}", to.display()), e)
        };
        let size = std::fs::metadata(&f.from)
            .map_err(|e| Error::failed(format!("cannot read {}", f.from.display()), e))?
            .len();
        if let Ok(m) = std::fs::metadata(&to) {
            if m.len() == size {
                continue;
            }
            return Err(Error::conflict(format!(
                "{} exists with another size; move it away and run the import again",
                to.display()
            )));
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create the folder of", e))?;
        }
        if std::fs::hard_link(&f.from, &to).is_err() {
            let tmp = to.with_extension("mp4.importing");
            std::fs::copy(&f.from, &tmp).map_err(|e| io("copy into", e))?;
            std::fs::File::open(&tmp)
                .and_then(|t| t.sync_all())
                .map_err(|e| io("sync", e))?;
            std::fs::rename(&tmp, &to).map_err(|e| io("rename into", e))?;
        }
    }
    Ok(())
}

/// The whole command: reads the old database `from`, opens vigia's store as `config` says
/// (refusing one made with another `SECRET_KEY`), plans, and unless `dry_run` places the
/// files and writes the rows in one transaction. Returns the report to print.
pub async fn run(
    config: &crate::config::Config,
    from: &crate::store::DbConfig,
    opts: &Options,
    dry_run: bool,
) -> Result<String> {
    let keys = fernet_keys(opts)?;
    templates::configure(config.rtsp_templates.clone());
    let (db, source) = crate::store::postgres::connect_foreign(from).await?;
    let old = source::read(&db).await?;
    let secret = crate::app::open_data_dir(config)?;
    let store = crate::store::open(config.database.as_ref(), &config.data_dir).await?;
    if store
        .key_fingerprint(&crate::store::key_fingerprint(&secret), false)
        .await?
        .is_some()
    {
        return Err(Error::bad_request(
            "vigia's store was made with another SECRET_KEY than the one set: set the one it uses",
        ));
    }
    let existing = Existing::read(store.as_ref()).await?;
    let sealer = Sealer::new(&secret);
    let target = Target {
        sealer: &sealer,
        recordings_dir: &config.recordings_dir,
        node: &config.node_name,
        now: Utc::now(),
    };
    let p = plan(&old, &existing, &keys, opts, &target)?;
    let head = format!(
        "import-flask from {source}: {} users, {} cameras, {} recordings read\n",
        old.users.len(),
        old.cameras.len(),
        old.recordings.len()
    );
    if dry_run {
        return Ok(format!(
            "{head}dry run: nothing was written\n{}",
            report(&p, None)
        ));
    }
    place(&p.files, target.recordings_dir)?;
    let done = store.import(&p.dump).await?;
    Ok(format!("{head}{}", report(&p, Some(&done))))
}

/// The report of a plan, or of what it did (`done`: the store's answer).
pub fn report(p: &Plan, done: Option<&ImportReport>) -> String {
    let mut out = String::new();
    let row = |out: &mut String, name: &str, planned: usize, already: u64| {
        out.push_str(&format!(
            "  {name:<12} {planned:>6} {}, {already:>6} already there\n",
            if done.is_some() {
                "imported"
            } else {
                "to import"
            }
        ));
    };
    row(&mut out, "users", p.dump.users.len(), p.already.0);
    row(&mut out, "cameras", p.dump.cameras.len(), p.already.1);
    let assignments = done.map_or(p.dump.assignments.len() as u64, |d| d.assignments.0);
    out.push_str(&format!(
        "  {:<12} {assignments:>6} {}\n",
        "assignments",
        if done.is_some() {
            "imported"
        } else {
            "to import (or there)"
        }
    ));
    row(&mut out, "recordings", p.dump.recordings.len(), p.already.2);
    for (how, n) in &p.opened_with {
        out.push_str(&format!("camera URLs opened with {how}: {n}\n"));
    }
    if p.skipped.is_empty() {
        out.push_str("nothing skipped\n");
    } else {
        out.push_str(&format!("skipped or changed ({}):\n", p.skipped.len()));
        for s in &p.skipped {
            out.push_str(&format!("  - {s}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(secret: &str) -> Options {
        Options {
            old_secret_key: secret.into(),
            fernet_key: None,
            recordings_from: None,
        }
    }

    /// The two key forms: a SECRET_KEY that is itself a Fernet key is tried as is (and also
    /// hashed); any other string only through SHA-256. Python's `cryptography` made these
    /// tokens' format; the derivation is checked against a fixed vector.
    #[test]
    fn fernet_keys_from_the_old_secret_key() {
        let plain = fernet_keys(&opts("not a fernet key")).unwrap();
        assert_eq!(plain.len(), 1);
        assert!(plain[0].0.contains("SHA-256"));
        // SHA-256("not a fernet key") in url-safe base64 is the key; encrypt with it, open
        use base64::Engine;
        use sha2::Digest;
        let k = base64::engine::general_purpose::URL_SAFE
            .encode(sha2::Sha256::digest(b"not a fernet key"));
        let token = fernet::Fernet::new(&k)
            .unwrap()
            .encrypt(b"rtsp://u:p@127.0.0.1/x");
        assert_eq!(
            plain[0].1.decrypt(&token).unwrap(),
            b"rtsp://u:p@127.0.0.1/x"
        );

        let key = fernet::Fernet::generate_key();
        let both = fernet_keys(&opts(&key)).unwrap();
        assert_eq!(both.len(), 2);
        assert!(both[0].0.contains("as a Fernet key"));
        let mut o = opts("whatever");
        o.fernet_key = Some("short".into());
        assert!(fernet_keys(&o).is_err());
    }

    #[test]
    fn files_are_found_by_the_tail_of_their_old_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cam/2026")).unwrap();
        std::fs::write(dir.path().join("cam/2026/a.mp4"), b"x").unwrap();
        let found = find_file("/srv/old/recordings/cam/2026/a.mp4", Some(dir.path()));
        assert_eq!(found, Some(dir.path().join("cam/2026/a.mp4")));
        assert_eq!(
            find_file("/srv/../x/a.mp4", Some(&dir.path().join("cam/2026"))),
            Some(dir.path().join("cam/2026/a.mp4"))
        );
        assert_eq!(find_file("/srv/old/b.mp4", Some(dir.path())), None);
        let abs = dir.path().join("cam/2026/a.mp4");
        assert_eq!(find_file(abs.to_str().unwrap(), None), Some(abs.clone()));
    }

    /// An absurd old duration (past chrono's range) is bad input, not a panic: the end is the
    /// start.
    #[test]
    fn an_absurd_duration_gives_no_panic() {
        let start = Utc::now();
        let sealer = Sealer::new(&[7u8; 32]);
        let target = Target {
            sealer: &sealer,
            recordings_dir: Path::new("/nonexistent"),
            node: "box",
            now: start,
        };
        let old = OldRecording {
            duration_sec: Some(1e300),
            ..Default::default()
        };
        let r = recording(
            &old,
            1,
            "cam".into(),
            "cam/x.mp4",
            start,
            0,
            &HashMap::new(),
            &target,
        );
        assert_eq!(r.end_time, Some(start));
    }

    #[test]
    fn imported_paths_are_stable() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            imported_path("10.0.0.5-ch2", t, 42),
            "10.0.0.5-ch2/2026/03/04/050607-flask42.mp4"
        );
    }
}
