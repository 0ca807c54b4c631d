"""Fake OpenAI-compatible chat-completions server on 127.0.0.1 (stdlib, one thread).

Script answers with `answer_json`, `answer_text`, `answer_refusal`, `answer_status`,
`answer_delay`; each request pops the next scripted answer (the last one repeats).
Every request is recorded in `requests` (path, headers, parsed JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _completion(content: str | None, refusal: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
    }


class FakeLLM:
    def __init__(self):
        self.requests: list[dict] = []
        self._script: list[tuple] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- scripting ---
    def answer_json(self, obj: dict) -> None:
        self._script.append(("ok", 0.0, 200, _completion(json.dumps(obj))))

    def answer_text(self, text: str) -> None:
        self._script.append(("ok", 0.0, 200, _completion(text)))

    def answer_refusal(self, text: str = "I can't help with that.") -> None:
        self._script.append(("ok", 0.0, 200, _completion(None, refusal=text)))

    def answer_status(self, status: int, body: str = '{"error": {"message": "boom"}}') -> None:
        self._script.append(("raw", 0.0, status, body))

    def answer_delay(self, seconds: float, obj: dict | None = None) -> None:
        obj = obj or {"action": "buy", "confidence": 90, "reasoning": "late"}
        self._script.append(("ok", seconds, 200, _completion(json.dumps(obj))))

    def _next(self) -> tuple:
        with self._lock:
            if not self._script:
                return ("raw", 0.0, 500, '{"error": "no scripted answer"}')
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                kind, delay, status, payload = fake._next()
                if delay:
                    time.sleep(delay)
                data = (json.dumps(payload) if kind == "ok" else payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        return Handler
