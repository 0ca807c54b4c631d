"""Binance spot REST subset (/api/v3) for the fake exchange, with Binance's real error codes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal

from tests.fakes.exchange_book import Account, Book, Order, Reject

INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "1d": 1440}
FILTERS_MSG = {
    "lot_size": (-1013, "Filter failure: LOT_SIZE"),
    "min_qty": (-1013, "Filter failure: LOT_SIZE"),
    "notional": (-1013, "Filter failure: NOTIONAL"),
    "price_filter": (-1013, "Filter failure: PRICE_FILTER"),
    "precision": (-1111, "Parameter 'quantity' has too much precision."),
    "quote_precision": (-1111, "Parameter 'quoteOrderQty' has too much precision."),
    "insufficient": (-2010, "Account has insufficient balance for requested action."),
    "duplicate": (-2010, "Duplicate order sent."),
    "unknown_symbol": (-1121, "Invalid symbol."),
    "bad_param": (-1102, "Mandatory parameter was not sent, was empty/null, or malformed."),
}
PRIVATE = {"/api/v3/account", "/api/v3/order", "/api/v3/openOrders", "/api/v3/allOrders", "/api/v3/myTrades"}


def err(status: int, code: int, msg: str):
    return status, {"code": code, "msg": msg}


def s(d: Decimal | None) -> str:
    return "0.00000000" if d is None else f"{d:.8f}"


def check_auth(book: Book, req) -> tuple[Account | None, tuple | None, bool | None]:
    """-> (account, error response, signature verified)."""
    key = req.headers.get("X-MBX-APIKEY")
    if not key:
        return None, err(401, -2014, "API-key format invalid."), None
    acct = book.accounts.get(key)
    if acct is None or acct.exchange != "binance":
        return None, err(401, -2015, "Invalid API-key, IP, or permissions for action."), None
    raw = req.raw_query if "signature=" in req.raw_query else req.body
    payload, sep, sig = raw.rpartition("&signature=")
    expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not sep or not hmac.compare_digest(sig, expected):
        return None, err(400, -1022, "Signature for this request is not valid."), False
    # Like the real exchange: a request processed after its recvWindow is refused, so an order
    # delayed in transit can no longer be booked once the window has passed.
    ts, window = int(req.params.get("timestamp", 0)), int(req.params.get("recvWindow", 5000))
    if time.time() * 1000 - ts > window:
        return None, err(400, -1021, "Timestamp for this request is outside of the recvWindow."), True
    return acct, None, True


def handle(book: Book, req):
    """-> (status, json body, signature verified or None for public calls)."""
    p, q = req.path, req.params
    if p in PRIVATE:
        acct, error, ok = check_auth(book, req)
        if error:
            return (*error, ok)
        return (*_private(book, acct, req), True)
    return (*_public(book, p, q), None)


def _public(book: Book, p: str, q: dict):
    if p == "/api/v3/ping":
        return 200, {}
    if p == "/api/v3/time":
        return 200, {"serverTime": int(time.time() * 1000)}
    if p == "/api/v3/exchangeInfo":
        return 200, exchange_info(book)
    if p == "/fapi/v1/premiumIndex":  # the USDⓈ-M perpetual's mark price and funding rate (public)
        sym = q.get("symbol")
        if sym is None:  # every perpetual in one answer
            return 200, [premium_index(book, i) for i in book.specs["binance"]]
        if sym not in book.specs["binance"]:
            return err(400, -1121, "Invalid symbol.")
        return 200, premium_index(book, sym)
    if p == "/fapi/v1/openInterest":  # the USDⓈ-M perpetual's open interest in base units (public)
        sym = q.get("symbol")
        if sym not in book.specs["binance"]:
            return err(400, -1121, "Invalid symbol.")
        return 200, {"symbol": sym, "openInterest": f"{book.open_interest(sym):.3f}", "time": book.now_ms}
    specs = book.specs["binance"]
    if p in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker") and "symbol" not in q:
        # several symbols in one request (symbols=["BTCUSDT",...]), or all of them
        ids = json.loads(q["symbols"]) if q.get("symbols") else list(specs)
        if any(i not in specs for i in ids):
            return err(400, -1121, "Invalid symbol.")
        return 200, [ticker(book, i) for i in ids]
    if p in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        if q.get("symbol") not in specs:
            return err(400, -1121, "Invalid symbol.")
        return 200, ticker(book, q["symbol"])
    if p == "/api/v3/depth":
        if q.get("symbol") not in specs:
            return err(400, -1121, "Invalid symbol.")
        bids, asks = book.depth(q["symbol"], min(int(q.get("limit", 100)), 5000))
        return 200, {"lastUpdateId": 1, "bids": bids, "asks": asks}
    if p == "/api/v3/klines":
        return klines(book, q, book.klines, 1000)
    return err(404, -1000, f"Unknown path {p}")


def klines(book: Book, q: dict, source, max_limit: int):
    """/api/v3/klines (spot bars) or /fapi/v1/klines (the perpetual's own bars): same shape."""
    if q.get("symbol") not in book.specs["binance"]:
        return err(400, -1121, "Invalid symbol.")
    if q.get("interval") not in INTERVALS:
        return err(400, -1120, "Invalid interval.")
    tf = INTERVALS[q["interval"]] * 60_000
    limit = min(int(q.get("limit", 500)), max_limit)
    start = int(q["startTime"]) if "startTime" in q else None
    end = int(q["endTime"]) if "endTime" in q else None
    bars = source(q["symbol"], tf, limit, start, end)
    return 200, [[t, o, h, lo, c, v, t + tf - 1, "0", 0, "0", "0", "0"] for t, o, h, lo, c, v in bars]


def premium_index(book: Book, sym: str) -> dict:
    rate = book.funding_rates.get(sym, book.default_funding_rate)
    nxt = book.now_ms - book.now_ms % 28_800_000 + 28_800_000
    return {"symbol": sym, "markPrice": s(book.mark_price(sym)), "indexPrice": s(book.price(sym)),
            "estimatedSettlePrice": s(book.mark_price(sym)), "lastFundingRate": f"{rate:.8f}",
            "interestRate": "0.00010000", "nextFundingTime": nxt, "time": book.now_ms}


def exchange_info(book: Book) -> dict:
    symbols = []
    for sp in book.specs["binance"].values():
        symbols.append({
            "symbol": sp.symbol, "status": "TRADING", "baseAsset": sp.base, "baseAssetPrecision": 8,
            "quoteAsset": sp.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": s(sp.tick), "maxPrice": "1000000.00000000", "tickSize": s(sp.tick)},
                {"filterType": "LOT_SIZE", "minQty": s(sp.min_qty), "maxQty": s(sp.max_qty), "stepSize": s(sp.step)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": s(sp.max_qty), "stepSize": "0.00000000"},
                {"filterType": "NOTIONAL", "minNotional": s(sp.min_notional), "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        })
    return {"timezone": "UTC", "serverTime": book.now_ms, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}


def ticker(book: Book, symbol_id: str) -> dict:
    bars = book.klines(symbol_id, 60_000, 1440, None, None)
    last = book.price(symbol_id)
    first = Decimal(bars[0][1]) if bars else last
    hi = max([Decimal(b[2]) for b in bars] + [last])
    lo = min([Decimal(b[3]) for b in bars] + [last])
    vol = sum((Decimal(b[5]) for b in bars), Decimal(0))
    return {
        "symbol": symbol_id, "priceChange": s(last - first),
        "priceChangePercent": f"{(last - first) / first * 100:.3f}", "weightedAvgPrice": s(last),
        "prevClosePrice": s(first), "lastPrice": s(last), "lastQty": "0.00100000", "bidPrice": s(last),
        "bidQty": "1.00000000", "askPrice": s(last), "askQty": "1.00000000", "openPrice": s(first),
        "highPrice": s(hi), "lowPrice": s(lo), "volume": s(vol), "quoteVolume": s(vol * last),
        "openTime": bars[0][0] if bars else book.now_ms, "closeTime": book.now_ms, "firstId": 1, "lastId": 2,
        "count": len(bars), "price": s(last),
    }


def order_json(o: Order, full: bool = False) -> dict:
    out = {
        "symbol": o.symbol, "orderId": int(o.id), "orderListId": -1, "clientOrderId": o.client_id,
        "price": s(o.price), "origQty": s(o.qty if o.qty is not None else o.filled), "executedQty": s(o.filled),
        "cummulativeQuoteQty": s(o.cum_quote), "status": o.status, "timeInForce": "GTC", "type": o.type.upper(),
        "side": o.side.upper(), "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": o.created,
        "updateTime": o.updated, "isWorking": True, "workingTime": o.created,
        "origQuoteOrderQty": s(o.quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if full:
        out["transactTime"] = o.created
        out["fills"] = [{"price": s(t.price), "qty": s(t.qty), "commission": s(t.fee),
                         "commissionAsset": t.fee_asset, "tradeId": t.id} for t in o.trades]
    return out


def trade_json(o: Order, t) -> dict:
    return {"symbol": o.symbol, "id": t.id, "orderId": int(o.id), "orderListId": -1, "price": s(t.price),
            "qty": s(t.qty), "quoteQty": s(t.quote_qty), "commission": s(t.fee), "commissionAsset": t.fee_asset,
            "time": t.time, "isBuyer": o.side == "buy", "isMaker": t.is_maker, "isBestMatch": True}


def _private(book: Book, acct: Account, req):
    p, q, m = req.path, req.params, req.method
    if p == "/api/v3/account":
        assets = sorted(set(acct.free) | set(acct.locked))
        return 200, {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": "trade" in acct.permissions, "canWithdraw": False, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": book.now_ms,
            "accountType": "SPOT", "permissions": ["SPOT"], "uid": abs(hash(acct.api_key)) % 10**9,
            "balances": [{"asset": a, "free": s(acct.free.get(a)), "locked": s(acct.locked.get(a))} for a in assets],
        }
    if p == "/api/v3/order" and m == "POST":
        if "trade" not in acct.permissions:
            return err(401, -2015, "Invalid API-key, IP, or permissions for action.")
        try:
            qty = Decimal(q["quantity"]) if "quantity" in q else None
            quote = Decimal(q["quoteOrderQty"]) if "quoteOrderQty" in q else None
            price = Decimal(q["price"]) if "price" in q else None
            side, type_ = q["side"].lower(), q["type"].lower()
            if type_ == "market" and side == "sell" and qty is None:
                raise Reject("bad_param", "quantity")
            order = book.place(acct, q.get("symbol", ""), side, type_, qty, quote, price, q.get("newClientOrderId", ""))
        except Reject as r:
            return err(400, *FILTERS_MSG.get(r.reason, (-1013, r.reason)))
        except (KeyError, ArithmeticError, ValueError):
            return err(400, *FILTERS_MSG["bad_param"])
        return 200, order_json(order, full=q.get("newOrderRespType", "FULL") == "FULL")
    if p == "/api/v3/order":  # GET or DELETE
        order = book.find(acct.api_key, q.get("orderId"), q.get("origClientOrderId"))
        if order is None or order.symbol != q.get("symbol"):
            return err(400, -2013, "Order does not exist.") if m == "GET" else err(400, -2011, "Unknown order sent.")
        if m == "DELETE":
            try:
                book.cancel(order)
            except Reject:
                return err(400, -2011, "Unknown order sent.")
        return 200, order_json(order)
    if p in ("/api/v3/openOrders", "/api/v3/allOrders"):
        mine = [o for o in book.orders if o.api_key == acct.api_key and q.get("symbol") in (None, o.symbol)]
        if p == "/api/v3/openOrders":
            mine = [o for o in mine if o.status == "NEW"]
        return 200, [order_json(o) for o in mine]
    if p == "/api/v3/myTrades":
        out = [trade_json(o, t) for o in book.orders if o.api_key == acct.api_key and o.symbol == q.get("symbol")
               and q.get("orderId") in (None, o.id) for t in o.trades]
        return 200, out[-int(q.get("limit", 500)):]
    return err(404, -1000, f"Unknown path {p}")
