"""Peak memory of the year's sales-detail XLSX export, in a process of its own.

python -m bench.export_rss FROM TO   (DATABASE_URL in the environment) → one line of JSON.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time


def rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM). Not getrusage's ru_maxrss, which Linux carries
    over from the parent a process was forked from."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    start, end = sys.argv[1], sys.argv[2]
    from shop import create_app

    app = create_app({"ENVIRON": {"SECRET_KEY": "bench", "DATABASE_URL": os.environ["DATABASE_URL"]},
                      "INSTANCE_PATH": os.environ.get("BENCH_INSTANCE", "/tmp/shop-bench-instance"),
                      "WTF_CSRF_ENABLED": False})
    with app.app_context():
        from bench.run import signed_in  # a login without hashing a password (scrypt's 32 MB is not the export)

        client = signed_in(app, "admin")
    client.post("/admin/report/export/channels.xlsx", query_string={"from": start, "to": end})  # warm: imports
    before = rss_mb()
    began = time.perf_counter()
    response = client.post("/admin/report/export/lines.xlsx", query_string={"from": start, "to": end}, buffered=False)
    size = 0
    for chunk in response.response:
        size += len(chunk)
    response.close()
    print(json.dumps({"peak_rss_mb": round(rss_mb(), 1), "before_export_mb": round(before, 1), "bytes": size,
                      "seconds": round(time.perf_counter() - began, 1), "status": response.status_code}))


if __name__ == "__main__":
    main()
