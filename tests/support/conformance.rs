//! The store conformance suite: one set of checks every `Store` back end must pass, so redb
//! and PostgreSQL keep the same semantics (ids, uniqueness, 404s, last-admin rules, cascades,
//! revocation, UTC times, races). `tests/store.rs` runs every check on a fresh, empty store of
//! each back end. A check panics with a message saying what differed.

use chrono::{Duration, Utc};
use futures_util::future::BoxFuture;

use vigia::store::Kind;
use vigia::store::{
    Brand, Camera, CameraPatch, CreateMode, Dump, DynStore, ImportReport, NewRecording, NewUser,
    NodeBeat, RecordingEnd, RecordingFilter, RecordingStatus, Role, Session, Transport,
};

/// Name and body of each check; each gets its own empty store.
pub type Check = (&'static str, fn(DynStore) -> BoxFuture<'static, ()>);

pub const CHECKS: &[Check] = &[
    ("users_create_read_unique", |s| {
        Box::pin(users_create_read_unique(s))
    }),
    ("first_user_only_once", |s| {
        Box::pin(first_user_only_once(s))
    }),
    ("last_admin_is_kept", |s| Box::pin(last_admin_is_kept(s))),
    ("cameras_crud_and_uniqueness", |s| {
        Box::pin(cameras_crud_and_uniqueness(s))
    }),
    ("assignments_all_or_nothing", |s| {
        Box::pin(assignments_all_or_nothing(s))
    }),
    ("deletes_cascade_to_assignments", |s| {
        Box::pin(deletes_cascade_to_assignments(s))
    }),
    ("sessions_and_revocation", |s| {
        Box::pin(sessions_and_revocation(s))
    }),
    ("concurrent_writers_keep_uniqueness", |s| {
        Box::pin(concurrent_writers_keep_uniqueness(s))
    }),
    ("recordings_index", |s| Box::pin(recordings_index(s))),
    ("nodes_and_claims", |s| Box::pin(nodes_and_claims(s))),
    ("key_fingerprint_is_kept", |s| {
        Box::pin(key_fingerprint_is_kept(s))
    }),
    ("import_is_idempotent_and_all_or_nothing", |s| {
        Box::pin(import_is_idempotent_and_all_or_nothing(s))
    }),
];

/// Fills a store with a little of everything (used by the migration tests too).
pub async fn populate(s: &DynStore) -> Dump {
    let a = s
        .create_user(new_user("admin", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    let u = s
        .create_user(new_user("user1", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    s.create_user(new_user("viewer1", Role::Viewer), CreateMode::Normal)
        .await
        .unwrap();
    for (ip, ch) in [("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.2", 2)] {
        s.create_camera(camera(ip, ch)).await.unwrap();
    }
    s.update_camera(
        "10.0.0.1",
        CameraPatch {
            last_seen: Some(Utc::now()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.assign(u.id, &["10.0.0.1".into(), "10.0.0.2-ch2".into()])
        .await
        .unwrap();
    s.assign(a.id, &["10.0.0.2".into()]).await.unwrap();
    s.revoke_token("revoked-jti", Utc::now() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(s.end_sessions(u.id).await.unwrap(), 1);
    let r = s
        .create_recording(NewRecording {
            camera_id: "10.0.0.1".into(),
            user_id: Some(u.id),
            path: "10.0.0.1/2026/11/27/100000-1.mp4".into(),
            start_time: Utc::now() - Duration::minutes(5),
            continuous: false,
            node: "box-1".into(),
        })
        .await
        .unwrap();
    let end = RecordingEnd {
        end_time: Utc::now(),
        duration_sec: 300.0,
        file_size: 75_000_000,
        status: RecordingStatus::Completed,
        note: None,
    };
    s.finish_recording(r.id, end).await.unwrap();
    s.export().await.unwrap()
}

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.to_string(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        role,
    }
}

/// A camera row as the API would build it (the sealed bytes are opaque to the store).
pub fn camera(ip: &str, channel: u32) -> Camera {
    let id = vigia::camera::camera_id(ip, channel);
    Camera {
        rtsp_url_sealed: vec![1, 2, 3, channel as u8],
        rtsp_url_display: format!("rtsp://u:***@{ip}:554/stream{channel}"),
        name: format!("cam {id}"),
        id,
        ip: ip.to_string(),
        channel,
        brand: Brand::Hikvision,
        port: 554,
        transport: Transport::Tcp,
        is_active: true,
        last_seen: None,
        is_recording: false,
        created_at: Utc::now(),
        node: "box-1".into(),
        kind: format!("ptz {channel}"),
    }
}

async fn users_create_read_unique(s: DynStore) {
    assert_eq!(s.count_users().await.unwrap(), 0);
    let before = Utc::now() - Duration::seconds(5);
    let a = s
        .create_user(new_user("alice", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    assert!(a.id > 0);
    assert_eq!((a.username.as_str(), a.role), ("alice", Role::Admin));
    assert!(a.created_at > before && a.created_at < Utc::now() + Duration::seconds(5));
    let b = s
        .create_user(new_user("bob", Role::Viewer), CreateMode::Normal)
        .await
        .unwrap();
    assert!(b.id > a.id, "ids increase");
    let dup = s
        .create_user(new_user("bob", Role::User), CreateMode::Normal)
        .await
        .unwrap_err();
    assert_eq!(dup.kind, Kind::Conflict, "{dup}");
    assert_eq!(
        s.user(a.id).await.unwrap(),
        Some(a.clone()),
        "read back equals created"
    );
    assert_eq!(s.user(9999).await.unwrap(), None);
    assert_eq!(s.user(-1).await.unwrap(), None);
    let (u, h) = s.user_credentials("bob").await.unwrap().unwrap();
    assert_eq!((u, h.as_str()), (b.clone(), "$argon2id$hash-of-bob"));
    assert!(s.user_credentials("nobody").await.unwrap().is_none());
    assert!(
        s.user_credentials("BOB").await.unwrap().is_none(),
        "usernames are case-sensitive"
    );
    assert_eq!(s.users().await.unwrap(), vec![a, b]);
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn first_user_only_once(s: DynStore) {
    s.create_user(new_user("first", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    let e = s
        .create_user(new_user("second", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::Forbidden, "{e}");
    assert_eq!(s.count_users().await.unwrap(), 1);
}

async fn last_admin_is_kept(s: DynStore) {
    let a = s
        .create_user(new_user("root", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    let u = s
        .create_user(new_user("user1", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    assert_eq!(
        s.set_role(a.id, Role::User).await.unwrap_err().kind,
        Kind::Conflict
    );
    assert_eq!(s.delete_user(a.id).await.unwrap_err().kind, Kind::Conflict);
    assert_eq!(
        s.user(a.id).await.unwrap().unwrap().role,
        Role::Admin,
        "nothing changed"
    );
    assert_eq!(
        s.set_role(u.id, Role::Admin).await.unwrap().role,
        Role::Admin
    );
    assert_eq!(
        s.set_role(a.id, Role::Viewer).await.unwrap().role,
        Role::Viewer
    );
    assert_eq!(s.user(a.id).await.unwrap().unwrap().role, Role::Viewer);
    s.delete_user(a.id).await.unwrap();
    assert_eq!(s.user(a.id).await.unwrap(), None);
    assert_eq!(s.delete_user(a.id).await.unwrap_err().kind, Kind::NotFound);
    assert_eq!(
        s.set_role(4242, Role::User).await.unwrap_err().kind,
        Kind::NotFound
    );
    assert!(
        s.user_credentials("root").await.unwrap().is_none(),
        "username freed"
    );
    s.create_user(new_user("root", Role::User), CreateMode::Normal)
        .await
        .unwrap();
}

async fn cameras_crud_and_uniqueness(s: DynStore) {
    let c1 = s.create_camera(camera("10.0.0.2", 1)).await.unwrap();
    let c2 = s.create_camera(camera("10.0.0.2", 2)).await.unwrap();
    assert_eq!(c2.id, "10.0.0.2-ch2");
    assert_eq!(s.camera("10.0.0.2").await.unwrap(), Some(c1.clone()));
    assert_eq!(
        s.create_camera(camera("10.0.0.2", 1))
            .await
            .unwrap_err()
            .kind,
        Kind::Conflict
    );
    let mut same_addr = camera("10.0.0.2", 2);
    same_addr.id = "other-id".into();
    assert_eq!(
        s.create_camera(same_addr).await.unwrap_err().kind,
        Kind::Conflict
    );
    let c0 = s.create_camera(camera("10.0.0.1", 1)).await.unwrap();
    let ids: Vec<String> = s
        .cameras()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        vec![c0.id.clone(), c1.id.clone(), c2.id.clone()],
        "sorted by id"
    );
    let seen = Utc::now();
    let up = s
        .update_camera(
            &c1.id,
            CameraPatch {
                name: Some("gate".into()),
                brand: Some(Brand::Dahua),
                port: Some(8554),
                rtsp_url: Some((vec![9, 9], "rtsp://x/***".into())),
                transport: Some(Transport::Udp),
                is_active: Some(false),
                last_seen: Some(seen),
                is_recording: Some(true),
                node: Some("box-2".into()),
                kind: Some("dome".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(up.name, "gate");
    assert_eq!(up.kind, "dome", "the old backend's type is kept");
    assert_eq!(up.node, "box-2", "a camera moves between nodes");
    assert_eq!(
        (up.brand, up.port, up.transport),
        (Brand::Dahua, 8554, Transport::Udp)
    );
    assert_eq!(up.rtsp_url_sealed, vec![9, 9]);
    assert!(!up.is_active && up.is_recording);
    assert_eq!(
        up.last_seen.unwrap().timestamp_micros(),
        seen.timestamp_micros()
    );
    assert_eq!(
        (up.ip.as_str(), up.channel, up.created_at),
        (c1.ip.as_str(), 1, c1.created_at)
    );
    assert_eq!(s.camera(&c1.id).await.unwrap(), Some(up.clone()));
    let same = s
        .update_camera(&c1.id, CameraPatch::default())
        .await
        .unwrap();
    assert_eq!(same, up, "an empty patch changes nothing");
    assert_eq!(
        s.update_camera("nope", CameraPatch::default())
            .await
            .unwrap_err()
            .kind,
        Kind::NotFound
    );
    s.delete_camera(&c2.id).await.unwrap();
    assert_eq!(
        s.delete_camera(&c2.id).await.unwrap_err().kind,
        Kind::NotFound
    );
    assert_eq!(s.camera(&c2.id).await.unwrap(), None);
    s.create_camera(camera("10.0.0.2", 2))
        .await
        .expect("address free again after delete");
}

async fn assignments_all_or_nothing(s: DynStore) {
    let u = s
        .create_user(new_user("user1", Role::User), CreateMode::FirstUser)
        .await
        .unwrap();
    for (ip, ch) in [("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.2", 3)] {
        s.create_camera(camera(ip, ch)).await.unwrap();
    }
    let e = s
        .assign(
            u.id,
            &["10.0.0.1".into(), "ghost-a".into(), "ghost-b".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(
        e.message.contains("ghost-a") && e.message.contains("ghost-b"),
        "{e}"
    );
    assert!(
        s.assigned_cameras(u.id).await.unwrap().is_empty(),
        "nothing assigned"
    );
    assert_eq!(
        s.assign(777, &["10.0.0.1".into()]).await.unwrap_err().kind,
        Kind::NotFound
    );
    s.assign(u.id, &["10.0.0.2-ch3".into(), "10.0.0.1".into()])
        .await
        .unwrap();
    s.assign(u.id, &["10.0.0.1".into()])
        .await
        .expect("assigning twice is fine");
    assert_eq!(
        s.assigned_cameras(u.id).await.unwrap(),
        vec!["10.0.0.1", "10.0.0.2-ch3"]
    );
    assert!(s.is_assigned(u.id, "10.0.0.1").await.unwrap());
    assert!(!s.is_assigned(u.id, "10.0.0.2").await.unwrap());
    assert!(!s.is_assigned(u.id + 1, "10.0.0.1").await.unwrap());
    let v = s
        .create_user(new_user("viewer1", Role::Viewer), CreateMode::Normal)
        .await
        .unwrap();
    s.assign(v.id, &["10.0.0.1".into()]).await.unwrap();
    assert!(
        s.is_assigned(v.id, "10.0.0.1").await.unwrap(),
        "a camera may have many users"
    );
    assert_eq!(
        s.unassign(u.id, "10.0.0.2").await.unwrap_err().kind,
        Kind::NotFound
    );
    assert_eq!(
        s.unassign(9999, "10.0.0.1").await.unwrap_err().kind,
        Kind::NotFound
    );
    s.unassign(u.id, "10.0.0.1").await.unwrap();
    assert_eq!(
        s.assigned_cameras(u.id).await.unwrap(),
        vec!["10.0.0.2-ch3"]
    );
    assert!(
        s.is_assigned(v.id, "10.0.0.1").await.unwrap(),
        "other users keep theirs"
    );
}

async fn deletes_cascade_to_assignments(s: DynStore) {
    let admin = s
        .create_user(new_user("admin", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    let u = s
        .create_user(new_user("user1", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    s.create_camera(camera("10.0.0.1", 1)).await.unwrap();
    s.create_camera(camera("10.0.0.2", 1)).await.unwrap();
    s.assign(u.id, &["10.0.0.1".into(), "10.0.0.2".into()])
        .await
        .unwrap();
    s.assign(admin.id, &["10.0.0.1".into()]).await.unwrap();
    s.delete_camera("10.0.0.1").await.unwrap();
    assert_eq!(s.assigned_cameras(u.id).await.unwrap(), vec!["10.0.0.2"]);
    assert!(s.assigned_cameras(admin.id).await.unwrap().is_empty());
    // a camera re-added under the same id is not assigned to anyone
    s.create_camera(camera("10.0.0.1", 1)).await.unwrap();
    assert!(!s.is_assigned(u.id, "10.0.0.1").await.unwrap());
    s.delete_user(u.id).await.unwrap();
    assert!(
        s.camera("10.0.0.2").await.unwrap().is_some(),
        "cameras stay"
    );
    let again = s
        .create_user(new_user("user1", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    assert!(s.assigned_cameras(again.id).await.unwrap().is_empty());
    assert!(!s.is_assigned(u.id, "10.0.0.2").await.unwrap());
}

async fn sessions_and_revocation(s: DynStore) {
    let u = s
        .create_user(new_user("alice", Role::Admin), CreateMode::FirstUser)
        .await
        .unwrap();
    let other = s
        .create_user(new_user("bob", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    assert_eq!(
        s.session(u.id, "jti-1", 0).await.unwrap(),
        Session::Active(u.clone())
    );
    let now = Utc::now();
    s.revoke_token("jti-1", now + Duration::hours(1))
        .await
        .unwrap();
    s.revoke_token("jti-1", now + Duration::hours(1))
        .await
        .expect("revoking twice is fine");
    s.revoke_token("jti-old", now - Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(s.session(u.id, "jti-1", 0).await.unwrap(), Session::Revoked);
    assert_eq!(
        s.session(u.id, "jti-2", 0).await.unwrap(),
        Session::Active(u.clone())
    );
    assert_eq!(s.session(4242, "jti-2", 0).await.unwrap(), Session::NoUser);
    s.delete_user(other.id).await.unwrap();
    assert_eq!(
        s.session(other.id, "jti-3", 0).await.unwrap(),
        Session::NoUser
    );
    assert_eq!(
        s.prune_revocations(now).await.unwrap(),
        1,
        "only the expired one"
    );
    assert_eq!(
        s.session(u.id, "jti-1", 0).await.unwrap(),
        Session::Revoked,
        "live one kept"
    );
    assert_eq!(
        s.session(u.id, "jti-old", 0).await.unwrap(),
        Session::Active(u.clone())
    );
    assert_eq!(s.prune_revocations(now).await.unwrap(), 0);

    // ending sessions, and a new password, refuse every token issued before
    let u = match s.session(u.id, "jti-4", 0).await.unwrap() {
        Session::Active(u) => u,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.token_generation(u.id).await.unwrap(), 0);
    assert_eq!(s.end_sessions(u.id).await.unwrap(), 1);
    assert_eq!(s.session(u.id, "jti-4", 0).await.unwrap(), Session::Revoked);
    assert_eq!(
        s.session(u.id, "jti-5", 1).await.unwrap(),
        Session::Active(u.clone())
    );
    assert_eq!(s.set_password(u.id, "$argon2id$new").await.unwrap(), 2);
    assert_eq!(s.session(u.id, "jti-5", 1).await.unwrap(), Session::Revoked);
    assert_eq!(s.token_generation(u.id).await.unwrap(), 2);
    let (_, hash) = s.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!(hash, "$argon2id$new");
    assert_eq!(
        s.session(u.id, "jti-5", 2).await.unwrap(),
        Session::Active(u),
        "role and name unchanged"
    );
    for missing in [
        s.end_sessions(4242).await.unwrap_err(),
        s.set_password(4242, "x").await.unwrap_err(),
        s.token_generation(4242).await.unwrap_err(),
    ] {
        assert_eq!(missing.kind, Kind::NotFound);
    }
}

async fn concurrent_writers_keep_uniqueness(s: DynStore) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_user(
                new_user(&format!("first{i}"), Role::Admin),
                CreateMode::FirstUser,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind, Kind::Forbidden, "{e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one first user");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let a = s
                .create_user(new_user("same", Role::User), CreateMode::Normal)
                .await;
            let b = s.create_camera(camera("10.9.9.9", 5)).await;
            (a.is_ok(), b.is_ok())
        }));
    }
    let (mut users, mut cams) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        users += a as u32;
        cams += b as u32;
    }
    assert_eq!((users, cams), (1, 1), "one winner per unique key");
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn key_fingerprint_is_kept(s: DynStore) {
    assert_eq!(
        s.key_fingerprint("aaaa", false).await.unwrap(),
        None,
        "first key is recorded"
    );
    assert_eq!(s.key_fingerprint("aaaa", false).await.unwrap(), None);
    assert_eq!(
        s.key_fingerprint("bbbb", false).await.unwrap(),
        Some("aaaa".into())
    );
    assert_eq!(
        s.key_fingerprint("aaaa", false).await.unwrap(),
        None,
        "not replaced"
    );
    assert_eq!(
        s.key_fingerprint("bbbb", true).await.unwrap(),
        Some("aaaa".into())
    );
    assert_eq!(
        s.key_fingerprint("bbbb", false).await.unwrap(),
        None,
        "replaced"
    );
}

async fn import_is_idempotent_and_all_or_nothing(s: DynStore) {
    let dump = populate(&s).await;
    assert_eq!(dump.users.len(), 3);
    assert_eq!(dump.cameras.len(), 3);
    assert_eq!(dump.assignments.len(), 3);
    assert_eq!(dump.revocations.len(), 1);
    assert_eq!(dump.recordings.len(), 1);
    assert_eq!(dump.generations.len(), 1, "ended sessions stay ended");
    assert!(
        dump.users.iter().all(|(_, h)| h.starts_with("$argon2id$")),
        "hashes travel"
    );
    let rep = s.import(&dump).await.unwrap();
    assert_eq!(
        rep,
        ImportReport {
            users: (0, 3),
            cameras: (0, 3),
            assignments: (0, 3),
            revocations: (0, 1),
            recordings: (0, 1),
        },
        "importing what is there changes nothing"
    );
    assert_eq!(s.export().await.unwrap(), dump);

    // a dump whose username exists under another id: refused, and nothing of it lands
    let mut bad = Dump::default();
    let mut clash = dump.users[1].clone();
    clash.0.id = 4242;
    bad.users.push(clash);
    let mut extra = camera("10.0.0.9", 1);
    extra.created_at = dump.cameras[0].created_at;
    bad.cameras.push(extra);
    let e = s.import(&bad).await.unwrap_err();
    assert_eq!(e.kind, Kind::Conflict, "{e}");
    assert!(
        s.camera("10.0.0.9").await.unwrap().is_none(),
        "all or nothing"
    );

    // new rows with explicit ids land, and later ids continue after them
    let mut more = Dump::default();
    let mut u = dump.users[2].clone();
    u.0.id = 50;
    u.0.username = "imported".into();
    more.users.push(u);
    more.assignments.push((50, "10.0.0.1".into()));
    let rep = s.import(&more).await.unwrap();
    assert_eq!((rep.users, rep.assignments), ((1, 0), (1, 0)));
    assert!(s.is_assigned(50, "10.0.0.1").await.unwrap());
    let next = s
        .create_user(new_user("after", Role::User), CreateMode::Normal)
        .await
        .unwrap();
    assert!(
        next.id > 50,
        "ids continue after imported ones: {}",
        next.id
    );
}

fn new_recording(cam: &str, minutes_ago: i64, continuous: bool) -> NewRecording {
    let start = Utc::now() - Duration::minutes(minutes_ago);
    NewRecording {
        camera_id: cam.into(),
        user_id: Some(1),
        path: format!("{cam}/{}.mp4", start.timestamp_micros()),
        start_time: start,
        continuous,
        node: if cam == "cam-b" { "box-2" } else { "box-1" }.into(),
    }
}

async fn recordings_index(s: DynStore) {
    let a = s
        .create_recording(new_recording("cam-a", 30, false))
        .await
        .unwrap();
    let b = s
        .create_recording(new_recording("cam-b", 20, true))
        .await
        .unwrap();
    assert_eq!(
        s.create_recording(new_recording("cam-a", 15, false))
            .await
            .unwrap_err()
            .kind,
        Kind::Conflict,
        "one open recording per camera, whatever the node"
    );
    let c = s
        .create_recording(new_recording("cam-c", 10, false))
        .await
        .unwrap();
    assert!(a.id > 0 && b.id > a.id && c.id > b.id, "ids increase");
    assert_eq!(
        (a.status, a.end_time, a.file_size),
        (RecordingStatus::Recording, None, 0)
    );
    assert_eq!(s.recording(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.recording(9999).await.unwrap(), None);
    let all = RecordingFilter {
        limit: 100,
        ..Default::default()
    };
    let ids = |v: Vec<vigia::store::Recording>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.recordings(&all).await.unwrap()),
        vec![c.id, b.id, a.id],
        "newest first"
    );
    let only_a = RecordingFilter {
        camera_ids: Some(vec!["cam-a".into(), "cam-c".into()]),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(ids(s.recordings(&only_a).await.unwrap()), vec![c.id, a.id]);
    let none = RecordingFilter {
        camera_ids: Some(vec![]),
        limit: 100,
        ..Default::default()
    };
    assert!(
        s.recordings(&none).await.unwrap().is_empty(),
        "an empty camera list sees nothing"
    );
    let window = RecordingFilter {
        since: Some(Utc::now() - Duration::minutes(25)),
        until: Some(Utc::now() - Duration::minutes(15)),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(ids(s.recordings(&window).await.unwrap()), vec![b.id]);
    let page = RecordingFilter {
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    assert_eq!(ids(s.recordings(&page).await.unwrap()), vec![b.id]);
    // counts ignore the page, follow the filter
    for (f, n) in [
        (&all, 3),
        (&only_a, 2),
        (&none, 0),
        (&window, 1),
        (&page, 3),
    ] {
        assert_eq!(s.count_recordings(f).await.unwrap(), n, "{f:?}");
    }
    let mut open = ids(s.open_recordings().await.unwrap());
    open.sort();
    assert_eq!(open, vec![a.id, b.id, c.id]);
    assert!(
        s.oldest_recordings(10, None).await.unwrap().is_empty(),
        "running ones are never offered"
    );
    assert_eq!(
        s.delete_recording(a.id).await.unwrap_err().kind,
        Kind::Conflict
    );
    let end = Utc::now();
    let done = s
        .finish_recording(
            a.id,
            RecordingEnd {
                end_time: end,
                duration_sec: 6.04,
                file_size: 123_456,
                status: RecordingStatus::Completed,
                note: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.duration_sec, done.file_size),
        (RecordingStatus::Completed, 6.04, 123_456)
    );
    assert_eq!(
        done.end_time.unwrap().timestamp_micros(),
        end.timestamp_micros()
    );
    assert_eq!(s.recording(a.id).await.unwrap(), Some(done.clone()));
    s.finish_recording(
        b.id,
        RecordingEnd {
            end_time: end,
            duration_sec: 1.0,
            file_size: 1,
            status: RecordingStatus::Stopped,
            note: Some("disk full".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(s.open_recordings().await.unwrap()), vec![c.id]);
    assert_eq!(
        ids(s.oldest_recordings(10, None).await.unwrap()),
        vec![a.id, b.id],
        "oldest first"
    );
    assert_eq!(ids(s.oldest_recordings(1, None).await.unwrap()), vec![a.id]);
    assert_eq!(
        ids(s.oldest_recordings(10, Some("box-2")).await.unwrap()),
        vec![b.id],
        "one node's files only"
    );
    assert_eq!(s.recording(b.id).await.unwrap().unwrap().node, "box-2");
    // a camera's next recording may start once its open one is closed
    let a2 = s
        .create_recording(new_recording("cam-a", 5, true))
        .await
        .unwrap();
    assert_eq!(a2.node, "box-1");
    assert_eq!(
        s.recording(b.id).await.unwrap().unwrap().note.as_deref(),
        Some("disk full")
    );
    s.delete_recording(a.id).await.unwrap();
    assert_eq!(
        s.delete_recording(a.id).await.unwrap_err().kind,
        Kind::NotFound
    );
    assert_eq!(
        s.finish_recording(
            a.id,
            RecordingEnd {
                end_time: end,
                duration_sec: 0.0,
                file_size: 0,
                status: RecordingStatus::Completed,
                note: None
            }
        )
        .await
        .unwrap_err()
        .kind,
        Kind::NotFound
    );
    assert_eq!(
        ids(s.recordings(&all).await.unwrap()),
        vec![a2.id, c.id, b.id]
    );
}

fn beat(name: &str, instance: &str) -> NodeBeat {
    NodeBeat {
        name: name.into(),
        url: format!("http://{name}:5000"),
        instance: instance.into(),
        started_at: Utc::now(),
        live: 3,
        recording: 2,
        version: "test".into(),
        stale_secs: 30.0,
    }
}

async fn nodes_and_claims(s: DynStore) {
    assert!(s.nodes().await.unwrap().is_empty());
    s.heartbeat(&beat("box-b", "i1")).await.unwrap();
    s.heartbeat(&beat("box-a", "i2")).await.unwrap();
    s.heartbeat(&beat("box-a", "i2")).await.unwrap();
    let nodes = s.nodes().await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["box-a", "box-b"], "by name");
    let a = &nodes[0];
    assert_eq!(
        (a.url.as_str(), a.live, a.recording),
        ("http://box-a:5000", 3, 2)
    );
    assert!(
        (0.0..5.0).contains(&a.age_secs),
        "fresh heartbeat: {}",
        a.age_secs
    );
    assert_eq!(
        s.heartbeat(&beat("box-a", "another-process"))
            .await
            .unwrap_err()
            .kind,
        Kind::Conflict,
        "a second live process with the same name is refused"
    );
    // a clean stop frees the name at once (and shows the node down)
    s.leave("box-a", "not-the-holder").await.unwrap();
    assert!(
        s.nodes().await.unwrap()[0].age_secs < 5.0,
        "only the holder leaves"
    );
    s.leave("box-a", "i2").await.unwrap();
    let a = s.nodes().await.unwrap().remove(0);
    assert!(
        a.age_secs > 3600.0,
        "a node that left is down: {}",
        a.age_secs
    );
    s.heartbeat(&beat("box-a", "another-process"))
        .await
        .unwrap();
    // rows from before nodes existed go to the first box that claims them
    let mut cam = camera("10.0.0.9", 1);
    cam.node = String::new();
    s.create_camera(cam).await.unwrap();
    s.create_camera(camera("10.0.0.8", 1)).await.unwrap();
    let mut r = new_recording("cam-z", 1, false);
    r.node = String::new();
    let r = s.create_recording(r).await.unwrap();
    assert_eq!(s.claim_unowned("box-a").await.unwrap(), 2);
    assert_eq!(s.claim_unowned("box-b").await.unwrap(), 0);
    assert_eq!(s.camera("10.0.0.9").await.unwrap().unwrap().node, "box-a");
    assert_eq!(s.camera("10.0.0.8").await.unwrap().unwrap().node, "box-1");
    assert_eq!(s.recording(r.id).await.unwrap().unwrap().node, "box-a");
}
