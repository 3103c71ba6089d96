//! The sd_notify protocol (sd_notify(3)): datagrams such as `READY=1`, `STATUS=…`,
//! `WATCHDOG=1` and `STOPPING=1` sent to the socket named by `NOTIFY_SOCKET`. The name is a
//! file system path, or, starting with `@`, a Linux abstract socket (which the `sd-notify`
//! crate does not handle, hence these few lines over std's `UnixDatagram`). Without
//! `NOTIFY_SOCKET` (not started by systemd) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::debug;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

/// The address `NOTIFY_SOCKET` names: a path, or `@name` for an abstract socket.
pub fn address(name: &str) -> std::io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        }
        None => SocketAddr::from_pathname(name),
    }
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; disabled when unset or unusable.
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|name| {
                let addr = address(&name)
                    .map_err(
                        |e| tracing::warn!(socket = %name, error = %e, "NOTIFY_SOCKET unusable"),
                    )
                    .ok()?;
                let sock = UnixDatagram::unbound().ok()?;
                Some((sock, addr))
            });
        Notifier { target }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (newline-separated `KEY=value` lines).
    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                debug!(error = %e, "sd_notify failed");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: closing recordings");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets_both_receive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let by_path = UnixDatagram::bind(&path).unwrap();
        let name = format!("vigia-test-{}", std::process::id());
        let by_name = UnixDatagram::bind_addr(&address(&format!("@{name}")).unwrap()).unwrap();
        for (target, sock) in [
            (path.to_str().unwrap().to_string(), &by_path),
            (format!("@{name}"), &by_name),
        ] {
            let n = Notifier {
                target: Some((UnixDatagram::unbound().unwrap(), address(&target).unwrap())),
            };
            n.watchdog();
            let mut buf = [0u8; 64];
            let len = sock.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"WATCHDOG=1", "{target}");
        }
        let off = Notifier { target: None };
        off.ready("x");
        assert!(!off.enabled());
    }
}
