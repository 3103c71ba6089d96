//! Postgres mode with real processes: several vigia boxes on one database see each other's
//! changes at once and honour each other's logouts; a box with another SECRET_KEY refuses to
//! start; the old backend's DB_* settings work; TLS to the server is verified; and an
//! appliance's redb data moves into PostgreSQL with `vigia store migrate`.
#![cfg(feature = "postgres")]

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::pg::{cluster, PgCluster};
use support::{assert_error, Server, ADMIN_PW, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boxes_on_one_database_share_everything_at_once() {
    let url = cluster().new_database();
    let a = Server::start_with(&[("DATABASE_URL", &url)]);
    let b = Server::start_with(&[("DATABASE_URL", &url)]);
    let admin_a = a.bootstrap_admin().await;

    // a user created on A logs in on B; A's token works on B
    let (uid, _) = a.add_user(&admin_a, "ana", "user").await;
    let ana_b = b.login("ana", "ana-password").await;
    let (st, _) = b
        .call("GET", "/api/users", Some(&admin_a), Value::Null)
        .await;
    assert_eq!(st, 200, "a token issued by A is accepted by B");

    // a camera added on A and assigned on B is visible to ana on A
    a.add_camera(
        &admin_a,
        json!({"ip": "127.0.0.100", "username": "u", "password": "cam-pw"}),
    )
    .await;
    let admin_b = b.login("admin", ADMIN_PW).await;
    let (st, v) = b
        .call(
            "POST",
            &format!("/api/users/{uid}/cameras"),
            Some(&admin_b),
            json!({"camera_ips": ["127.0.0.100"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let ana_a = a.login("ana", "ana-password").await;
    let (_, v) = a
        .call("GET", "/api/cameras/list", Some(&ana_a), Value::Null)
        .await;
    assert_eq!(v["cameras"][0]["id"], "127.0.0.100");
    assert_eq!(
        v["cameras"][0]["rtsp_url"],
        "rtsp://u:***@127.0.0.100:554/stream1"
    );

    // a logout on A is honoured by B at once
    let (st, _) = a
        .call("POST", "/api/auth/logout", Some(&ana_b), Value::Null)
        .await;
    assert_eq!(st, 200);
    let (st, v) = b
        .call("GET", "/api/cameras/list", Some(&ana_b), Value::Null)
        .await;
    assert_error(st, &v, 401, "unauthorized");

    // a role change on B applies to A's requests at once
    let (st, _) = b
        .call(
            "PUT",
            &format!("/api/users/{uid}"),
            Some(&admin_b),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = a
        .call("GET", "/api/cameras/list", Some(&ana_a), Value::Null)
        .await;
    assert_eq!(
        v["cameras"].as_array().unwrap().len(),
        1,
        "viewers still see assigned cameras"
    );
    let (st, _) = a
        .call(
            "DELETE",
            &format!("/api/users/{uid}"),
            Some(&admin_a),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = b
        .call("GET", "/api/cameras/list", Some(&ana_a), Value::Null)
        .await;
    assert_eq!(st, 401, "deleted on A, refused on B");

    // a third box with another key refuses to start, naming SECRET_KEY
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .current_dir(dir.path())
        .env("DATA_DIR", dir.path())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", &url)
        .env("SECRET_KEY", "a-different-secret-key-0123456789abcdef")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("SECRET_KEY differs"), "{err}");
}

#[tokio::test]
async fn postgres_mode_needs_a_shared_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .current_dir(dir.path())
        .env("DATA_DIR", dir.path())
        .env("DATABASE_URL", cluster().url("postgres"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SECRET_KEY"));
}

#[tokio::test]
async fn the_old_backends_db_settings_select_postgres() {
    let url = cluster().new_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let port = cluster().port.to_string();
    let s = Server::start_with(&[
        ("DB_HOST", "127.0.0.1"),
        ("DB_PORT", &port),
        ("DB_USER", "postgres"),
        ("DB_NAME", &name),
    ]);
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.101"})).await;
    assert!(s.logs().contains("PostgreSQL store ready"), "{}", s.logs());
    assert_eq!(
        cluster().psql(&name, "SELECT id FROM cameras"),
        "127.0.0.101"
    );
    assert!(
        !s.data_dir.join("vigia.redb").exists(),
        "no embedded store in Postgres mode"
    );
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_given_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vigia test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&srv_key, &ca, &ca_key)
        .unwrap();
    let pg = PgCluster::start_custom(Some((&srv.pem(), &srv_key.serialize_pem())));
    pg.psql("postgres", "CREATE DATABASE tlsdb");
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let url = format!("{}?sslmode=require", pg.url("tlsdb"));

    let s = Server::start_with(&[
        ("DATABASE_URL", &url),
        ("DB_CA_CERT", ca_path.to_str().unwrap()),
    ]);
    s.bootstrap_admin().await;

    // without TLS the server (hostssl only) refuses; with TLS but no trust in its CA, we refuse
    for url in [format!("{}?sslmode=disable", pg.url("tlsdb")), url.clone()] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigia"));
        cmd.arg("serve")
            .env_clear()
            .current_dir(dir.path())
            .env("DATA_DIR", dir.path())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("SECRET_KEY", SECRET)
            .env("DATABASE_URL", &url);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert!(
            err.contains("cannot connect to PostgreSQL at postgres@127.0.0.1"),
            "{err}"
        );
        let why = if url.ends_with("disable") {
            "no encryption"
        } else {
            "invalid peer certificate"
        };
        assert!(err.contains(why), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appliance_moves_up_with_store_migrate() {
    // an appliance on redb with a generated key
    let mut appliance = Server::start_embedded_with(&[("SECRET_KEY", "")]);
    let admin = appliance.bootstrap_admin().await;
    let (uid, _) = appliance.add_user(&admin, "ana", "viewer").await;
    appliance
        .add_camera(&admin, json!({"ip": "127.0.0.102", "channel": 3, "brand": "dahua", "username": "cam", "password": "sealed-pw"}))
        .await;
    appliance
        .call(
            "POST",
            &format!("/api/users/{uid}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.0.102-ch3"]}),
        )
        .await;
    let gone = appliance.login("ana", "ana-password").await;
    appliance
        .call("POST", "/api/auth/logout", Some(&gone), Value::Null)
        .await;
    let (_, cams_before) = appliance
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(appliance.stop().code(), Some(0));

    let url = cluster().new_database();
    let migrate = || {
        Command::new(env!("CARGO_BIN_EXE_vigia"))
            .args(["store", "migrate", "--to", &url])
            .env_clear()
            .env("DATA_DIR", &appliance.data_dir)
            .output()
            .unwrap()
    };
    let out = migrate();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("users             2 copied,      0 already there"),
        "{text}"
    );
    assert!(text.contains("cameras           1 copied"), "{text}");
    assert!(text.contains("revocations       1 copied"), "{text}");
    let again = migrate();
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text.contains("users             0 copied,      2 already there"),
        "idempotent: {text}"
    );

    // a box on Postgres with the appliance's key serves the same data
    let key = std::fs::read_to_string(appliance.data_dir.join("secret_key")).unwrap();
    let box1 = Server::start_with(&[("DATABASE_URL", &url), ("SECRET_KEY", key.trim())]);
    let (st, _) = box1
        .call("GET", "/api/users", Some(&admin), Value::Null)
        .await;
    assert_eq!(st, 200, "tokens of the appliance still work");
    let (st, _) = box1.call("GET", "/stats", Some(&gone), Value::Null).await;
    assert_eq!(st, 401, "revocations came along");
    let (_, cams_after) = box1
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(cams_before, cams_after);
    let ana = box1.login("ana", "ana-password").await;
    let (st, _) = box1
        .call(
            "GET",
            "/api/cameras/127.0.0.102-ch3",
            Some(&ana),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "assignments came along");
    let (_, u) = box1
        .call(
            "POST",
            "/api/auth/register",
            Some(&admin),
            json!({"username": "newer", "password": "newer-password"}),
        )
        .await;
    assert!(
        u["user"]["id"].as_i64().unwrap() > uid,
        "ids continue after the imported ones"
    );

    // migrating with the wrong key is refused and copies nothing
    let other = cluster().new_database();
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .args(["store", "migrate", "--to", &other])
        .env_clear()
        .env("DATA_DIR", &appliance.data_dir)
        .env("SECRET_KEY", "not-the-appliance-key-0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = other.rsplit('/').next().unwrap();
    assert_eq!(
        cluster().psql(
            name,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"
        ),
        "0"
    );
}
