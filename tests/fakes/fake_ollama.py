"""A FAKE Ollama HTTP API on 127.0.0.1 for tests (the real server sits behind the ollama IngressRoute).

It remembers pulled models and answers /api/tags, /api/pull and /api/generate the way Ollama does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOllama:
    """Remembers pulled models; answers /api/tags, /api/pull and /api/generate like Ollama."""

    def __init__(self) -> None:
        self.models: set[str] = set()
        self.pulls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply({"models": [{"name": m} for m in sorted(fake.models)]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/pull":
                    fake.pulls.append(body["model"])
                    fake.models.add(body["model"])
                    self._reply({"status": "success"})
                else:
                    ok = body["model"] in fake.models
                    self._reply({"response": "OK" if ok else "", "done": True})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
