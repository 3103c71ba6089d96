//! The store conformance suite on every back end (redb always; PostgreSQL with the `postgres`
//! feature, on a throwaway cluster), plus what is particular to each: reopening the same redb
//! file, refusing a second process or a newer schema, and moving data between back ends.

mod support;
// test code, kept out of the product: only this binary runs it
#[path = "support/conformance.rs"]
mod conformance;

use std::sync::Arc;

use conformance::{camera, CHECKS};
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
    assert_eq!(s.session(uid, "gone", 0).await.unwrap(), Session::Revoked);
    assert_eq!(
        s.session(uid, "fresh", 0).await.unwrap(),
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

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::conformance::populate;
    use support::pg::cluster;
    use vigia::store::postgres::PgStore;
    use vigia::store::{DbConfig, DbLocation};

    fn db(url: &str) -> DbConfig {
        DbConfig {
            location: DbLocation::Url(url.into()),
            ca_cert: None,
            require_tls: None,
            pool_size: 8,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_passes_the_conformance_suite() {
        for (name, check) in CHECKS {
            let url = cluster().new_database();
            let store: DynStore = Arc::new(PgStore::connect(&db(&url)).await.unwrap());
            eprintln!("postgres: {name}");
            check(store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_run_once_even_when_boxes_start_together() {
        let url = cluster().new_database();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                PgStore::connect(&db(&url)).await.map(|_| ())
            }));
        }
        for t in tasks {
            t.await.unwrap().expect("every box starts");
        }
        let name = url.rsplit('/').next().unwrap();
        assert_eq!(
            cluster().psql(
                name,
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM vigia_schema"
            ),
            "1,2,3,4,5,6"
        );
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_with_a_clear_error() {
        let url = cluster().new_database();
        PgStore::connect(&db(&url)).await.unwrap();
        let name = url.rsplit('/').next().unwrap();
        cluster().psql(name, "INSERT INTO vigia_schema (version) VALUES (99)");
        let e = PgStore::connect(&db(&url)).await.err().expect("refused");
        assert!(
            e.message.contains("version 99") && e.message.contains("newer"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error_without_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://vigia:hunter2secret@127.0.0.1:{port}/vigia");
        let e = PgStore::connect(&db(&url)).await.err().expect("refused");
        assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(!e.message.contains("hunter2secret"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_moves_between_back_ends_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let redb: DynStore = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let dump = populate(&redb).await;
        let pg: DynStore = Arc::new(
            PgStore::connect(&db(&cluster().new_database()))
                .await
                .unwrap(),
        );
        let rep = pg.import(&dump).await.unwrap();
        assert_eq!(rep.users, (3, 0));
        assert_eq!(
            pg.export().await.unwrap(),
            dump,
            "redb → postgres keeps every row as it was"
        );
        assert_eq!(pg.import(&dump).await.unwrap().users, (0, 3), "idempotent");
        // and back into a fresh redb
        let dir2 = tempfile::tempdir().unwrap();
        let redb2: DynStore = Arc::new(RedbStore::open(&dir2.path().join("t.redb")).unwrap());
        redb2.import(&pg.export().await.unwrap()).await.unwrap();
        assert_eq!(redb2.export().await.unwrap(), dump);
    }
}
