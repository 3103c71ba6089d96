//! RTSP URL templates per brand: how a camera's stream path is built from its channel.
//! Discovery probes the same templates (`{ch}` is the 1-based channel, `{user}`/`{password}`
//! the credentials for the brands that put them in the path).

use crate::store::Brand;

/// The path template of a brand's main stream.
pub fn path_template(brand: Brand) -> &'static str {
    match brand {
        Brand::Generic => "/stream{ch}",
        Brand::Hikvision => "/Streaming/Channels/{ch}01",
        Brand::Dahua => "/cam/realmonitor?channel={ch}&subtype=0",
        Brand::Xmeye => "/user={user}&password={password}&channel={ch}&stream=0.sdp?",
        Brand::Onvif => "/onvif{ch}",
    }
}

/// Default RTSP port of a brand.
pub fn default_port(_brand: Brand) -> u16 {
    554
}

fn fill(template: &str, channel: u32, user: &str, password: &str) -> String {
    template
        .replace("{ch}", &channel.to_string())
        .replace("{user}", user)
        .replace("{password}", password)
}

/// The full URL for a camera, credentials in the userinfo (or the path, for XMEye).
pub fn build_url(
    brand: Brand,
    host: &str,
    port: u16,
    channel: u32,
    user: &str,
    password: &str,
) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = fill(path_template(brand), channel, user, password);
    let base = format!("rtsp://{host}:{port}{path}");
    if brand == Brand::Xmeye || user.is_empty() {
        return base;
    }
    super::url::with_credentials(&base, user, password).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands() {
        assert_eq!(
            build_url(Brand::Hikvision, "10.1.1.1", 554, 2, "admin", "pw"),
            "rtsp://admin:pw@10.1.1.1:554/Streaming/Channels/201"
        );
        assert_eq!(
            build_url(Brand::Dahua, "10.1.1.1", 554, 3, "", ""),
            "rtsp://10.1.1.1:554/cam/realmonitor?channel=3&subtype=0"
        );
        assert_eq!(
            build_url(Brand::Xmeye, "10.1.1.1", 554, 1, "admin", "x"),
            "rtsp://10.1.1.1:554/user=admin&password=x&channel=1&stream=0.sdp?"
        );
        assert_eq!(
            build_url(Brand::Generic, "::1", 8554, 1, "", ""),
            "rtsp://[::1]:8554/stream1"
        );
    }
}
