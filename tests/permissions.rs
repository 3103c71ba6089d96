//! The permission matrix: 3 roles × every camera-touching endpoint × a camera assigned to the
//! caller and one that is not. The expected table is written out here, independently of
//! `auth::scope`, so a change to the rules must change this file too.

mod support;

use serde_json::{json, Value};
use support::Server;

const ASSIGNED: &str = "127.0.0.60";
const OTHER: &str = "127.0.0.61";

/// What a role may do to a camera, per endpoint: (admin, user, viewer) for (assigned, other).
struct Row {
    name: &'static str,
    expect: [(u16, u16); 3],
}

const MATRIX: &[Row] = &[
    Row {
        name: "GET /api/cameras/{c}",
        expect: [(200, 200), (200, 403), (200, 403)],
    },
    Row {
        name: "PUT /api/cameras/{c}",
        expect: [(200, 200), (403, 403), (403, 403)],
    },
    Row {
        name: "DELETE /api/cameras/{c}",
        expect: [(200, 200), (403, 403), (403, 403)],
    },
    Row {
        name: "POST /api/cameras",
        expect: [(201, 201), (403, 403), (403, 403)],
    },
    Row {
        name: "POST /api/users/{id}/cameras",
        expect: [(200, 200), (403, 403), (403, 403)],
    },
    Row {
        name: "DELETE /api/users/{id}/cameras/{c}",
        expect: [(200, 200), (403, 403), (403, 403)],
    },
    Row {
        name: "GET /api/cameras/stream/{c}",
        expect: [(200, 200), (200, 403), (200, 403)],
    },
    // the reset's recording left a (dead) session running: no init yet, but something to stop
    Row {
        name: "GET /api/cameras/streams/{c}/init-1.mp4",
        expect: [(404, 404), (404, 403), (404, 403)],
    },
    Row {
        name: "DELETE /api/cameras/stream/{c}",
        expect: [(200, 200), (200, 403), (200, 403)],
    },
    Row {
        name: "POST /api/nvr/record/{c}",
        expect: [(201, 201), (201, 403), (403, 403)],
    },
    // not recording at that point
    Row {
        name: "DELETE /api/nvr/record/{c}",
        expect: [(404, 404), (404, 403), (403, 403)],
    },
    Row {
        name: "GET /api/nvr/status/{c}",
        expect: [(200, 200), (200, 403), (200, 403)],
    },
    Row {
        name: "GET /api/nvr/recordings?camera_ip={c}",
        expect: [(200, 200), (200, 403), (200, 403)],
    },
    // the camera never answered: the row has no file
    Row {
        name: "GET /api/nvr/recordings/{id}/download",
        expect: [(404, 404), (404, 403), (404, 403)],
    },
    Row {
        name: "DELETE /api/nvr/recordings/{id}",
        expect: [(200, 200), (200, 403), (403, 403)],
    },
    // listed (200 = present in the answer, 404 = absent)
    Row {
        name: "GET /api/cameras/list",
        expect: [(200, 200), (200, 404), (200, 404)],
    },
    Row {
        name: "GET /stats",
        expect: [(200, 200), (200, 404), (200, 404)],
    },
];

async fn reset(s: &Server, admin: &str, helper_id: i64, ids: &[i64]) {
    for ip in [ASSIGNED, OTHER] {
        // no recording may outlive a probe (the stop answers once it is final)
        let _ = s
            .call(
                "DELETE",
                &format!("/api/nvr/record/{ip}"),
                Some(admin),
                Value::Null,
            )
            .await;
        let _ = s
            .call(
                "DELETE",
                &format!("/api/cameras/{ip}"),
                Some(admin),
                Value::Null,
            )
            .await;
        s.add_camera(admin, json!({"ip": ip})).await;
    }
    for id in ids {
        let (st, v) = s
            .call(
                "POST",
                &format!("/api/users/{id}/cameras"),
                Some(admin),
                json!({"camera_ips": [ASSIGNED]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, _) = s
        .call(
            "POST",
            &format!("/api/users/{helper_id}/cameras"),
            Some(admin),
            json!({"camera_ips": [ASSIGNED, OTHER]}),
        )
        .await;
    assert_eq!(st, 200);
    // one finished recording per camera, for the download and delete rows
    for ip in [ASSIGNED, OTHER] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/api/nvr/record/{ip}"),
                Some(admin),
                Value::Null,
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let (st, _) = s
            .call(
                "DELETE",
                &format!("/api/nvr/record/{ip}"),
                Some(admin),
                Value::Null,
            )
            .await;
        assert_eq!(st, 200);
    }
}

/// The newest recording of `cam`, as the admin sees it.
async fn recording_of(s: &Server, cam: &str) -> i64 {
    let admin = s.login("admin", support::ADMIN_PW).await;
    let (_, v) = s
        .call(
            "GET",
            &format!("/api/nvr/recordings?camera_ip={cam}&limit=1"),
            Some(&admin),
            Value::Null,
        )
        .await;
    v["recordings"][0]["id"].as_i64().unwrap()
}

async fn probe(s: &Server, row: &str, token: &str, cam: &str, helper_id: i64) -> u16 {
    match row {
        "GET /api/cameras/{c}" => s
            .call(
                "GET",
                &format!("/api/cameras/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "PUT /api/cameras/{c}" => s
            .call(
                "PUT",
                &format!("/api/cameras/{cam}"),
                Some(token),
                json!({"name": "renamed"}),
            )
            .await
            .0
            .as_u16(),
        "DELETE /api/cameras/{c}" => s
            .call(
                "DELETE",
                &format!("/api/cameras/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "POST /api/cameras" => {
            let ip = if cam == ASSIGNED {
                "127.0.0.70"
            } else {
                "127.0.0.71"
            };
            s.call("POST", "/api/cameras", Some(token), json!({"ip": ip}))
                .await
                .0
                .as_u16()
        }
        "POST /api/users/{id}/cameras" => s
            .call(
                "POST",
                &format!("/api/users/{helper_id}/cameras"),
                Some(token),
                json!({"camera_ips": [cam]}),
            )
            .await
            .0
            .as_u16(),
        "DELETE /api/users/{id}/cameras/{c}" => s
            .call(
                "DELETE",
                &format!("/api/users/{helper_id}/cameras/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "GET /api/cameras/list" => {
            let (st, v) = s
                .call("GET", "/api/cameras/list", Some(token), Value::Null)
                .await;
            assert_eq!(st, 200);
            let found = v["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == cam);
            if found {
                200
            } else {
                404
            }
        }
        "GET /stats" => {
            let (st, v) = s.call("GET", "/stats", Some(token), Value::Null).await;
            assert_eq!(st, 200);
            let found = v["cameras"]["detail"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == cam);
            if found {
                200
            } else {
                404
            }
        }
        "GET /api/cameras/stream/{c}" => s
            .call(
                "GET",
                &format!("/api/cameras/stream/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "GET /api/cameras/streams/{c}/init-1.mp4" => s
            .call(
                "GET",
                &format!("/api/cameras/streams/{cam}/init-1.mp4"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "DELETE /api/cameras/stream/{c}" => s
            .call(
                "DELETE",
                &format!("/api/cameras/stream/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "POST /api/nvr/record/{c}" => s
            .call(
                "POST",
                &format!("/api/nvr/record/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "DELETE /api/nvr/record/{c}" => s
            .call(
                "DELETE",
                &format!("/api/nvr/record/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "GET /api/nvr/status/{c}" => s
            .call(
                "GET",
                &format!("/api/nvr/status/{cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "GET /api/nvr/recordings?camera_ip={c}" => s
            .call(
                "GET",
                &format!("/api/nvr/recordings?camera_ip={cam}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16(),
        "GET /api/nvr/recordings/{id}/download" => {
            let id = recording_of(s, cam).await;
            s.call_raw(
                "GET",
                &format!("/api/nvr/recordings/{id}/download"),
                Some(token),
                Vec::new(),
            )
            .await
            .0
            .as_u16()
        }
        "DELETE /api/nvr/recordings/{id}" => {
            let id = recording_of(s, cam).await;
            s.call(
                "DELETE",
                &format!("/api/nvr/recordings/{id}"),
                Some(token),
                Value::Null,
            )
            .await
            .0
            .as_u16()
        }
        other => panic!("no probe for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_roles_times_every_camera_endpoint_times_assignment() {
    matrix(Server::start_with(&[("MIN_FREE_DISK_MB", "1")])).await;
}

async fn matrix(s: Server) {
    let admin = s.bootstrap_admin().await;
    let (user_id, user) = s.add_user(&admin, "user1", "user").await;
    let (viewer_id, viewer) = s.add_user(&admin, "viewer1", "viewer").await;
    let (helper_id, _) = s.add_user(&admin, "helper", "viewer").await;
    let tokens = [("admin", admin.clone()), ("user", user), ("viewer", viewer)];
    reset(&s, &admin, helper_id, &[user_id, viewer_id]).await;
    let mut failures = Vec::new();
    for row in MATRIX {
        for (i, (role, token)) in tokens.iter().enumerate() {
            for (cam, want) in [(ASSIGNED, row.expect[i].0), (OTHER, row.expect[i].1)] {
                let got = probe(&s, row.name, token, cam, helper_id).await;
                let which = if cam == ASSIGNED {
                    "assigned"
                } else {
                    "unassigned"
                };
                if got != want {
                    failures.push(format!(
                        "{} as {role} on {which} camera: got {got}, want {want}",
                        row.name
                    ));
                }
                reset(&s, &admin, helper_id, &[user_id, viewer_id]).await;
            }
        }
        let _ = s
            .call(
                "DELETE",
                "/api/cameras/127.0.0.70",
                Some(&admin),
                Value::Null,
            )
            .await;
        let _ = s
            .call(
                "DELETE",
                "/api/cameras/127.0.0.71",
                Some(&admin),
                Value::Null,
            )
            .await;
    }
    assert!(
        failures.is_empty(),
        "permission matrix differs:\n{}",
        failures.join("\n")
    );
    // a non-admin cannot tell an unknown camera from one not assigned to them
    let (st, _) = s
        .call(
            "GET",
            "/api/cameras/10.99.99.99",
            Some(&tokens[1].1),
            Value::Null,
        )
        .await;
    assert_eq!(st, 403);
    // nor a recording of a camera they may not see from one that does not exist, and the
    // refusal names no camera
    let id = recording_of(&s, OTHER).await;
    let mut texts = Vec::new();
    for rid in [id, 99_999] {
        for method in ["GET", "DELETE"] {
            let path = match method {
                "GET" => format!("/api/nvr/recordings/{rid}/download"),
                _ => format!("/api/nvr/recordings/{rid}"),
            };
            let (st, v) = s.call(method, &path, Some(&tokens[1].1), Value::Null).await;
            assert_eq!(st, 403, "{method} {path}: {v}");
            let text = v["error"].as_str().unwrap().to_string();
            assert!(!text.contains(OTHER), "{text}");
            texts.push(text.replace(&rid.to_string(), "N"));
        }
    }
    texts.dedup();
    assert_eq!(texts.len(), 1, "{texts:?}");
}
