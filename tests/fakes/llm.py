"""Fake LLM servers on 127.0.0.1 (stdlib): OpenAI-compatible chat completions (`FakeLLM`) and Anthropic's
Messages API (`FakeAnthropic`: POST /v1/messages, x-api-key + anthropic-version, answer in content[] text
blocks, usage input/output tokens, errors as {"type": "error", "error": {"type": ...}}).

Script answers with `answer_json`, `answer_text`, `answer_refusal`, `answer_status` (optionally with a
retry-after header), `answer_delay`; each request pops the next scripted answer (the last one repeats).
Every request is recorded in `requests` (path, headers, parsed JSON body). Each answer reports
`input_tokens` / `output_tokens` usage (settable).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _completion(content: str | None, refusal: str | None = None, usage=(100, 20)) -> dict:
    return {
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
    }


def _message(content: str | None, refusal: str | None = None, usage=(100, 20)) -> dict:
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
        "content": [] if content is None else [{"type": "text", "text": content}],
        "stop_reason": "refusal" if refusal else "end_turn",
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


class _Headers(dict):
    """Header names are case-insensitive (urllib sends 'X-api-key')."""

    def __init__(self, items):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


class FakeLLM:
    protocol = "openai"

    def __init__(self):
        self.usage = (100, 20)
        self.requests: list[dict] = []
        self._script: list[tuple] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _body(self, content: str | None, refusal: str | None = None) -> dict:
        make = _message if self.protocol == "anthropic" else _completion
        return make(content, refusal, self.usage)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- scripting ---
    def answer_json(self, obj: dict) -> None:
        self._script.append(("ok", 0.0, 200, self._body(json.dumps(obj))))

    def answer_text(self, text: str) -> None:
        self._script.append(("ok", 0.0, 200, self._body(text)))

    def answer_refusal(self, text: str = "I can't help with that.") -> None:
        self._script.append(("ok", 0.0, 200, self._body(None, refusal=text)))

    def answer_status(self, status: int, body: str = '{"error": {"message": "boom"}}',
                      retry_after: float | None = None) -> None:
        self._script.append(("raw", 0.0, status, body, retry_after))

    def answer_delay(self, seconds: float, obj: dict | None = None) -> None:
        obj = obj or {"action": "buy", "confidence": 90, "reasoning": "late"}
        self._script.append(("ok", seconds, 200, self._body(json.dumps(obj))))

    def answer_with(self, fn) -> None:
        """Answer every request with fn(request JSON body) -> decision dict (benches, long runs)."""
        self._script.append(("fn", 0.0, 200, fn))

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def _check(self, path, headers, body) -> tuple[int, str] | None:
        """A request the real API would reject (wrong path, missing headers or fields)."""
        if self.protocol != "anthropic":
            return None
        err = '{"type": "error", "error": {"type": "%s", "message": "%s"}}'
        if path != "/v1/messages":
            return 404, err % ("not_found_error", "no such endpoint")
        if not headers.get("x-api-key"):
            return 401, err % ("authentication_error", "x-api-key header is required")
        if not headers.get("anthropic-version"):
            return 400, err % ("invalid_request_error", "anthropic-version header is required")
        if not isinstance(body, dict) or not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return 400, err % ("invalid_request_error", "max_tokens and messages are required")
        return None

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
                    fake.requests.append({"path": self.path, "headers": _Headers(self.headers.items()), "json": body})
                problem = fake._check(self.path, self.headers, body)
                if problem is not None:
                    kind, delay, status, payload, *extra = ("raw", 0.0, *problem)
                else:
                    kind, delay, status, payload, *extra = fake._next()
                if kind == "fn":
                    kind, payload = "ok", fake._body(json.dumps(payload(body)))
                retry_after = extra[0] if extra else None
                if delay:
                    time.sleep(delay)
                data = (json.dumps(payload) if kind == "ok" else payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if retry_after is not None:
                        self.send_header("retry-after", f"{retry_after:g}")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        return Handler


class FakeAnthropic(FakeLLM):
    """Anthropic Messages API. `base_url` is the host root: the client posts to {base}/v1/messages."""

    protocol = "anthropic"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer_overloaded(self, retry_after: float | None = None) -> None:
        self.answer_status(529, '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
                           retry_after)

    def answer_rate_limited(self, retry_after: float | None = 0) -> None:
        self.answer_status(429, '{"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}',
                           retry_after)
