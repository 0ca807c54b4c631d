"""Fake crypto exchange on 127.0.0.1 speaking the Binance spot (/api/v3) and Bybit v5 (/v5) subsets ccxt uses.

One server serves BOTH exchanges (the path prefix picks the protocol); run two instances to model two networks
(e.g. live and testnet). Tests drive the market clock: `fake.set_time(ms)` / `fake.advance(minutes)`; the
current price is the open of the candle the clock is in and klines only return bars up to the clock.

    fake = FakeExchange().start()
    fake.add_account("key", "secret", {"USDT": "1000"}, exchange="binance")
    fake.fault("/api/v3/order", "fill_then_drop")      # book the order, then close the socket
    fake.fault("/api/v3/klines", "http", status=429, retry_after=1)
    [r for r in fake.requests if r.path == "/api/v3/klines"]

Standalone: python -m tests.fakes.exchange --port 8899 --latency-ms 5 --account key:secret:binance:USDT=1000
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from tests.fakes import exchange_binance, exchange_binance_futures, exchange_bybit
from tests.fakes.exchange_book import Account, Book, Order
from tests.fakes.exchange_data import BINANCE_SPECS, BYBIT_SPECS, MINUTE, REAL_START, Spec, load_series


@dataclass
class Request:
    """One request as the fake saw it."""

    t: float  # time.time() on arrival
    method: str
    path: str
    params: dict
    exchange: str  # binance | bybit | ?
    api_key: str | None
    signature_ok: bool | None  # None for public endpoints
    status: int = 0  # HTTP status sent (0 if the connection was dropped)
    fault: str | None = None


@dataclass
class Fault:
    path: str
    kind: str  # http | delay | reset | drop | fill_then_drop
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    body: dict | None = None
    method: str | None = None


@dataclass
class _Req:
    method: str
    path: str
    raw_query: str
    params: dict
    body: str
    headers: dict = field(default_factory=dict)


class FakeExchange:
    def __init__(self, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), start_ms: int | None = None,
                 latency_ms: float = 0.0, host: str = "127.0.0.1", port: int = 0, synthetic_seed: int | None = None):
        series = {sym: load_series(sym, synthetic_seed) for sym in symbols}
        specs = {"binance": {k: v for k, v in BINANCE_SPECS.items() if k in symbols},
                 "bybit": {k: v for k, v in BYBIT_SPECS.items() if k in symbols}}
        # default clock: 500 minutes into the data, so history exists for indicators
        self.book = Book(series, specs, start_ms if start_ms is not None else REAL_START + 500 * MINUTE)
        self.latency_ms = latency_ms
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeExchange:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-exchange", daemon=True)
        self._thread.start()
        return self

    def listen(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Serve the same exchange on one more port (a second host for the bot: its own rate limiter, as
        Binance and Bybit have in production). Returns that URL."""
        server = ThreadingHTTPServer((host, port), _Handler)
        server.daemon_threads = True
        server.fake = self
        self._extra = [*getattr(self, "_extra", []), server]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-exchange-2",
                         daemon=True).start()
        return f"http://{host}:{server.server_address[1]}"

    def stop(self) -> None:
        for server in [self._server, *getattr(self, "_extra", [])]:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # clock ----------------------------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self.book.now_ms

    def set_time(self, ms: int) -> None:
        self.book.set_time(ms)

    def advance(self, minutes: float = 1) -> int:
        self.book.set_time(self.book.now_ms + int(minutes * MINUTE))
        return self.book.now_ms

    def price(self, symbol_id: str) -> Decimal:
        return self.book.price(symbol_id)

    # accounts and orders -----------------------------------------------------------------------------------------
    def add_account(self, api_key: str, secret: str, balances: dict | None = None, exchange: str = "binance",
                    permissions=("read", "trade")) -> None:
        free = {k: Decimal(str(v)) for k, v in (balances or {}).items()}
        self.book.add_account(Account(api_key, secret, exchange, set(permissions), free))

    def add_futures(self, api_key: str, usdt: str | Decimal, enabled: bool = True):
        """Give an account (added with add_account) a USDT-M futures wallet; enabled=False: a key without the
        futures permission."""
        return exchange_binance_futures.futures(self.book).add_account(api_key, usdt, enabled)

    @property
    def futures(self):
        """The futures side of the book (positions, wallets, orders, close_externally)."""
        return exchange_binance_futures.futures(self.book)

    def balances(self, api_key: str) -> dict[str, Decimal]:
        """Free balances (what is available to trade)."""
        return dict(self.book.accounts[api_key].free)

    def orders(self, api_key: str | None = None) -> list[Order]:
        with self.book.lock:
            return [o for o in self.book.orders if api_key in (None, o.api_key)]

    # faults and records ---------------------------------------------------------------------------------------
    def fault(self, path: str, kind: str, times: int = 1, **kw) -> Fault:
        """Inject a fault for the next `times` requests whose path starts with `path`.

        kinds: http (status, retry_after, body), delay (seconds, then served normally), reset (TCP RST, nothing
        booked), drop (close without response, nothing booked), fill_then_drop (served, response never sent).
        """
        f = Fault(path, kind, times, **kw)
        with self._lock:
            self.faults.append(f)
        return f

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and path.startswith(f.path) and f.method in (None, method):
                    f.times -= 1
                    return f
        return None

    def _record(self, rec: Request) -> None:
        with self._lock:
            self.requests.append(rec)

    def counts(self) -> dict:
        """Requests served so far, by 'METHOD path' (benchmarks read it over HTTP: GET /__counts)."""
        out: dict[str, int] = {}
        with self._lock:
            for r in self.requests:
                key = f"{r.method} {r.path}"
                out[key] = out.get(key, 0) + 1
        return out

    def dispatch(self, req: _Req):
        """-> (status, body, signature_ok, exchange)."""
        if req.path == "/__counts":
            return 200, self.counts(), None, "?"
        if req.path.startswith("/api/v3/") or req.path in ("/fapi/v1/premiumIndex", "/fapi/v1/openInterest"):
            status, body, sig = exchange_binance.handle(self.book, req)
            return status, body, sig, "binance"
        if req.path.startswith("/fapi/"):
            status, body, sig = exchange_binance_futures.handle(self.book, req)
            return status, body, sig, "binance"
        if req.path.startswith("/v5/"):
            status, body, sig = exchange_bybit.handle(self.book, req)
            return status, body, sig, "bybit"
        return 404, {"error": "not found"}, None, "?"


def _fault_body(exchange: str, status: int):
    """What the real exchanges send: a JSON rate-limit error for 418/429, an HTML error page for 5xx."""
    if status in (418, 429):
        if exchange == "bybit":
            return {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {}, "time": 0}
        return {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."}
    return f"<html><body><h1>{status} Server Error</h1></body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake: FakeExchange = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if body and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body, keep_blank_values=True))
        req = _Req(self.command, parts.path, parts.query, params, body, dict(self.headers.items()))
        exchange = "binance" if parts.path.startswith(("/api/", "/fapi/")) else "bybit" if parts.path.startswith("/v5/") else "?"
        api_key = self.headers.get("X-MBX-APIKEY") or self.headers.get("X-BAPI-API-KEY")
        shown = dict(params)
        if body.startswith("{"):
            try:
                shown.update(json.loads(body))
            except ValueError:
                pass
        rec = Request(time.time(), self.command, parts.path, shown, exchange, api_key, None)
        if parts.path != "/__counts":
            fake._record(rec)
        if fake.latency_ms:
            time.sleep(fake.latency_ms / 1000)
        f = fake._take_fault(parts.path, self.command)
        if f is not None:
            rec.fault = f.kind
            if f.kind == "http":
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                rec.status = f.status
                return self._send(f.status, f.body if f.body is not None else _fault_body(exchange, f.status), headers)
            if f.kind in ("reset", "drop"):
                return self._hang_up(rst=f.kind == "reset")
            if f.kind == "delay":
                time.sleep(f.delay)
        status, out, sig, _ = fake.dispatch(req)
        rec.signature_ok = sig
        if f is not None and f.kind == "fill_then_drop":
            return self._hang_up(rst=False)
        rec.status = status
        self._send(status, out)

    def _send(self, status: int, body, headers: dict | None = None) -> None:
        text = isinstance(body, str)
        data = (body if text else json.dumps(body)).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
            self.close_connection = True

    def _hang_up(self, rst: bool) -> None:
        if rst:  # SO_LINGER 0 makes close() send RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_DELETE = do_PUT = _serve


SYNTHETIC_COINS = ("ADA", "XRP", "DOGE", "DOT", "LINK", "AVAX", "LTC", "TRX", "ATOM", "UNI", "XLM", "BCH",
                   "ETC", "FIL", "NEAR", "APT", "ARB", "OP", "SUI", "INJ", "AAVE", "ALGO", "EOS", "SAND",
                   "MANA", "AXS", "GRT", "CRV", "RUNE", "KAVA")


def add_synthetic_symbols(n: int) -> tuple[str, ...]:
    """Register `n` extra coins (seeded random-walk candles around 100 USDT) on both exchanges."""
    out = []
    for coin in SYNTHETIC_COINS[:n]:
        sym = f"{coin}USDT"
        spec = Spec(sym, coin, "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("9000000"),
                    Decimal("5"))
        BINANCE_SPECS.setdefault(sym, spec)
        BYBIT_SPECS.setdefault(sym, spec)
        out.append(sym)
    return tuple(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--start-ms", type=int, default=None)
    ap.add_argument("--tick-seconds", type=float, default=0.0, help="advance the clock 1 minute every N seconds")
    ap.add_argument("--account", action="append", default=[],
                    help="key:secret:exchange:ASSET=amount[,ASSET=amount]")
    ap.add_argument("--wall-clock", action="store_true", help="the market clock follows the wall clock")
    ap.add_argument("--futures-accounts", type=int, default=0,
                    help="N accounts per exchange with a USDT-M futures wallet: keys fbn<i> (Binance) and fbb<i> "
                         "(Bybit), secret s<i>")
    ap.add_argument("--symbols", type=int, default=3,
                    help="serve this many USDT symbols (BTC, ETH, SOL, then synthetic coins)")
    ap.add_argument("--extra-port", type=int, action="append", default=[],
                    help="serve the same exchange on this port too (0: any free port; printed)")
    args = ap.parse_args(argv)
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT") + add_synthetic_symbols(max(0, args.symbols - 3))
    fake = FakeExchange(symbols=symbols[: max(1, args.symbols)], start_ms=args.start_ms,
                        latency_ms=args.latency_ms, host=args.host, port=args.port)
    for spec in args.account:
        key, secret, exchange, bal = (spec.split(":") + ["", "", "binance", ""])[:4]
        balances = dict(item.split("=") for item in bal.split(",") if item)
        fake.add_account(key, secret, balances, exchange=exchange)
    for i in range(args.futures_accounts):
        for prefix, exchange in (("fbn", "binance"), ("fbb", "bybit")):
            fake.add_account(f"{prefix}{i}", f"s{i}", {"USDT": "0"}, exchange=exchange)
            fake.add_futures(f"{prefix}{i}", "1000000")
    if args.wall_clock:
        # the market clock is the wall clock, 500 minutes into the data (for a real `tradebot run`)
        now = int(time.time() * 1000)
        start = now - now % MINUTE - 500 * MINUTE
        for series in fake.book.series.values():
            series.start = start
        fake.set_time(now)
    fake.start()
    extra = [fake.listen(port, args.host) for port in args.extra_port]
    print(f"fake exchange on {fake.url}" + "".join(f" and {url}" for url in extra), flush=True)
    try:
        while True:
            if args.wall_clock:
                time.sleep(0.02)
                fake.set_time(int(time.time() * 1000))
            elif args.tick_seconds:
                time.sleep(args.tick_seconds)
                fake.advance(1)
            else:
                time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
