//! DNS rebinding defence: a web page on the LAN can point a name it controls at the box's
//! address and then talk to the API from the browser as same-origin (registering the first
//! admin of a fresh box, say). The browser still sends that name as `Host`, so requests are
//! answered only when `Host` is an IP literal, `localhost`, the box's own host name (or
//! `<name>.local`), its `NODE_URL` host, or a name in `ALLOWED_HOSTS`; others get 421.

use hyper::header::HOST;
use hyper::http::request::Parts;

use crate::config::Config;
use crate::error::{Error, Kind, Result};

/// The names this box answers to besides IP literals and `localhost`, lowercased.
pub fn own_names(config: &Config, host_name: &str) -> Vec<String> {
    let mut names = vec![host_name.to_string(), format!("{host_name}.local")];
    names.push(config.node_name.clone());
    names.push(format!("{}.local", config.node_name));
    if let Some(url) = &config.node_url {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        names.push(host_part(rest).to_string());
    }
    names.extend(config.allowed_hosts.iter().cloned());
    names.iter_mut().for_each(|n| n.make_ascii_lowercase());
    names.sort();
    names.dedup();
    names
}

/// `example.lan` of `example.lan:5000`, `::1` of `[::1]:5000`.
fn host_part(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

/// `Ok` when the request's host (`Host`, or the HTTP/2 authority) may be answered. A request
/// without one (HTTP/1.0) passes: browsers always send it.
pub fn check(parts: &Parts, names: &[String], any: bool) -> Result<()> {
    if any {
        return Ok(());
    }
    let raw = match parts.headers.get(HOST) {
        Some(h) => h.to_str().unwrap_or("\u{0}"),
        None => match parts.uri.authority() {
            Some(a) => a.as_str(),
            None => return Ok(()),
        },
    };
    let host = host_part(raw).trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || names.contains(&host)
    {
        return Ok(());
    }
    Err(Error::new(
        Kind::MisdirectedRequest,
        format!(
            "this box does not answer to the name '{}'; use its address, or add the name to ALLOWED_HOSTS",
            crate::camera::truncate(&host, 64)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>) -> Parts {
        let mut b = hyper::Request::builder().uri("/api/auth/register");
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_boxs_own_names_and_addresses_pass() {
        let names = vec![
            "nvr-shop".to_string(),
            "nvr-shop.local".to_string(),
            "cams.example.lan".to_string(),
        ];
        for ok in [
            None,
            Some("192.168.1.20:5000"),
            Some("127.0.0.1"),
            Some("[::1]:5000"),
            Some("localhost:5000"),
            Some("LOCALHOST"),
            Some("nvr-shop:5000"),
            Some("NVR-Shop.local."),
            Some("cams.example.lan"),
        ] {
            let r = check(&parts(ok), &names, false);
            assert!(r.is_ok(), "{ok:?}: {r:?}");
        }
        for bad in [
            "attacker.example",
            "nvr-shop.attacker.example",
            "192.168.1.20.nip.io",
            "x",
        ] {
            let e = check(&parts(Some(bad)), &names, false).unwrap_err();
            assert_eq!(e.kind, Kind::MisdirectedRequest, "{bad}");
            assert!(e.message.contains("ALLOWED_HOSTS"));
            assert!(
                check(&parts(Some(bad)), &names, true).is_ok(),
                "ALLOWED_HOSTS=*"
            );
        }
    }
}
