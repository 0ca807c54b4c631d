"""One INFO line per order sent, filled or failed, for the operator's log (never a secret: ids and amounts).

Called with one line from the cycle, so the lines look the same wherever orders are placed."""

from __future__ import annotations

import logging

from .errors import is_ambiguous

log = logging.getLogger("tradebot.orders")


def _plain(value) -> str:
    return "-" if value is None else format(value, "f")


def order_sent(cfg, req, client_order_id: str, network: str) -> None:
    amount = f"quote={_plain(req.quote_amount)}" if req.quote_amount is not None else f"amount={_plain(req.base_amount)}"
    log.info("order sent: user=%s pair=%s exchange=%s/%s side=%s %s price~%s reason=%s cid=%s",
             cfg.user_id, cfg.symbol, cfg.exchange, network, req.side, amount,
             _plain(req.price_hint) if req.price_hint is not None else "market", req.reason, client_order_id)


def order_filled(cfg, fill) -> None:
    log.info("order filled: user=%s pair=%s exchange=%s side=%s amount=%s price=%s cost=%s fee=%s%s status=%s cid=%s",
             cfg.user_id, cfg.symbol, cfg.exchange, fill.side, _plain(fill.amount), _plain(fill.price),
             _plain(fill.cost), _plain(fill.fee), f" {fill.fee_currency}" if fill.fee_currency else "",
             fill.status, fill.client_order_id)


def order_failed(cfg, req, client_order_id: str, reason) -> None:
    text = getattr(reason, "user_message", None) or (
        type(reason).__name__ if isinstance(reason, BaseException) else str(reason))
    # A timeout may hide an order the exchange did take: it is looked up by client id, never re-sent.
    what = "unclear (looked up by client id next cycle)" if isinstance(reason, BaseException) and is_ambiguous(
        reason) else "failed"
    amount = f"quote={_plain(req.quote_amount)}" if req.quote_amount is not None else f"amount={_plain(req.base_amount)}"
    log.info(f"order {what}: user=%s pair=%s exchange=%s side=%s %s cid=%s reason=%s",
             cfg.user_id, cfg.symbol, cfg.exchange, req.side, amount, client_order_id, text)
