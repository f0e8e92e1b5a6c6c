"""Order filling for :mod:`alphazoo.contrib.algorithm`: market-on-close fills, fees and a
leverage-1 account's buying power (the rules are in that module's docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from ._lean_types import Order, Portfolio, Security, is_number

__all__ = ["Broker"]


class Broker:
    """Fills an algorithm's orders against its ``portfolio`` at its ``securities``' last close.

    ``clock()`` stamps each order with the algorithm's time; ``refusal()`` is the reason orders
    are refused now (in ``initialize``, during warm-up), or None; ``log_error(message)`` logs a
    rejected order. ``orders`` lists every order, filled or invalid.
    """

    def __init__(self, portfolio: Portfolio, securities: dict[str, Security], *,
                 clock: Callable[[], datetime], refusal: Callable[[], str | None],
                 log_error: Callable[[str], None]) -> None:
        self.portfolio, self.securities = portfolio, securities
        self.fee_rate = 0.0
        self.fractional = False
        self.orders: list[Order] = []
        self._clock, self._refusal, self._log_error = clock, refusal, log_error

    def set_holdings(self, symbol: str, percentage: float, liquidate_existing_holdings: bool,
                     tag: str) -> Order | None:
        """Trade ``symbol`` to ``percentage`` of the portfolio value, scaled down to what
        buying power allows (see ``Algorithm.set_holdings``)."""
        if not is_number(percentage) or not -1.0 <= percentage <= 1.0:
            raise ValueError(f"set_holdings() takes a fraction between -1 and 1 (negative is "
                             f"short; no leverage), got {percentage!r}")
        security = self.security(symbol)
        if liquidate_existing_holdings:
            for other in [s for s, h in self.portfolio.items() if h.invested and s != symbol]:
                self.liquidate(other, "Liquidated")
        target = float(percentage) * self.portfolio.total_portfolio_value / security.price
        delta = self._round(target) - self.portfolio[symbol].quantity
        if delta == 0:
            return None
        allowed = self._round(self._max_quantity(symbol, delta))
        return self._fill(symbol, math.copysign(allowed, delta), tag) if allowed else None

    def market_order(self, symbol: str, quantity: float, tag: str) -> Order | None:
        """Buy or sell ``quantity`` now; beyond buying power: an ``"invalid"`` order."""
        security = self.security(symbol)
        if not is_number(quantity) or not math.isfinite(quantity):
            raise ValueError(f"market_order() needs a finite quantity, got {quantity!r}")
        if not self.fractional and quantity != int(quantity):
            raise ValueError(f"quantity {quantity} is not a whole number of shares; "
                             "run_backtest(..., fractional=True) allows fractions")
        if quantity == 0:
            return None
        if abs(quantity) > self._max_quantity(symbol, quantity) + 1e-9:
            return self._reject(security, quantity, tag, "insufficient buying power")
        return self._fill(symbol, float(quantity), tag)

    def liquidate(self, symbol: str | Sequence[str] | None, tag: str) -> list[Order]:
        """Close the position in ``symbol`` (one or a list), or every position."""
        symbols = (list(self.portfolio) if symbol is None
                   else [symbol] if isinstance(symbol, str) else list(symbol))
        orders = []
        for name in symbols:
            if name not in self.securities:
                self.security(name)  # raises: not added
            # Only a position needs a price, and it has one: a symbol whose first bar has not
            # closed yet holds nothing to close.
            quantity = self.portfolio[name].quantity
            if quantity:
                orders.append(self._fill(name, -quantity, tag))
        return orders

    def security(self, symbol: str) -> Security:
        """The added ``symbol``'s security; ValueError if not added or not priced yet."""
        if symbol not in self.securities:
            raise ValueError(f"{symbol!r} was not added: call self.add_equity({str(symbol)!r}) "
                             "in initialize first")
        security = self.securities[symbol]
        if not security.has_data:
            raise ValueError(f"{symbol!r} has no price yet at {self._clock()}: no bar has closed")
        return security

    def _round(self, quantity: float) -> float:
        return float(quantity) if self.fractional else float(math.trunc(quantity))

    def _max_quantity(self, symbol: str, delta: float) -> float:
        # The largest |order| in delta's direction with gross exposure <= equity after the fee;
        # the part of an order that only reduces the position is always allowed.
        holding, price = self.portfolio[symbol], self.securities[symbol].price
        quantity, size = holding.quantity, abs(delta)
        reducing = quantity * delta < 0
        free = abs(quantity) if reducing else 0.0
        if size <= free:
            return size
        others = self.portfolio.gross_exposure - abs(holding.holdings_value)
        held = -abs(quantity) if reducing else abs(quantity)
        bound = (self.portfolio.total_portfolio_value - others - held * price) / (
            price * (1.0 + self.fee_rate))
        return min(size, max(bound, free))

    def _fill(self, symbol: str, quantity: float, tag: str) -> Order:
        security = self.securities[symbol]
        # As in LEAN: an order in initialize would fill before the start, out of the backtest.
        refused = self._refusal()
        if refused is not None:
            return self._reject(security, quantity, tag, refused)
        holding, price = self.portfolio[symbol], security.price
        fee = self.fee_rate * abs(quantity) * price
        before, after = holding.quantity, holding.quantity + quantity
        if after == 0:
            holding.average_price = 0.0
        elif before == 0 or (before > 0) != (after > 0):
            holding.average_price = price
        elif abs(after) > abs(before):
            holding.average_price = (holding.average_price * abs(before)
                                     + price * abs(quantity)) / abs(after)
        holding.quantity = after
        self.portfolio.cash -= quantity * price + fee
        self.portfolio.total_fees += fee
        order = Order(len(self.orders) + 1, self._clock(), str(symbol), quantity, price, fee,
                      tag=tag)
        self.orders.append(order)
        return order

    def _reject(self, security: Security, quantity: float, tag: str, why: str) -> Order:
        order = Order(len(self.orders) + 1, self._clock(), str(security.symbol), quantity,
                      security.price, 0.0, "invalid", tag, why)
        self.orders.append(order)
        self._log_error(f"order {order.id} ({quantity:+g} {security.symbol}) is invalid: {why}")
        return order
