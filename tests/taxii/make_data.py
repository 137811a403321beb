#!/usr/bin/env python3
"""Write a data file for medallion's memory backend (medallion 3.0.0 from PyPI).

    make_data.py OUT.json N [--ties K] [--base-url URL] [--start TS]
                 [--config CONFIG.json] [--max-page-size P]
                 [--session-timeout S] [--check-interval S]

OUT.json gets one API root "api1" with one collection
91a7b528-80eb-42ed-a74d-c6fbd5a26116 ("Indicators", can_read and can_write
true) holding N STIX 2.1 indicators, with one manifest entry each.

Object i (1-based) has the pattern
    [domain-name:value = 'host-<i:05d>.example.net']
and a deterministic id (uuid5), so two runs with the same arguments write the
same file. Objects are grouped by K (--ties, default 1): the K objects of one
group share one date_added, and date_added goes up by one second from one
group to the next, starting at --start (default 2024-01-01T00:00:00Z).
date_added is written as medallion writes it itself:
YYYY-MM-DDTHH:MM:SS.ffffffZ (always six fraction digits, so that medallion's
string sort on date_added is also a time sort).

--base-url only fills the discovery document's api_roots/default
(medallion serves them verbatim); pass the real http://127.0.0.1:PORT.
--config also writes a medallion config file that points at OUT.json, with
users reader/secret-pass and writer/writer-pass.
"""
import argparse
import datetime as dt
import json
import os
import sys
import uuid

API_ROOT = "api1"
COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
USERS = {"reader": "secret-pass", "writer": "writer-pass"}
# Fixed namespace so that object ids are stable from run to run.
ID_NAMESPACE = uuid.UUID("5b2f7e1c-6a7d-4f1e-9a51-3c1f0d6e2b40")
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"


def ts_date_added(t):
    """medallion's own date_added format: microseconds, Z."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_stix(t):
    """STIX timestamp, millisecond precision."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def parse_start(s):
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError("expected YYYY-MM-DDTHH:MM:SS[.ffffff]Z: %r" % s)


def indicator(i, created):
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--%s" % uuid.uuid5(ID_NAMESPACE, "indicator-%d" % i),
        "created": ts_stix(created),
        "modified": ts_stix(created),
        "name": "host-%05d.example.net" % i,
        "indicator_types": ["malicious-activity"],
        "pattern": "[domain-name:value = 'host-%05d.example.net']" % i,
        "pattern_type": "stix",
        "valid_from": ts_stix(created),
    }


def build(n, ties, base_url, start):
    base_url = base_url.rstrip("/")
    objects = []
    manifest = []
    for i in range(1, n + 1):
        group = (i - 1) // ties
        added = start + dt.timedelta(seconds=group)
        # created/modified a day before it was added, one ms apart per object
        created = start - dt.timedelta(days=1) + dt.timedelta(milliseconds=i)
        obj = indicator(i, created)
        objects.append(obj)
        manifest.append({
            "id": obj["id"],
            "date_added": ts_date_added(added),
            # must equal the object's "modified" (compared as datetimes)
            "version": obj["modified"],
            "media_type": STIX_MEDIA_TYPE,
        })
    return {
        "/discovery": {
            "title": "medallion test server",
            "description": "TAXII 2.1 test data written by make_data.py",
            "contact": "nobody@example.net",
            "default": "%s/%s/" % (base_url, API_ROOT),
            "api_roots": ["%s/%s/" % (base_url, API_ROOT)],
        },
        API_ROOT: {
            "information": {
                "title": "Test API root",
                "description": "One collection of indicators",
                "versions": ["application/taxii+json;version=2.1"],
                # POST /objects/ is refused (413) above this many bytes
                "max_content_length": 104857600,
            },
            # must exist: every POST appends its status resource here
            "status": [],
            "collections": [
                {
                    "id": COLLECTION_ID,
                    "title": "Indicators",
                    "description": "Generated indicators",
                    "can_read": True,
                    "can_write": True,
                    "media_types": [STIX_MEDIA_TYPE],
                    "objects": objects,
                    "manifest": manifest,
                }
            ],
        },
    }


def config(data_path, max_page_size, session_timeout, check_interval):
    return {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": os.path.abspath(data_path),
            "session_timeout": session_timeout,
            "check_interval": check_interval,
        },
        "users": dict(USERS),
        "taxii": {"max_page_size": max_page_size},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", metavar="OUT.json")
    p.add_argument("n", metavar="N", type=int)
    p.add_argument("--ties", metavar="K", type=int, default=1,
                   help="objects per shared date_added (default 1)")
    p.add_argument("--base-url", default="http://127.0.0.1:5000",
                   help="written into the discovery document only")
    p.add_argument("--start", type=parse_start, default=dt.datetime(2024, 1, 1),
                   help="date_added of the first group")
    p.add_argument("--config", metavar="CONFIG.json",
                   help="also write a medallion config file using OUT.json")
    p.add_argument("--max-page-size", type=int, default=1000)
    p.add_argument("--session-timeout", type=int, default=30,
                   help="seconds a 'next' token lives (medallion default 30)")
    p.add_argument("--check-interval", type=int, default=10,
                   help="seconds between expiry sweeps (medallion default 10)")
    a = p.parse_args(argv)
    if a.n < 0 or a.ties < 1:
        p.error("N must be >= 0 and K >= 1")

    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(build(a.n, a.ties, a.base_url, a.start), f, indent=1)
        f.write("\n")
    if a.config:
        with open(a.config, "w", encoding="utf-8") as f:
            json.dump(config(a.out, a.max_page_size, a.session_timeout,
                             a.check_interval), f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
