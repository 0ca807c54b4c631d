"""Futures half of the live broker: USDT-M linear perpetuals through ccxt (Binance /fapi, Bybit v5 linear).

One-way position mode; leverage and margin mode set once per (account, symbol) and again only when the pair's
settings change; market orders carry the pair's client order id (stored before sending, as for spot) and every
exit is reduce-only, so an exit can never open a position the other way.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal

import ccxt

from tradebot.exchange.base import Fill
from tradebot.exchange.errors import InvalidOrder, translate
from tradebot.exchange.rules import check_minimums, dec

log = logging.getLogger(__name__)
# "nothing to change" answers: Binance -4059 position side / -4046 margin type, Bybit 110025 / 110026 / 110043
_UNCHANGED = ("-4059", "-4046", "110025", "110026", "110043")


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement the venue booked on the account: `paid` + paid, - received (USDT)."""

    time_ms: int
    paid: Decimal
    venue_id: str


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One fill of the account on a perpetual as the venue reports it (fee in USDT)."""

    order_id: str
    client_order_id: str
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """The exchange's one-way position of a perpetual: side long|short|flat, size in base (>= 0)."""

    side: str
    size: Decimal
    entry_price: Decimal | None


class FuturesOrders:
    """Mixed into LiveBroker (which provides _client, _read, _place, rules, hub, exchange, network)."""

    def _prepared_key(self, symbol: str) -> tuple:
        digest = hashlib.sha256(f"{self._key}\0{self._secret}".encode()).hexdigest()
        return self.exchange, self.network, digest, symbol

    def prepare_futures(self, symbol: str, leverage: int, margin_mode: str) -> None:
        """One-way mode, margin mode and leverage for `symbol`, once (cached in the hub per account)."""
        key = self._prepared_key(symbol)
        want = (int(leverage), margin_mode)
        if self.hub.futures_prepared.get(key) == want:
            return
        client = self._client(True)
        self._quiet(lambda: client.set_position_mode(False, symbol))
        self._quiet(lambda: client.set_margin_mode(margin_mode, symbol))
        self._quiet(lambda: client.set_leverage(int(leverage), symbol))
        self.hub.futures_prepared[key] = want

    def _quiet(self, call) -> None:
        try:
            call()
        except ccxt.MarginModeAlreadySet:
            pass
        except Exception as exc:  # noqa: BLE001 - "already so" answers are fine, anything else is not
            if any(code in str(exc) for code in _UNCHANGED):
                return
            if "-4048" in str(exc) or "110026" in str(exc):
                raise InvalidOrder(f"{self.exchange.capitalize()} cannot change the margin mode while a position is "
                                   f"open; close it on the exchange or keep the current mode.") from exc
            raise translate(exc, self.exchange) from exc

    def futures_order(self, symbol: str, side: str, base_amount: Decimal, client_order_id: str,
                      reduce_only: bool = False, price: Decimal | None = None, liquidation: bool = False,
                      leverage: int | None = None, margin_mode: str | None = None) -> Fill:
        """A market order on a perpetual. `price`/`liquidation` are the paper broker's: live, the engine's
        liquidation guard is a plain reduce-only close at market (the venue's own liquidation is caught by
        reconciliation)."""
        rules = self.rules(symbol)
        if not reduce_only and leverage:
            self.prepare_futures(symbol, leverage, margin_mode or "isolated")
        try:
            amount = Decimal(self._client(True).amount_to_precision(symbol, float(base_amount)))
        except ccxt.InvalidOrder as exc:
            raise InvalidOrder(f"Amount too small for {symbol}") from exc
        if not reduce_only:
            px = self.hub.market_data.mark_price(self.exchange, self.network, symbol)
            check_minimums(rules, amount, amount * px)
        params = {"clientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        return self._place(symbol, rules, client_order_id,
                           lambda c: c.create_order(symbol, "market", side, float(amount), None, params))

    def funding_rate(self, symbol: str) -> Decimal:
        """The venue's current rate of the perpetual (what the engine books at a funding time)."""
        return self.hub.market_data.funding_rate(self.exchange, self.network, symbol)

    FUNDING_PAGE = 100
    FUNDING_WINDOW_MS = 2 * 86_400_000  # <= 48 rows even at hourly funding: a page is never cut short
    FUNDING_PAGES = 8  # per call: 16 days of history; a longer gap is caught up over the next cycles

    def funding_payments(self, symbol: str, since_ms: int, until_ms: int) -> tuple[list[FundingPayment], int]:
        """The funding the venue settled on `symbol` in [since_ms, until_ms], oldest first, and the time up to
        which the history was read (until_ms, or less when the page bound stopped it): Binance GET
        /fapi/v1/income (incomeType FUNDING_FEE, `income` - paid), Bybit v5 /v5/execution/list (execType
        Funding, `execFee` + paid), read window by window until caught up."""
        params = {"incomeType": "FUNDING_FEE"} if self.exchange == "binance" else {}
        client = self._client(True)
        out: dict[str, FundingPayment] = {}
        start, covered = int(since_ms), int(since_ms) - 1
        for _ in range(self.FUNDING_PAGES):
            if start > until_ms:
                break
            end = min(start + self.FUNDING_WINDOW_MS - 1, int(until_ms))
            rows = self._read(lambda s=start, e=end: client.fetch_funding_history(
                symbol, s, self.FUNDING_PAGE, {**params, "until": e}), "fetch_funding_history")
            for r in rows:
                info = r.get("info") or {}
                amount, ts = dec(info.get("income" if self.exchange == "binance" else "execFee")), r.get("timestamp")
                if amount is None or ts is None or not start <= int(ts) <= end:
                    continue
                paid = -amount if self.exchange == "binance" else amount
                key = str(r.get("id") or info.get("tranId") or info.get("execId") or ts)
                out[key] = FundingPayment(int(ts), paid, key)
            if len(rows) >= self.FUNDING_PAGE:  # a full page: go on right after its last row
                last = max(int(r.get("timestamp") or start) for r in rows)
                covered, start = last, last + 1
            else:
                covered, start = end, end + 1
        return sorted(out.values(), key=lambda f: f.time_ms), covered

    FILLS_PAGE = 100
    WEEK_MS = 7 * 86_400_000  # the venues answer trade history for at most 7 days per request

    def account_fills(self, symbol: str, since_ms: int, until_ms: int) -> list[VenueFill]:
        """The account's fills of `symbol` in [since_ms, until_ms] (at most the last 7 days), oldest first:
        ccxt fetch_my_trades (Binance /fapi/v1/userTrades; Bybit /v5/execution/list category=linear, execType
        Trade, and BustTrade / AdlTrade for liquidations and auto-deleveraging). A few pages at most."""
        since = max(int(since_ms), int(until_ms) - self.WEEK_MS + 1)
        kinds = [None] if self.exchange == "binance" else ["Trade", "BustTrade", "AdlTrade"]
        seen: dict[str, VenueFill] = {}
        client = self._client(True)
        for kind in kinds:
            start = since
            for _ in range(5):
                params = {"until": int(until_ms), **({"execType": kind} if kind else {})}
                rows = self._read(lambda s=start, p=params: client.fetch_my_trades(symbol, s, self.FILLS_PAGE, p),
                                  "fetch_my_trades")
                for r in rows:
                    fill = _venue_fill(r)
                    if fill is not None:
                        seen[str(r.get("id") or (fill.order_id, fill.time_ms))] = fill
                if len(rows) < self.FILLS_PAGE:
                    break
                start = max(int(r.get("timestamp") or 0) for r in rows) + 1
        return sorted(seen.values(), key=lambda f: f.time_ms)

    def futures_position(self, symbol: str) -> ExchangePosition:
        """The account's position of `symbol` as the exchange holds it now."""
        positions = self._read(lambda: self._client(True).fetch_positions([symbol]), "fetch_positions")
        for p in positions:
            if p.get("symbol") != symbol:
                continue
            size = abs(dec(p.get("contracts")) or Decimal(0)) * (dec(p.get("contractSize")) or Decimal(1))
            if size > 0:
                side = p.get("side") or ("long" if (dec((p.get("info") or {}).get("positionAmt")) or 0) > 0
                                         else "short")
                return ExchangePosition(side, size, dec(p.get("entryPrice")))
        return ExchangePosition("flat", Decimal(0), None)

    def futures_available(self) -> Decimal:
        """Free USDT of the futures (or unified) account: one signed call, also the permission check."""
        bal = self._read(lambda: self._client(True).fetch_balance(), "fetch_balance")
        return dec((bal.get("free") or {}).get("USDT")) or Decimal(0)


def _venue_fill(r: dict) -> VenueFill | None:
    info = r.get("info") or {}
    if info.get("execType") == "Funding":
        return None
    amount, price = dec(r.get("amount")), dec(r.get("price"))
    if not amount or amount <= 0 or price is None or r.get("side") not in ("buy", "sell"):
        return None
    fee = r.get("fee") or {}
    cost = dec(fee.get("cost")) or Decimal(0)
    if fee.get("currency") not in (None, "USDT"):
        cost = Decimal(0)  # a fee in another coin is not a USDT amount (BNB discounts): not booked as one
    client_id = info.get("orderLinkId") or info.get("clientOrderId") or ""
    return VenueFill(str(r.get("order") or ""), str(client_id), r["side"], amount, price, cost,
                     int(r.get("timestamp") or 0))
