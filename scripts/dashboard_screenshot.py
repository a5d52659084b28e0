"""Screenshots of the Ray dashboard of a running search, in headless Chromium (Debian's `chromium`).

    python scripts/dashboard_screenshot.py --dashboard http://127.0.0.1:8265 --out results/screenshots

How the token is passed: Ray 2.60's dashboard (RAY_AUTH_MODE=token) asks a browser for the cluster's token once
and keeps it in the cookie `ray-authentication-token`; headless Chromium cannot type it, so this script serves the
dashboard through a local proxy on 127.0.0.1:--port that adds `Authorization: Bearer <token>` (the token from
`ray get-auth-token`) to every request it forwards, and also sets that cookie, and points Chromium at the proxy.

Ray 2.60's web app has no Train page: its router has no `#/train` route, so that URL renders nothing (an empty
`<div id="root">`, i.e. a blank PNG). The Train views are therefore the dashboard's page of the job that runs the
newest Ray Train run (found through the dashboard's Train state API; its job page lists the TrainController and
RayTrainWorker actors) and that API's JSON (needs RAY_TRAIN_ENABLE_STATE_TRACKING=1 on the cluster).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VIEWS = {"ray-dashboard-jobs": "#/jobs", "ray-dashboard-cluster": "#/cluster", "ray-dashboard-actors": "#/actors"}
TRAIN_API = "api/train/v2/runs/v1"


def proxy(target: str, token: str, port: int) -> ThreadingHTTPServer:
    class Forward(BaseHTTPRequestHandler):
        def forward(self):
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {"Authorization": f"Bearer {token}"} | ({"Content-Type": self.headers["Content-Type"]} if data else {})
            request = urllib.request.Request(target + self.path, data=data, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    body, status, headers = answer.read(), answer.status, answer.headers
            except urllib.error.HTTPError as err:
                body, status, headers = err.read(), err.code, err.headers
            self.send_response(status)
            for name, value in headers.items():  # the body goes on as it came (gzip included)
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "set-cookie"):
                    self.send_header(name, value)
            # The dashboard's own login keeps the token in this cookie; the page reads it to skip its prompt.
            self.send_header("Set-Cookie", f"ray-authentication-token={token}; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = forward

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def train_views(base: str) -> dict[str, tuple[str, str]]:
    """The newest Ray Train run's job page and the Train state API, if the cluster has a Train run."""
    try:
        with urllib.request.urlopen(f"{base}/{TRAIN_API}", timeout=30) as answer:
            runs = json.load(answer).get("train_runs") or []
    except (urllib.error.URLError, ValueError) as err:
        print(f"no Ray Train runs to show ({err})")
        return {}
    if not runs:
        print("no Ray Train runs to show")
        return {}
    run = max(runs, key=lambda r: r.get("start_time_ns") or 0)
    print(f"Train run {run['name']} ({run['status']}) in job {run['job_id']}")
    return {"ray-dashboard-train": (f"#/jobs/{run['job_id']}", "1500,2000"), "ray-dashboard-train-api": (TRAIN_API, "1500,1400")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dashboard", default="http://127.0.0.1:8265")
    p.add_argument("--out", type=Path, default=Path("results/screenshots"))
    p.add_argument("--port", type=int, default=8299)
    args = p.parse_args()
    token = subprocess.run([str(Path(sys.executable).with_name("ray")), "get-auth-token"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    server = proxy(args.dashboard.rstrip("/"), token, args.port)
    base = f"http://127.0.0.1:{args.port}"
    args.out.mkdir(parents=True, exist_ok=True)
    views = {name: (view, "1500,1000") for name, view in VIEWS.items()} | train_views(base)
    for name, (view, size) in views.items():
        path = (args.out / f"{name}.png").resolve()
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={size}", "--virtual-time-budget=30000", "--run-all-compositor-stages-before-draw", f"--screenshot={path}",
                        f"{base}/{view}"], check=True, capture_output=True, timeout=120)
        print(f"wrote {path}")
    server.shutdown()


if __name__ == "__main__":
    main()
