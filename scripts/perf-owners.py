#!/usr/bin/env python3
"""Where vigia's CPU goes, by owner: reads `perf script` output of a recording made with
`--call-graph dwarf` and counts each sample once, for the first owner found in its stack
(HTTP before HLS before fan-out before retina: a sample in the kernel's writev under hyper is
HTTP's). Prints each owner's share and, with a number, that many leaf functions under it.

    perf record --call-graph dwarf,32768 -F 1500 -p <vigia pid> -o /tmp/v.data -- sleep 8
    perf script -i /tmp/v.data > /tmp/v.txt && scripts/perf-owners.py /tmp/v.txt [leaves]
"""
import collections
import sys

OWNERS = [
    ("http (hyper, api)", ["hyper::", "vigia::api::"]),
    ("hls, mux, segment buffers", ["vigia::media::hls::", "vigia::media::mux", "vigia::media::segbuf", "vigia::media::fmp4"]),
    ("fan-out", ["vigia::media::fanout"]),
    ("recorder", ["vigia::media::recorder"]),
    ("retina (RTSP read, depacketize)", ["retina::"]),
    ("ingest loop", ["vigia::media::ingest"]),
    ("waiting for events (epoll)", ["park", "Driver::turn"]),
    ("tokio timers", ["tokio::runtime::time"]),
    ("tokio scheduler", ["tokio::runtime"]),
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    leaves = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    owners, under, total = collections.Counter(), collections.defaultdict(collections.Counter), 0
    for sample in open(sys.argv[1]).read().split("\n\n"):
        lines = [line.strip() for line in sample.strip().split("\n")]
        if len(lines) < 2:
            continue
        total += 1
        frames = [line.split(" ", 1)[1] if " " in line else line for line in lines[1:]]
        stack = "\n".join(frames)
        owner = next((name for name, keys in OWNERS if any(k in stack for k in keys)), "other")
        owners[owner] += 1
        under[owner][frames[0].split("+0x")[0][:80]] += 1
    if not total:
        sys.exit("no samples: was the recording made with --call-graph dwarf?")
    for owner, n in owners.most_common():
        print(f"{100 * n / total:5.1f}%  {owner}")
        for leaf, m in under[owner].most_common(leaves):
            print(f"          {100 * m / total:5.1f}%  {leaf}")
    print(f"({total} samples)")


if __name__ == "__main__":
    main()
