"""Bybit v5 spot REST subset (/v5) for the fake exchange, with Bybit's real retCodes (HTTP 200 + retCode)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal

from tests.fakes.exchange_book import Account, Book, Order, Reject

INTERVALS = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240, "D": 1440}
CODES = {
    "precision": (170137, "Order quantity has too many decimals."),
    "lot_size": (170137, "Order quantity has too many decimals."),
    "quote_precision": (170148, "Market order amount decimal too long."),
    "min_qty": (170136, "Order quantity lower than the minimum."),
    "notional": (170140, "Order value exceeded lower limit."),
    "price_filter": (170134, "Order price has too many decimals."),
    "insufficient": (170131, "Insufficient balance."),
    "duplicate": (170141, "Duplicate clientOrderId."),
    "unknown_symbol": (170121, "Invalid symbol."),
    "bad_param": (10001, "params error"),
}
STATUS = {"NEW": "New", "FILLED": "Filled", "CANCELED": "Cancelled"}
PRIVATE_PREFIXES = ("/v5/account/", "/v5/order/", "/v5/execution/", "/v5/user/", "/v5/asset/", "/v5/position/")


def ok(result) -> tuple[int, dict]:
    return 200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": int(time.time() * 1000)}


def fail(code: int, msg: str) -> tuple[int, dict]:
    return 200, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": int(time.time() * 1000)}


def s(d: Decimal | None) -> str:
    return "0" if d is None else format(d.normalize(), "f")


def check_auth(book: Book, req):
    h = req.headers
    key = h.get("X-BAPI-API-KEY")
    acct = book.accounts.get(key or "")
    if acct is None or acct.exchange != "bybit":
        return None, fail(10003, "API key is invalid."), None
    payload = h.get("X-BAPI-TIMESTAMP", "") + key + h.get("X-BAPI-RECV-WINDOW", "")
    payload += req.body if req.method == "POST" else req.raw_query
    expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(h.get("X-BAPI-SIGN", ""), expected):
        return None, fail(10004, "error sign! origin_string[" + payload + "]"), False
    ts, window = int(h.get("X-BAPI-TIMESTAMP") or 0), int(h.get("X-BAPI-RECV-WINDOW") or 5000)
    if time.time() * 1000 - ts > window:  # processed too late: refused, as the real exchange does
        return None, fail(10002, "invalid request, please check your server timestamp or recv_window param"), True
    return acct, None, True


def handle(book: Book, req):
    if req.path.startswith(PRIVATE_PREFIXES):
        acct, error, sig = check_auth(book, req)
        if error:
            return (*error, sig)
        params = dict(req.params)
        if req.method == "POST":
            params.update(json.loads(req.body or "{}"))
        from tests.fakes import exchange_bybit_futures as linear  # imports this module: imported late

        if linear.is_linear(req, params):
            return (*linear.handle(book, acct, req.path, params), True)
        return (*_private(book, acct, req.path, params), True)
    return (*_public(book, req.path, req.params), None)


def _public(book: Book, p: str, q: dict):
    specs = book.specs["bybit"]
    if p == "/v5/market/time":
        now = time.time()
        return ok({"timeSecond": str(int(now)), "timeNano": str(int(now * 1e9))})
    if p == "/v5/market/instruments-info":
        if q.get("category") == "linear":
            from tests.fakes.exchange_bybit_futures import instruments

            return instruments(book)
        if q.get("category") != "spot":
            return ok({"category": q.get("category"), "list": [], "nextPageCursor": ""})
        return ok({"category": "spot", "list": [instrument(sp) for sp in specs.values()], "nextPageCursor": ""})
    if p == "/v5/market/tickers":
        ids = [q["symbol"]] if q.get("symbol") else list(specs)
        if any(i not in specs for i in ids):
            return fail(10001, "Not supported symbols")
        if q.get("category") == "linear":  # the USDT perpetual: its own last and mark prices, funding rate
            rows = [{**ticker(book, i), "lastPrice": s(book.perp_price(i)), "bid1Price": s(book.perp_price(i)),
                     "ask1Price": s(book.perp_price(i)), "indexPrice": s(book.price(i)),
                     "fundingRate": f"{book.funding_rates.get(i, book.default_funding_rate):.8f}",
                     "markPrice": s(book.mark_price(i)), "openInterest": f"{book.open_interest(i):.3f}",
                     "openInterestValue": s(book.open_interest(i) * book.mark_price(i))} for i in ids]
            return ok({"category": "linear", "list": rows})
        return ok({"category": "spot", "list": [ticker(book, i) for i in ids]})
    if p == "/v5/market/orderbook":
        if q.get("symbol") not in specs:
            return fail(10001, "Not supported symbols")
        bids, asks = book.depth(q["symbol"], min(int(q.get("limit", 1)), 200))
        return ok({"s": q["symbol"], "b": bids, "a": asks, "ts": book.now_ms, "u": 1, "seq": 1, "cts": book.now_ms})
    if p == "/v5/market/kline":
        if q.get("symbol") not in specs:
            return fail(10001, "Not supported symbols")
        if q.get("interval") not in INTERVALS:
            return fail(10001, "Invalid period!")
        tf = INTERVALS[q["interval"]] * 60_000
        limit = min(int(q.get("limit", 200)), 1000)
        start = int(q["start"]) if "start" in q else None
        end = int(q["end"]) if "end" in q else None
        linear = q.get("category") == "linear"  # the perpetual's own bars
        bars = (book.perp_klines if linear else book.klines)(q["symbol"], tf, limit, start, end)
        rows = [[str(t), o, h, lo, c, v, str(Decimal(v) * Decimal(c))] for t, o, h, lo, c, v in reversed(bars)]
        return ok({"symbol": q["symbol"], "category": "linear" if linear else "spot", "list": rows})
    return 404, {"retCode": 10001, "retMsg": f"unknown path {p}"}


def instrument(sp) -> dict:
    return {
        "symbol": sp.symbol, "baseCoin": sp.base, "quoteCoin": sp.quote, "innovation": "0", "status": "Trading",
        "marginTrading": "utaOnly", "stTag": "0",
        "lotSizeFilter": {"basePrecision": s(sp.step), "quotePrecision": s(sp.quote_step),
                          "minOrderQty": s(sp.min_qty), "maxOrderQty": s(sp.max_qty),
                          "minOrderAmt": s(sp.min_notional), "maxOrderAmt": "8000000"},
        "priceFilter": {"tickSize": s(sp.tick)},
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
    }


def ticker(book: Book, symbol_id: str) -> dict:
    bars = book.klines(symbol_id, 60_000, 1440, None, None)
    last = book.price(symbol_id)
    first = Decimal(bars[0][1]) if bars else last
    vol = sum((Decimal(b[5]) for b in bars), Decimal(0))
    return {
        "symbol": symbol_id, "bid1Price": s(last), "bid1Size": "1", "ask1Price": s(last), "ask1Size": "1",
        "lastPrice": s(last), "prevPrice24h": s(first), "price24hPcnt": f"{(last - first) / first:.4f}",
        "highPrice24h": s(max([Decimal(b[2]) for b in bars] + [last])),
        "lowPrice24h": s(min([Decimal(b[3]) for b in bars] + [last])),
        "turnover24h": s(vol * last), "volume24h": s(vol), "usdIndexPrice": s(last),
    }


def order_json(o: Order) -> dict:
    by_quote = o.qty is None
    leaves = Decimal(0) if o.status != "NEW" else (o.qty or Decimal(0)) - o.filled
    return {
        "orderId": o.id, "orderLinkId": o.client_id, "blockTradeId": "", "symbol": o.symbol,
        "price": s(o.price), "qty": s(o.quote_qty if by_quote else o.qty), "side": o.side.capitalize(),
        "isLeverage": "0", "positionIdx": 0, "orderStatus": STATUS[o.status], "cancelType": "UNKNOWN",
        "rejectReason": "EC_NoError", "avgPrice": s(o.cum_quote / o.filled) if o.filled else "",
        "leavesQty": s(leaves), "leavesValue": s(leaves * (o.price or 0)), "cumExecQty": s(o.filled),
        "cumExecValue": s(o.cum_quote), "cumExecFee": s(o.fee),
        "cumFeeDetail": {o.fee_asset: s(o.fee)} if o.fee_asset else {},
        "timeInForce": "IOC" if o.type == "market" else "GTC", "orderType": o.type.capitalize(),
        "stopOrderType": "", "orderIv": "", "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
        "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "",
        "reduceOnly": False, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "",
        "slLimitPrice": "0", "tpLimitPrice": "0", "placeType": "",
        "marketUnit": ("quoteCoin" if by_quote else "baseCoin") if o.type == "market" else "",
        "createdTime": str(o.created), "updatedTime": str(o.updated),
    }


def execution_json(o: Order, t) -> dict:
    return {
        "symbol": o.symbol, "orderId": o.id, "orderLinkId": o.client_id, "side": o.side.capitalize(),
        "orderPrice": s(o.price), "orderQty": s(o.qty), "leavesQty": "0", "createType": "CreateByUser",
        "orderType": o.type.capitalize(), "stopOrderType": "", "execFee": s(t.fee), "feeCurrency": t.fee_asset,
        "execId": str(t.id), "execPrice": s(t.price), "execQty": s(t.qty), "execType": "Trade",
        "execValue": s(t.quote_qty), "execTime": str(t.time), "isMaker": t.is_maker, "feeRate": "0.001",
        "tradeIv": "", "markIv": "", "markPrice": "", "indexPrice": "", "underlyingPrice": "",
        "blockTradeId": "", "closedSize": "", "seq": t.id,
    }


def _mine(book: Book, acct: Account, q: dict, statuses: set[str]) -> list[Order]:
    return [o for o in reversed(book.orders) if o.api_key == acct.api_key and o.status in statuses
            and q.get("symbol") in (None, o.symbol) and q.get("orderId") in (None, o.id)
            and q.get("orderLinkId") in (None, o.client_id)]


def _private(book: Book, acct: Account, p: str, q: dict):
    if p == "/v5/account/wallet-balance":
        coins = [{"coin": a, "walletBalance": s(acct.free.get(a, Decimal(0)) + acct.locked.get(a, Decimal(0))),
                  "locked": s(acct.locked.get(a)), "equity": s(acct.free.get(a, Decimal(0))),
                  "borrowAmount": "0", "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0",
                  "totalPositionMM": "0", "unrealisedPnl": "0", "cumRealisedPnl": "0", "usdValue": "0"}
                 for a in sorted(set(acct.free) | set(acct.locked))]
        return ok({"list": [{"accountType": "UNIFIED", "totalEquity": "0", "totalWalletBalance": "0",
                             "totalAvailableBalance": "0", "coin": coins}]})
    if p == "/v5/user/query-api":
        trade = "trade" in acct.permissions
        return ok({"id": "1", "note": "fake", "apiKey": acct.api_key, "readOnly": 0 if trade else 1, "secret": "",
                   "permissions": {"ContractTrade": ["Order", "Position"] if trade and acct.api_key in
                                   getattr(getattr(book, "futures", None), "accounts", {}) else [], "Spot": ["SpotTrade"] if trade else [], "Wallet": [],
                                   "Options": [], "Derivatives": [], "CopyTrading": [], "BlockTrade": [],
                                   "Exchange": [], "NFT": [], "Earn": []},
                   "ips": ["*"], "type": 1, "deadlineDay": 90, "unified": 0, "uta": 1, "userID": 1, "isMaster": True})
    if p == "/v5/order/create":
        if "trade" not in acct.permissions:
            return fail(10005, "Permission denied, please check your API key permissions.")
        try:
            side, type_ = q["side"].lower(), q["orderType"].lower()
            qty = Decimal(q["qty"])
            by_quote = type_ == "market" and (q.get("marketUnit") == "quoteCoin" or
                                              (side == "buy" and q.get("marketUnit") != "baseCoin"))
            price = Decimal(q["price"]) if q.get("price") else None
            order = book.place(acct, q.get("symbol", ""), side, type_, None if by_quote else qty,
                               qty if by_quote else None, price, q.get("orderLinkId", ""))
        except Reject as r:
            return fail(*CODES.get(r.reason, (10001, r.reason)))
        except (KeyError, ArithmeticError, ValueError):
            return fail(*CODES["bad_param"])
        return ok({"orderId": order.id, "orderLinkId": order.client_id})
    if p == "/v5/order/cancel":
        order = book.find(acct.api_key, q.get("orderId"), q.get("orderLinkId"))
        try:
            if order is None:
                raise Reject("not_found")
            book.cancel(order)
        except Reject:
            return fail(170213, "Order does not exist.")
        return ok({"orderId": order.id, "orderLinkId": order.client_id})
    if p == "/v5/order/realtime":
        return ok({"category": "spot", "list": [order_json(o) for o in _mine(book, acct, q, {"NEW"})],
                   "nextPageCursor": ""})
    if p == "/v5/order/history":
        found = _mine(book, acct, q, {"FILLED", "CANCELED"})
        return ok({"category": "spot", "list": [order_json(o) for o in found], "nextPageCursor": ""})
    if p == "/v5/execution/list":
        rows = [execution_json(o, t) for o in _mine(book, acct, q, {"NEW", "FILLED", "CANCELED"}) for t in o.trades]
        return ok({"category": "spot", "list": rows[: int(q.get("limit", 50))], "nextPageCursor": ""})
    return 404, {"retCode": 10001, "retMsg": f"unknown path {p}"}
