"""The Pareto front of an accuracy-cost trade-off: the points no other point beats on both."""

from __future__ import annotations

import numpy as np


def non_dominated(metric, cost) -> np.ndarray:
    """[N] bool: point i is on the front when no j has metric_j >= metric_i and cost_j <= cost_i with one of the
    two strict (metric maximised, cost minimised; Deb's dominance). NaN metrics are never on it. O(N^2): a search
    has tens of trials."""
    metric, cost = np.asarray(metric, float), np.asarray(cost, float)
    on = np.isfinite(metric)
    for i in np.flatnonzero(on):
        better = (metric >= metric[i]) & (cost <= cost[i]) & ((metric > metric[i]) | (cost < cost[i]))
        on[i] = not better[np.isfinite(metric)].any()
    return on


def spread(order: list, k: int) -> list:
    """At most `k` items of `order` (a front sorted by cost), evenly spaced along it, both ends kept."""
    if len(order) <= k:
        return list(order)
    return [order[i] for i in np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]
