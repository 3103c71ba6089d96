//! The store conformance suite on the embedded redb back end, plus what only redb has:
//! reopening the same file, and refusing a file from a newer schema.

use std::sync::Arc;

use vigia::store::conformance::{camera, CHECKS};
use vigia::store::redb::RedbStore;
use vigia::store::{CreateMode, DynStore, NewUser, Role, Session, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_passes_the_conformance_suite() {
    for (name, check) in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        eprintln!("redb: {name}");
        check(store).await;
    }
}

#[tokio::test]
async fn redb_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let (uid, user) = {
        let s = RedbStore::open(&path).unwrap();
        let u = s
            .create_user(
                NewUser {
                    username: "keep".into(),
                    password_hash: "h".into(),
                    role: Role::Admin,
                },
                CreateMode::FirstUser,
            )
            .await
            .unwrap();
        s.create_camera(camera("10.1.1.1", 2)).await.unwrap();
        s.assign(u.id, &["10.1.1.1-ch2".into()]).await.unwrap();
        s.revoke_token("gone", chrono::Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap();
        (u.id, u)
    };
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.user(uid).await.unwrap(), Some(user.clone()));
    assert_eq!(s.assigned_cameras(uid).await.unwrap(), vec!["10.1.1.1-ch2"]);
    assert_eq!(s.session(uid, "gone").await.unwrap(), Session::Revoked);
    assert_eq!(
        s.session(uid, "fresh").await.unwrap(),
        Session::Active(user)
    );
    let next = s
        .create_user(
            NewUser {
                username: "next".into(),
                password_hash: "h".into(),
                role: Role::User,
            },
            CreateMode::Normal,
        )
        .await
        .unwrap();
    assert!(next.id > uid, "ids are not reused after reopen");
}

#[test]
fn a_second_process_on_the_same_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let _first = RedbStore::open(&path).unwrap();
    let e = RedbStore::open(&path).err().expect("second open must fail");
    assert!(e.message.contains("already open"), "{e}");
}
