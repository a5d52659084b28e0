"""Screenshots of the Ray dashboard of a running search, in headless Chromium (Debian's `chromium`).

    python scripts/dashboard_screenshot.py --dashboard http://127.0.0.1:8265 --out results/screenshots

Ray 2.60's dashboard asks a browser for the cluster's token once and keeps it in the cookie
`ray-authentication-token`; headless Chromium cannot type it, so this script serves the dashboard through
a local proxy that adds `Authorization: Bearer <token>` (the token from `ray get-auth-token`) to every
request, and points Chromium at the proxy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VIEWS = {"ray-dashboard-jobs": "#/jobs", "ray-dashboard-train": "#/train", "ray-dashboard-cluster": "#/cluster",
         "ray-dashboard-actors": "#/actors"}


def proxy(target: str, token: str, port: int) -> ThreadingHTTPServer:
    class Forward(BaseHTTPRequestHandler):
        def do_GET(self):
            request = urllib.request.Request(target + self.path, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    body, status, headers = answer.read(), answer.status, answer.headers
            except urllib.error.HTTPError as err:
                body, status, headers = err.read(), err.code, err.headers
            self.send_response(status)
            for name, value in headers.items():  # the body goes on as it came (gzip included)
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            # The dashboard's own login keeps the token in this cookie; the page reads it to skip its prompt.
            self.send_header("Set-Cookie", f"ray-authentication-token={token}; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dashboard", default="http://127.0.0.1:8265")
    p.add_argument("--out", type=Path, default=Path("results/screenshots"))
    p.add_argument("--port", type=int, default=8299)
    args = p.parse_args()
    token = subprocess.run([str(Path(sys.executable).with_name("ray")), "get-auth-token"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    server = proxy(args.dashboard.rstrip("/"), token, args.port)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, view in VIEWS.items():
        path = (args.out / f"{name}.png").resolve()
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1500,1000", "--virtual-time-budget=30000", "--run-all-compositor-stages-before-draw", f"--screenshot={path}",
                        f"http://127.0.0.1:{args.port}/{view}"], check=True, capture_output=True, timeout=120)
        print(f"wrote {path}")
    server.shutdown()


if __name__ == "__main__":
    main()
