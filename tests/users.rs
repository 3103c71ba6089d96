//! `/api/users` over real HTTP: listing without hashes, one user with assigned cameras, role
//! changes, the last-admin rule, deletion, and all-or-nothing camera assignment.

mod support;

use serde_json::{json, Value};
use support::{assert_error, Server};

#[tokio::test]
async fn list_show_update_delete() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let (uid, _) = s.add_user(&admin, "ana", "user").await;
    let (st, v) = s.call("GET", "/api/users", Some(&admin), Value::Null).await;
    assert_eq!(st, 200);
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    for u in users {
        let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec!["created_at", "id", "role", "username"],
            "no hash: {u}"
        );
    }
    assert!(!v.to_string().contains("argon2"));

    let (st, v) = s
        .call(
            "GET",
            &format!("/api/users/{uid}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["username"], "ana");
    assert_eq!(v["camera_ips"], json!([]));

    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/users/{uid}"),
            Some(&admin),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["user"]["role"], "viewer");
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/users/{uid}"),
            Some(&admin),
            json!({"role": "superuser"}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = s
        .call(
            "PUT",
            "/api/users/abc",
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_error(st, &v, 404, "not_found");

    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/users/{uid}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!((st.as_u16(), v), (200, json!({"message": "User deleted"})));
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/users/{uid}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 404, "not_found");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_deleted() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let (st, v) = s
        .call("PUT", "/api/users/1", Some(&admin), json!({"role": "user"}))
        .await;
    assert_error(st, &v, 409, "conflict");
    let (st, v) = s
        .call("DELETE", "/api/users/1", Some(&admin), Value::Null)
        .await;
    assert_error(st, &v, 409, "conflict");
    let (id2, admin2) = s.add_user(&admin, "admin2", "admin").await;
    let (st, _) = s
        .call("DELETE", "/api/users/1", Some(&admin2), Value::Null)
        .await;
    assert_eq!(st, 200, "with a second admin the first may go");
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/users/{id2}"),
            Some(&admin2),
            json!({"role": "viewer"}),
        )
        .await;
    assert_error(st, &v, 409, "conflict");
}

#[tokio::test]
async fn assignments_are_all_or_nothing_and_many_to_many() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.11"})).await;
    s.add_camera(&admin, json!({"ip": "127.0.0.12", "channel": 3}))
        .await;
    let (a, _) = s.add_user(&admin, "ana", "user").await;
    let (b, _) = s.add_user(&admin, "bea", "viewer").await;

    let (st, v) = s
        .call(
            "POST",
            &format!("/api/users/{a}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.0.11", "10.9.9.9", "10.9.9.8"]}),
        )
        .await;
    assert_error(st, &v, 404, "not_found");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("10.9.9.9") && msg.contains("10.9.9.8") && !msg.contains("127.0.0.11"),
        "{msg}"
    );
    let (_, v) = s
        .call("GET", &format!("/api/users/{a}"), Some(&admin), Value::Null)
        .await;
    assert_eq!(v["camera_ips"], json!([]), "nothing assigned");

    let (st, v) = s
        .call(
            "POST",
            &format!("/api/users/{a}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.0.11", "127.0.0.12-ch3"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["camera_ips"], json!(["127.0.0.11", "127.0.0.12-ch3"]));
    let (st, _) = s
        .call(
            "POST",
            &format!("/api/users/{b}/cameras"),
            Some(&admin),
            json!({"camera_ips": ["127.0.0.11"]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/users/{b}/cameras"),
            Some(&admin),
            json!({"camera_ips": []}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/users/{b}/cameras"),
            Some(&admin),
            json!({"camera_ips": "127.0.0.11"}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");

    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/users/{a}/cameras/127.0.0.11"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st.as_u16(), v),
        (200, json!({"message": "Camera unassigned"}))
    );
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/api/users/{a}/cameras/127.0.0.11"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 404, "not_found");
    let (_, v) = s
        .call("GET", &format!("/api/users/{a}"), Some(&admin), Value::Null)
        .await;
    assert_eq!(v["camera_ips"], json!(["127.0.0.12-ch3"]));
    let (_, v) = s
        .call("GET", &format!("/api/users/{b}"), Some(&admin), Value::Null)
        .await;
    assert_eq!(
        v["camera_ips"],
        json!(["127.0.0.11"]),
        "the other user keeps the camera"
    );

    // deleting the user drops their assignments, the cameras stay
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/users/{a}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(v["cameras"].as_array().unwrap().len(), 2);
}
