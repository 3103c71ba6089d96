//! `/api/cameras` over real HTTP: adding cameras and DVR channels, URLs from brand templates,
//! credentials sealed and never returned, updates, uniqueness and deletion.

mod support;

use serde_json::{json, Value};
use support::{assert_error, Server};

#[tokio::test]
async fn add_with_templates_and_channels_never_returning_passwords() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.30", "brand": "hikvision", "username": "admin", "password": "Cam#Pass1", "name": "Gate"}))
        .await;
    assert_eq!(v["id"], "127.0.0.30");
    assert_eq!(v["channel"], 1);
    assert_eq!(v["port"], 554);
    assert_eq!(v["name"], "Gate");
    assert_eq!(v["transport"], "tcp");
    assert_eq!(v["is_active"], true);
    assert_eq!(v["is_recording"], false);
    assert_eq!(
        v["rtsp_url"],
        "rtsp://admin:***@127.0.0.30:554/Streaming/Channels/101"
    );

    let v = s
        .add_camera(
            &admin,
            json!({"ip": "127.0.0.31", "channel": 4, "brand": "dahua", "port": 8554}),
        )
        .await;
    assert_eq!(v["id"], "127.0.0.31-ch4");
    assert_eq!(
        v["rtsp_url"],
        "rtsp://127.0.0.31:8554/cam/realmonitor?channel=4&subtype=0"
    );
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.32", "rtsp_url": "rtsp://127.0.0.32:8554/live", "username": "u", "password": "Secret9", "transport": "udp"}))
        .await;
    assert_eq!(v["rtsp_url"], "rtsp://u:***@127.0.0.32:8554/live");
    assert_eq!(v["transport"], "udp");
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.33", "brand": "xmeye", "username": "admin", "password": "XmPw77"}))
        .await;
    assert_eq!(
        v["rtsp_url"],
        "rtsp://127.0.0.33:554/user=admin&password=***&channel=1&stream=0.sdp?"
    );

    let (st, list) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(st, 200);
    let text = list.to_string();
    for pw in ["Cam#Pass1", "Cam%23Pass1", "Secret9", "XmPw77"] {
        assert!(!text.contains(pw), "password {pw} in {text}");
    }
    assert_eq!(list["cameras"].as_array().unwrap().len(), 4);
    assert!(s.store_contains("Gate"), "the check can see camera rows");
    for pw in ["Cam#Pass1", "Cam%23Pass1", "Secret9", "XmPw77"] {
        assert!(!s.store_contains(pw), "{pw} stored in clear");
    }
}

#[tokio::test]
async fn bad_fields_and_duplicates() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.40"})).await;
    let (st, v) = s
        .call(
            "POST",
            "/api/cameras",
            Some(&admin),
            json!({"ip": "127.0.0.40", "channel": 1}),
        )
        .await;
    assert_error(st, &v, 409, "conflict");
    for (body, why) in [
        (json!({"ip": "not an ip"}), "ip"),
        (json!({"ip": "127.0.0.41", "channel": 0}), "channel 0"),
        (json!({"ip": "127.0.0.41", "channel": 999}), "channel 999"),
        (json!({"ip": "127.0.0.41", "brand": "acme"}), "brand"),
        (json!({"ip": "127.0.0.41", "port": 0}), "port 0"),
        (json!({"ip": "127.0.0.41", "port": 70000}), "port 70000"),
        (
            json!({"ip": "127.0.0.41", "transport": "sctp"}),
            "transport",
        ),
        (
            json!({"ip": "127.0.0.41", "rtsp_url": "http://127.0.0.41/"}),
            "scheme",
        ),
        (json!({"ip": "127.0.0.41", "name": "n".repeat(101)}), "name"),
        (json!({"ip": "list"}), "reserved id"),
        (json!({"ip": 5}), "type"),
    ] {
        let (st, v) = s.call("POST", "/api/cameras", Some(&admin), body).await;
        assert_eq!(st, 400, "{why}: {v}");
        assert_error(st, &v, 400, "bad_request");
    }
}

#[tokio::test]
async fn update_keeps_or_replaces_credentials_and_delete_removes() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.50", "brand": "hikvision", "username": "admin", "password": "old-pass"})).await;
    let (st, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"name": "Yard", "is_active": false}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["is_active"].as_bool()),
        (Some("Yard"), Some(false))
    );
    assert_eq!(
        v["rtsp_url"],
        "rtsp://admin:***@127.0.0.50:554/Streaming/Channels/101"
    );
    // brand change rebuilds the path and keeps the credentials
    let (_, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"brand": "dahua", "port": 10554}),
        )
        .await;
    assert_eq!(
        v["rtsp_url"],
        "rtsp://admin:***@127.0.0.50:10554/cam/realmonitor?channel=1&subtype=0"
    );
    // a password alone keeps the user name
    let (_, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"password": "new-pass"}),
        )
        .await;
    assert_eq!(
        v["rtsp_url"],
        "rtsp://admin:***@127.0.0.50:10554/cam/realmonitor?channel=1&subtype=0"
    );
    let (_, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"rtsp_url": "rtsp://127.0.0.50/main", "username": "op", "password": "p2"}),
        )
        .await;
    assert_eq!(v["rtsp_url"], "rtsp://op:***@127.0.0.50/main");
    let (st, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"ip": "127.0.0.51"}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            json!({"channel": 2}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = s
        .call("GET", "/api/cameras/127.0.0.50", Some(&admin), Value::Null)
        .await;
    assert_eq!((st.as_u16(), v["name"].as_str()), (200, Some("Yard")));

    let (st, v) = s
        .call(
            "DELETE",
            "/api/cameras/127.0.0.50",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        (st.as_u16(), v),
        (200, json!({"message": "Camera deleted"}))
    );
    let (st, v) = s
        .call("GET", "/api/cameras/127.0.0.50", Some(&admin), Value::Null)
        .await;
    assert_error(st, &v, 404, "not_found");
    s.add_camera(&admin, json!({"ip": "127.0.0.50"})).await;
}
