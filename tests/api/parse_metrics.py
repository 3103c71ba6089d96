"""Reads a Prometheus text exposition on stdin with the reference parser (prometheus_client,
not vigia's code), checks what the format requires of histograms, and prints every sample as
one JSON line: {"name", "labels", "value", "type"}. Exits 1 naming what is wrong.
  target/pyenv/bin/python tests/api/parse_metrics.py < metrics.txt
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    if len(names) != len(set(names)):
        sys.exit(f"a family appears twice: {sorted(n for n in names if names.count(n) > 1)}")
    for f in families:
        if not f.documentation:
            sys.exit(f"{f.name} has no HELP")
        if f.type == "histogram":
            series = {}
            for s in f.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {"buckets": [], "count": None})
                if s.name.endswith("_bucket"):
                    series[key]["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series[key]["count"] = s.value
            for key, h in series.items():
                bounds = [b for b, _ in h["buckets"]]
                counts = [c for _, c in h["buckets"]]
                if bounds != sorted(bounds) or bounds[-1] != float("inf"):
                    sys.exit(f"{f.name}{dict(key)}: bucket bounds {bounds}")
                if counts != sorted(counts) or counts[-1] != h["count"]:
                    sys.exit(f"{f.name}{dict(key)}: buckets {counts} not cumulative up to count {h['count']}")
        for s in f.samples:
            print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": f.type}))


if __name__ == "__main__":
    main()
