//! The Yocto layer stays consistent with the repository: `vigia-crates.inc` lists exactly the
//! registry crates of `Cargo.lock` with their checksums, the recipe has the parts poky's cargo
//! build needs and takes the unit and settings from `systemd/` (one copy of each), and the
//! release profile stays Yocto-safe (packaging strips; a panic unwinds).

mod support;

use std::path::Path;
use std::process::Command;

use support::walk;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_crates_file_matches_cargo_lock() {
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("scripts/yocto-crates.py"))
        .arg("--check")
        .output()
        .expect("python3 (3.11 or newer, for tomllib)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // and the check itself notices a drift
    let lock = std::fs::read_to_string(Path::new(ROOT).join("Cargo.lock")).unwrap();
    let inc = std::fs::read_to_string(
        Path::new(ROOT).join("yocto/meta-vigia/recipes-multimedia/vigia/vigia-crates.inc"),
    )
    .unwrap();
    let registry = lock.matches("source = \"registry+").count();
    assert_eq!(inc.matches("crate://crates.io/").count(), registry);
    assert_eq!(inc.matches(".sha256sum] = \"").count(), registry);
    let sample = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"retina\""))
        .unwrap();
    let version = sample
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .unwrap()
        .trim_end_matches('"');
    let sum = sample
        .lines()
        .find_map(|l| l.strip_prefix("checksum = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(inc.contains(&format!("crate://crates.io/retina/{version} \\")));
    assert!(inc.contains(&format!("SRC_URI[retina-{version}.sha256sum] = \"{sum}\"")));
}

#[test]
fn the_recipe_is_complete_and_uses_the_one_unit_file() {
    let layer = Path::new(ROOT).join("yocto/meta-vigia");
    let conf = std::fs::read_to_string(layer.join("conf/layer.conf")).unwrap();
    assert!(conf.contains("LAYERSERIES_COMPAT_vigia = \"scarthgap whinlatter wrynose\""));
    let bb = std::fs::read_to_string(layer.join("recipes-multimedia/vigia/vigia_git.bb")).unwrap();
    for part in [
        "inherit cargo cargo-update-recipe-crates systemd useradd",
        "require vigia-crates.inc",
        "SYSTEMD_SERVICE:${PN} = \"vigia.service\"",
        "USERADD_PACKAGES = \"${PN}\"",
        "--user-group",
        "${S}/systemd/vigia.service",
        "${S}/systemd/vigia.env ${D}${sysconfdir}/vigia/vigia.env",
        "CONFFILES:${PN} = \"${sysconfdir}/vigia/vigia.env\"",
    ] {
        assert!(bb.contains(part), "the recipe lacks {part}");
    }
    // the checksums in LIC_FILES_CHKSUM are those of the files
    for (file, line) in bb.split("file://").skip(1).filter_map(|s| {
        s.split_once(";md5=")
            .map(|(f, rest)| (f.to_string(), rest[..32].to_string()))
    }) {
        let out = Command::new("md5sum")
            .arg(Path::new(ROOT).join(&file))
            .output()
            .unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        assert!(sum.starts_with(&line), "{file}: md5 {sum} != {line}");
    }
    let copies: Vec<_> = walk(&layer)
        .into_iter()
        .filter(|p| p.ends_with("vigia.service") || p.ends_with("vigia.env"))
        .collect();
    assert!(copies.is_empty(), "a second copy in the layer: {copies:?}");
}

#[test]
fn the_release_profile_is_yocto_safe() {
    let toml = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let release = toml
        .split("[profile.release]")
        .nth(1)
        .expect("a release profile")
        .split("\n[")
        .next()
        .unwrap();
    assert!(
        !release.contains("panic"),
        "no panic = \"abort\": {release}"
    );
    assert!(
        !release.contains("strip"),
        "packaging strips, not the profile: {release}"
    );
}
