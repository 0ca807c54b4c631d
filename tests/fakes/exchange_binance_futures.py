"""Binance USDⓈ-M futures REST subset (/fapi) for the fake exchange, signed like /api/v3, real error codes."""

from __future__ import annotations

from decimal import Decimal

from tests.fakes.exchange_binance import check_auth, err, klines, s, ticker
from tests.fakes.exchange_book import Book, Order, Reject
from tests.fakes.exchange_futures import ZERO, Futures

CODES = {
    "lot_size": (-1111, "Precision is over the maximum defined for this asset."),
    "min_qty": (-4003, "Quantity less than or equal to zero."),
    "notional": (-4164, "Order's notional must be no smaller than 5 (unless you choose reduce only)."),
    "insufficient_margin": (-2019, "Margin is insufficient."),
    "reduce_only": (-2022, "ReduceOnly Order is rejected."),
    "duplicate": (-4116, "ClientOrderId is duplicated."),
    "unknown_symbol": (-1121, "Invalid symbol."),
    "bad_param": (-1102, "Mandatory parameter was not sent, was empty/null, or malformed."),
    "bad_leverage": (-4028, "Leverage is not valid."),
    "margin_type_same": (-4046, "No need to change margin type."),
    "margin_type_open_position": (-4048, "Margin type cannot be changed if there exists position."),
    "position_side_same": (-4059, "No need to change position side."),
}


def futures(book: Book) -> Futures:
    fut = getattr(book, "futures", None)
    if fut is None:
        fut = book.futures = Futures(book)
    return fut


def handle(book: Book, req):
    p = req.path
    if p == "/fapi/v1/exchangeInfo":
        return 200, exchange_info(book), None
    if p == "/fapi/v1/ping":
        return 200, {}, None
    if p == "/fapi/v1/klines":  # the perpetual's own bars (public)
        return (*klines(book, req.params, book.perp_klines, 1500), None)
    if p in ("/fapi/v1/ticker/24hr", "/fapi/v1/ticker/price"):  # the perpetual's last price (public)
        sym = req.params.get("symbol")
        if sym not in book.specs["binance"]:
            return (*err(400, -1121, "Invalid symbol."), None)
        return 200, perp_ticker(book, sym), None
    acct, error, ok = check_auth(book, req)
    if error:
        return (*error, ok)
    fut = futures(book)
    fut.settle_funding()
    facct = fut.accounts.get(acct.api_key)
    if facct is None or not facct.enabled:  # a key without "Enable Futures"
        return (*err(401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"), True)
    try:
        return (*_private(book, fut, acct, req), True)
    except Reject as r:
        return (*err(400, *CODES.get(r.reason, (-1000, r.reason))), True)
    except (KeyError, ArithmeticError, ValueError):
        return (*err(400, *CODES["bad_param"]), True)


def perp_ticker(book: Book, sym: str) -> dict:
    """The spot ticker's shape with the perpetual's prices (last = spot + basis)."""
    basis = book.perp_basis.get(sym, ZERO)
    out = ticker(book, sym)
    for k in ("lastPrice", "bidPrice", "askPrice", "openPrice", "highPrice", "lowPrice", "prevClosePrice",
              "weightedAvgPrice", "price"):
        out[k] = s(Decimal(out[k]) + basis)
    return out


def exchange_info(book: Book) -> dict:
    symbols = []
    for sp in book.specs["binance"].values():
        symbols.append({
            "symbol": sp.symbol, "pair": sp.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": sp.base, "quoteAsset": sp.quote,
            "marginAsset": sp.quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": s(sp.tick), "maxPrice": "4529764", "tickSize": s(sp.tick)},
                {"filterType": "LOT_SIZE", "minQty": s(sp.min_qty), "maxQty": s(sp.max_qty), "stepSize": s(sp.step)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": s(sp.min_qty), "maxQty": s(sp.max_qty),
                 "stepSize": s(sp.step)},
                {"filterType": "MIN_NOTIONAL", "notional": s(sp.min_notional)},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        })
    return {"timezone": "UTC", "serverTime": book.now_ms, "futuresType": "U_MARGINED", "rateLimits": [],
            "exchangeFilters": [], "assets": [], "symbols": symbols}


def order_json(fut: Futures, o: Order) -> dict:
    return {
        "orderId": int(o.id), "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id, "price": "0",
        "avgPrice": s(o.cum_quote / o.filled if o.filled else ZERO), "origQty": s(o.qty), "executedQty": s(o.filled),
        "cumQty": s(o.filled), "cumQuote": s(o.cum_quote), "timeInForce": "GTC", "type": "MARKET",
        "reduceOnly": getattr(o, "reduce_only", False), "closePosition": False, "side": o.side.upper(),
        "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
        "origType": "MARKET", "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0,
        "time": o.created, "updateTime": o.updated,
    }


def _private(book: Book, fut: Futures, acct, req):
    p, q, m = req.path, req.params, req.method
    key = acct.api_key
    facct = fut.accounts[key]
    if p == "/fapi/v1/order" and m == "POST":
        if "trade" not in acct.permissions:
            return err(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if q.get("type") != "MARKET" or q.get("side") not in ("BUY", "SELL"):
            raise Reject("bad_param", "type")
        reduce_only = str(q.get("reduceOnly", "false")).lower() == "true"
        order = fut.place(key, "binance", q["symbol"], q["side"].lower(), Decimal(q["quantity"]),
                          q.get("newClientOrderId", ""), reduce_only)
        order.reduce_only = reduce_only
        return 200, order_json(fut, order)
    if p == "/fapi/v1/order":
        order = fut.find(key, q.get("orderId"), q.get("origClientOrderId"))
        if order is None or order.symbol != q.get("symbol"):
            return err(400, -2013, "Order does not exist.")
        return 200, order_json(fut, order)
    if p == "/fapi/v1/userTrades":
        out = [{"symbol": o.symbol, "id": t.id, "orderId": int(o.id), "side": o.side.upper(), "price": s(t.price),
                "qty": s(t.qty), "realizedPnl": s(fut.realized.get(o.id, ZERO)), "marginAsset": "USDT",
                "quoteQty": s(t.quote_qty), "commission": s(t.fee), "commissionAsset": t.fee_asset, "time": t.time,
                "positionSide": "BOTH", "buyer": o.side == "buy", "maker": False}
               for o in fut.orders if o.api_key == key and o.symbol == q.get("symbol")
               and q.get("orderId") in (None, o.id) for t in o.trades]
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", book.now_ms))
        out = [r for r in out if start <= r["time"] <= end]
        return 200, out[: int(q.get("limit", 500))]
    if p in ("/fapi/v1/openOrders", "/fapi/v1/allOrders"):
        mine = [o for o in fut.orders if o.api_key == key and q.get("symbol") in (None, o.symbol)]
        return 200, [order_json(fut, o) for o in mine if p.endswith("allOrders") or o.status == "NEW"]
    if p == "/fapi/v1/income":  # the account's funding (and other income), oldest first
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", book.now_ms))
        rows = [{"symbol": f.symbol, "incomeType": "FUNDING_FEE", "income": s(f.amount), "asset": "USDT",
                 "info": "FUNDING_FEE", "time": f.time, "tranId": 9_000_000 + f.id, "tradeId": ""}
                for f in fut.reported(facct) if q.get("symbol") in (None, f.symbol) and start <= f.time <= end]
        if q.get("incomeType") not in (None, "FUNDING_FEE"):
            rows = []
        return 200, rows[: int(q.get("limit", 100))]
    if p == "/fapi/v1/leverageBracket":
        syms = [q["symbol"]] if q.get("symbol") else list(book.specs["binance"])
        return 200, [{"symbol": sym, "brackets": [{"bracket": 1, "initialLeverage": 125, "notionalCap": 50000,
                                                  "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0}]}
                     for sym in syms]
    if p == "/fapi/v1/leverage" and m == "POST":
        fut.set_leverage(key, q["symbol"], int(q["leverage"]))
        return 200, {"symbol": q["symbol"], "leverage": int(q["leverage"]), "maxNotionalValue": "1000000"}
    if p == "/fapi/v1/marginType" and m == "POST":
        fut.set_margin_type(key, q["symbol"], q["marginType"])
        return 200, {"code": 200, "msg": "success"}
    if p == "/fapi/v1/positionSide/dual":
        if m == "POST":
            fut.set_hedge_mode(key, q["dualSidePosition"] == "true")
            return 200, {"code": 200, "msg": "success"}
        return 200, {"dualSidePosition": facct.hedge_mode}
    if p in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
        out = []
        for sym, pos in facct.positions.items():
            if q.get("symbol") not in (None, sym) or (p.startswith("/fapi/v3") and not pos.qty):
                continue
            mark = fut.mark(sym)
            out.append({
                "symbol": sym, "positionSide": "BOTH", "positionAmt": s(pos.qty), "entryPrice": s(pos.entry),
                "breakEvenPrice": s(pos.entry), "markPrice": s(mark), "unRealizedProfit": s((mark - pos.entry) * pos.qty),
                "liquidationPrice": "0", "isolatedMargin": s(abs(pos.qty) * pos.entry / pos.leverage)
                if pos.margin_type == "ISOLATED" else "0", "notional": s(pos.qty * mark), "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": s(abs(pos.qty) * mark / pos.leverage), "maintMargin": "0",
                "positionInitialMargin": s(abs(pos.qty) * mark / pos.leverage), "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": pos.updated,
                "leverage": str(pos.leverage), "marginType": pos.margin_type.lower(),
                "isAutoAddMargin": "false", "maxNotionalValue": "1000000",
            })
        return 200, out
    if p in ("/fapi/v2/account", "/fapi/v3/account", "/fapi/v2/balance", "/fapi/v3/balance"):
        upnl, avail = fut.unrealized(facct), fut.available(facct)
        asset = {"asset": "USDT", "walletBalance": s(facct.wallet), "unrealizedProfit": s(upnl),
                 "marginBalance": s(facct.wallet + upnl), "maintMargin": "0",
                 "initialMargin": s(fut.used_margin(facct)), "positionInitialMargin": s(fut.used_margin(facct)),
                 "openOrderInitialMargin": "0", "crossWalletBalance": s(facct.wallet), "crossUnPnl": s(upnl),
                 "availableBalance": s(avail), "maxWithdrawAmount": s(avail), "updateTime": book.now_ms,
                 "balance": s(facct.wallet)}
        if p.endswith("balance"):
            return 200, [asset]
        return 200, {"totalInitialMargin": asset["initialMargin"], "totalMaintMargin": "0",
                     "totalWalletBalance": s(facct.wallet), "totalUnrealizedProfit": s(upnl),
                     "totalMarginBalance": s(facct.wallet + upnl), "availableBalance": s(avail),
                     "maxWithdrawAmount": s(avail), "canTrade": "trade" in acct.permissions,
                     "assets": [asset], "positions": []}
    return err(404, -1000, f"Unknown path {p}")
