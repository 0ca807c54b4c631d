"""Bybit v5 linear (USDT perpetuals, category=linear) for the fake exchange: instruments, orders with
orderLinkId and reduceOnly, order lookups, executions, positions, leverage and margin/position mode, with
Bybit's real retCodes (110017 reduce-only, 110007 insufficient balance)."""

from __future__ import annotations

from decimal import Decimal

from tests.fakes.exchange_binance_futures import futures
from tests.fakes.exchange_book import Book, Order, Reject
from tests.fakes.exchange_bybit import STATUS, fail, ok, s
from tests.fakes.exchange_futures import TAKER_FEE, ZERO

CODES = {
    "lot_size": (10001, "Qty invalid"),
    "min_qty": (10001, "The number of contracts is below the minimum allowed."),
    "notional": (110094, "Order does not meet minimum order value 5USDT"),
    "insufficient_margin": (110007, "ab not enough for new order"),
    "reduce_only": (110017, "current position is zero, cannot fix reduce-only order qty"),
    "duplicate": (110072, "OrderLinkedID is duplicate"),
    "unknown_symbol": (10001, "params error: symbol invalid"),
    "bad_param": (10001, "params error"),
    "bad_leverage": (10001, "leverage invalid"),
    "margin_type_same": (110026, "Cross/isolated margin mode is not modified"),
    "position_side_same": (110025, "Position mode is not modified"),
}


def is_linear(req, params: dict) -> bool:
    return params.get("category") == "linear" or req.path.startswith("/v5/position/") or \
        req.path == "/v5/account/set-margin-mode"


def instruments(book: Book):
    rows = []
    for sp in book.specs["bybit"].values():
        rows.append({
            "symbol": sp.symbol, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": sp.base,
            "quoteCoin": sp.quote, "settleCoin": sp.quote, "launchTime": "1585526400000", "deliveryTime": "0",
            "deliveryFeeRate": "", "priceScale": "2", "fundingInterval": 480, "copyTrading": "both",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": s(sp.tick), "maxPrice": "1999999", "tickSize": s(sp.tick)},
            "lotSizeFilter": {"maxOrderQty": s(sp.max_qty), "minOrderQty": s(sp.min_qty), "qtyStep": s(sp.step),
                              "postOnlyMaxOrderQty": s(sp.max_qty), "maxMktOrderQty": s(sp.max_qty),
                              "minNotionalValue": s(sp.min_notional)},
            "unifiedMarginTrade": True, "isPreListing": False,
        })
    return ok({"category": "linear", "list": rows, "nextPageCursor": ""})


def order_json(o: Order) -> dict:
    return {
        "orderId": o.id, "orderLinkId": o.client_id, "blockTradeId": "", "symbol": o.symbol, "price": "0",
        "qty": s(o.qty), "side": o.side.capitalize(), "isLeverage": "", "positionIdx": 0,
        "orderStatus": STATUS[o.status], "cancelType": "UNKNOWN", "rejectReason": "EC_NoError",
        "avgPrice": s(o.cum_quote / o.filled) if o.filled else "", "leavesQty": "0", "leavesValue": "0",
        "cumExecQty": s(o.filled), "cumExecValue": s(o.cum_quote), "cumExecFee": s(o.fee),
        "timeInForce": "IOC", "orderType": "Market", "stopOrderType": "", "orderIv": "", "triggerPrice": "",
        "takeProfit": "", "stopLoss": "", "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0,
        "triggerBy": "", "lastPriceOnCreated": "", "reduceOnly": getattr(o, "reduce_only", False),
        "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "",
        "tpLimitPrice": "", "slLimitPrice": "", "placeType": "", "createdTime": str(o.created),
        "updatedTime": str(o.updated),
    }


def handle(book: Book, acct, p: str, q: dict):
    """A signed linear request of `acct` (auth checked by exchange_bybit)."""
    fut = futures(book)
    fut.settle_funding()
    facct = fut.accounts.get(acct.api_key)
    if facct is None or not facct.enabled:
        return fail(10005, "Permission denied, please check your API key permissions.")
    try:
        return _private(book, fut, facct, acct, p, q)
    except Reject as r:
        return fail(*CODES.get(r.reason, (10001, r.reason)))
    except (KeyError, ArithmeticError, ValueError):
        return fail(*CODES["bad_param"])


def _private(book: Book, fut, facct, acct, p: str, q: dict):
    key = acct.api_key
    if p == "/v5/order/create":
        if "trade" not in acct.permissions:
            return fail(10005, "Permission denied, please check your API key permissions.")
        if q.get("orderType") != "Market":
            raise Reject("bad_param", "orderType")
        reduce_only = str(q.get("reduceOnly", "false")).lower() == "true"
        order = fut.place(key, "bybit", q["symbol"], q["side"].lower(), Decimal(str(q["qty"])),
                          q.get("orderLinkId", ""), reduce_only)
        order.reduce_only = reduce_only
        return ok({"orderId": order.id, "orderLinkId": order.client_id})
    if p in ("/v5/order/realtime", "/v5/order/history"):
        want = {"NEW"} if p.endswith("realtime") else {"FILLED", "CANCELED"}
        found = [o for o in reversed(fut.orders) if o.api_key == key and o.status in want
                 and q.get("symbol") in (None, o.symbol) and q.get("orderId") in (None, o.id)
                 and q.get("orderLinkId") in (None, o.client_id)]
        return ok({"category": "linear", "list": [order_json(o) for o in found], "nextPageCursor": ""})
    if p == "/v5/execution/list":  # trades and funding settlements (execType filters), newest first
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", book.now_ms))
        rows = [{"symbol": f.symbol, "orderId": "", "orderLinkId": "", "side": "Buy" if f.amount < 0 else "Sell",
                 "orderPrice": "0", "orderQty": "0", "leavesQty": "0", "orderType": "UNKNOWN",
                 "execFee": s(-f.amount), "feeCurrency": "USDT", "execId": f"funding-{f.id}",
                 "execPrice": s(fut.mark(f.symbol)), "execQty": "0", "execType": "Funding", "execValue": "0",
                 "execTime": str(f.time), "isMaker": False, "feeRate": s(f.rate), "closedSize": "", "seq": f.id}
                for f in fut.reported(facct) if q.get("symbol") in (None, f.symbol) and start <= f.time <= end
                and q.get("execType") in (None, "Funding") and q.get("orderId") is None]
        rows += [{"symbol": o.symbol, "orderId": o.id, "orderLinkId": o.client_id, "side": o.side.capitalize(),
                  "orderPrice": "0", "orderQty": s(o.qty), "leavesQty": "0", "orderType": "Market",
                  "execFee": s(t.fee), "feeCurrency": "USDT", "execId": str(t.id), "execPrice": s(t.price),
                  "execQty": s(t.qty), "execType": "Trade", "execValue": s(t.quote_qty), "execTime": str(t.time),
                  "isMaker": False, "feeRate": s(TAKER_FEE), "closedSize": "", "seq": t.id}
                 for o in fut.orders if o.api_key == key and q.get("symbol") in (None, o.symbol)
                 and q.get("orderId") in (None, o.id) and q.get("execType") in (None, "Trade")
                 for t in o.trades if start <= t.time <= end]
        rows.sort(key=lambda r: int(r["execTime"]), reverse=True)
        return ok({"category": "linear", "list": rows[: int(q.get("limit", q.get("size", 50)))],
                   "nextPageCursor": ""})
    if p == "/v5/position/list":
        rows = []
        for sym, pos in facct.positions.items():
            if q.get("symbol") not in (None, sym):
                continue
            mark = fut.mark(sym)
            rows.append({
                "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": sym,
                "side": "" if not pos.qty else "Buy" if pos.qty > 0 else "Sell", "size": s(abs(pos.qty)),
                "avgPrice": s(pos.entry), "positionValue": s(abs(pos.qty) * pos.entry),
                "tradeMode": 1 if pos.margin_type == "ISOLATED" else 0, "autoAddMargin": 0,
                "positionStatus": "Normal", "leverage": str(pos.leverage), "markPrice": s(mark), "liqPrice": "",
                "bustPrice": "", "positionIM": s(abs(pos.qty) * pos.entry / pos.leverage), "positionMM": "0",
                "positionBalance": "0", "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
                "unrealisedPnl": s((mark - pos.entry) * pos.qty), "curRealisedPnl": "0", "cumRealisedPnl": "0",
                "adlRankIndicator": 0, "createdTime": str(pos.updated), "updatedTime": str(pos.updated),
                "seq": 1, "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
            })
        return ok({"category": "linear", "list": rows, "nextPageCursor": ""})
    if p == "/v5/position/set-leverage":
        lev = Decimal(str(q["buyLeverage"]))
        pos = fut.position(key, q["symbol"])
        if pos.leverage == int(lev):
            return fail(110043, "Set leverage not modified")
        fut.set_leverage(key, q["symbol"], int(lev))
        return ok({})
    if p == "/v5/position/switch-mode":
        fut.set_hedge_mode(key, str(q.get("mode")) == "3")
        return ok({})
    if p == "/v5/account/set-margin-mode":  # a unified account's mode, for all its positions
        mode = "ISOLATED" if q.get("setMarginMode") == "ISOLATED_MARGIN" else "CROSSED"
        if any(pos.qty for pos in facct.positions.values()):
            return fail(3400045, "Set margin mode failed: positions exist")
        facct.margin_mode = mode
        for pos in facct.positions.values():
            pos.margin_type = mode
        return ok({"reasons": []})
    return 404, {"retCode": 10001, "retMsg": f"unknown path {p}"}


__all__ = ["ZERO", "handle", "instruments", "is_linear"]
