#!/usr/bin/python3
"""Independent test cameras: GStreamer's rtsp-server on a loopback port.

Usage: /usr/bin/python3 rtsp_server.py [--user U --password P] [--port N] [--address A] [--dvr N]
(--dvr N: instead of the mounts below, a Hikvision-style N-channel DVR at /Streaming/Channels/<ch>01)
Mounts (each client gets its own pipeline, see DESIGN.md on shared mounts):
  /h264       H.264 640x360 25 fps, 1 s GOP
  /h264aac    the same plus AAC 48 kHz stereo
  /h264gop2   /h264aac with a 2 s GOP
  /h265       H.265 640x360 25 fps, closed GOP (IDR key frames)
  /h265cam    H.265 640x360 15 fps as x265 makes it by default: open GOP, so every key frame
              after the first is a CRA picture, not an IDR (as most H.265 cameras send)
  /h265camaac the same plus AAC 48 kHz stereo
  /secure     /h264 behind Basic auth (--user/--password)
  /h264pcmu   /h264 plus G.711 mu-law audio (which HLS cannot carry)
  /shared     /h264 as one shared pipeline (each new PLAY re-seeks it: timestamps jump back)
  /vp8        VP8 (a codec vigia cannot carry)
/secure is served on a second port. Prints "READY <port> <secure-port>" once listening, and "CONNECT" for every RTSP client connection.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 "
    "! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
AUDIO = "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
H265CAM = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=15/1 "
    "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=600 "
    "! rtph265pay name=pay0 pt=96 config-interval=-1"
)
MOUNTS = {
    "/h264": f"( {VIDEO} )",
    "/h264aac": f"( {VIDEO} {AUDIO} )",
    "/h264gop2": f"( {VIDEO.replace('key-int-max=25', 'key-int-max=50')} {AUDIO} )",
    "/h265": "( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 option-string=keyint=25:min-keyint=25:scenecut=0:open-gop=0:repeat-headers=1 ! rtph265pay name=pay0 pt=96 config-interval=-1 )",
    "/h265cam": f"( {H265CAM} )",
    "/h265camaac": f"( {H265CAM} {AUDIO} )",
    "/secure": f"( {VIDEO} )",
    "/shared": f"( {VIDEO} )",
    "/h264pcmu": f"( {VIDEO} audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0 )",
    "/vp8": "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96 )",
}


def serve(mounts, auth=None, port=0, address="127.0.0.1"):
    server = GstRtspServer.RTSPServer()
    server.set_address(address)
    server.set_service(str(port))
    if auth:
        server.set_auth(auth)
    points = server.get_mount_points()
    for path, launch in mounts.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        # /shared is re-seeked to 0 by every new client's PLAY: timestamps jump back
        factory.set_shared(path == "/shared")
        if auth:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_role("user")
            perms.add_permission_for_role("user", "media.factory.access", True)
            perms.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(perms)
        points.add_factory(path, factory)
    server.connect("client-connected", lambda _s, _c: print("CONNECT", flush=True))
    server.attach(None)
    return server.get_bound_port()


def main():
    args = sys.argv[1:]
    user = args[args.index("--user") + 1] if "--user" in args else "cam"
    password = args[args.index("--password") + 1] if "--password" in args else "campass"
    fixed = int(args[args.index("--port") + 1]) if "--port" in args else 0
    address = args[args.index("--address") + 1] if "--address" in args else "127.0.0.1"
    open_mounts = {k: v for k, v in MOUNTS.items() if k != "/secure"}
    if "--dvr" in args:
        # a Hikvision-style DVR: channel N at /Streaming/Channels/N01, nothing else
        n = int(args[args.index("--dvr") + 1])
        open_mounts = {f"/Streaming/Channels/{ch}01": f"( {VIDEO} )" for ch in range(1, n + 1)}
    port = serve(open_mounts, port=fixed, address=address)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    secure_port = serve({"/secure": MOUNTS["/secure"]}, auth, address=address)
    print(f"READY {port} {secure_port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
