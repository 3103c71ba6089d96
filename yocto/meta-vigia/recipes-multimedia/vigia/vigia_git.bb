SUMMARY = "vigia: a lean NVR service"
DESCRIPTION = "Pulls RTSP from IP cameras and DVR/NVR channels, remuxes without transcoding into \
LL-HLS served from RAM and crash-safe fragmented MP4 recordings, and serves a REST API. \
Runs under systemd with a watchdog."
HOMEPAGE = "https://github.com/vigia-nvr/vigia"
SECTION = "multimedia"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=3a101312862013b67f42b8b8e28cb7d2 \
                    file://LICENSE-APACHE;md5=22a53954e4e0ec258dfce4391e905dac"

VIGIA_SRC_URI ?= "git://github.com/vigia-nvr/vigia.git;protocol=https;branch=main"
# destsuffix=${BP} with S below unpacks the same way on scarthgap and on 5.1+ (UNPACKDIR)
SRC_URI = "${VIGIA_SRC_URI};destsuffix=${BP}"
SRCREV ?= "${AUTOREV}"
PV = "0.1.0+git"
S = "${WORKDIR}/${BP}"

inherit cargo cargo-update-recipe-crates systemd useradd

# every registry crate of Cargo.lock, with its checksum (scripts/yocto-crates.py)
require vigia-crates.inc

# lean by default; the PostgreSQL store for fleets on request
PACKAGECONFIG ??= ""
PACKAGECONFIG[postgres] = ""
CARGO_BUILD_FLAGS:append = "${@bb.utils.contains('PACKAGECONFIG', 'postgres', ' --features postgres', '', d)}"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --home-dir /var/lib/vigia --no-create-home --shell /sbin/nologin vigia"

SYSTEMD_SERVICE:${PN} = "vigia.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    # the unit and the default settings come from the repository (one copy of each)
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/vigia.service ${D}${systemd_system_unitdir}/vigia.service
    install -d ${D}${sysconfdir}/vigia
    install -m 0640 -g vigia ${S}/systemd/vigia.env ${D}${sysconfdir}/vigia/vigia.env
    install -d ${D}${docdir}/vigia
    install -m 0644 ${S}/README.md ${D}${docdir}/vigia/README.md
}

CONFFILES:${PN} = "${sysconfdir}/vigia/vigia.env"
FILES:${PN} += "${systemd_system_unitdir}/vigia.service"
