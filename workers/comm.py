"""Collective communication times on a chip's links, vectorised.

Sources:
- Patarasuk & Yuan 2009, "Bandwidth optimal all-reduce algorithms for clusters of workstations" (JPDC 69(2)):
  a ring all-reduce moves 2·(n-1)/n x bytes per chip; reduce-scatter or all-gather alone (n-1)/n.
- Narayanan et al. 2021 sec. 3.3 / Shoeybi et al. 2019 (Megatron-LM): tensor-parallel groups sit inside
  one scale-up domain when they fit; otherwise their traffic crosses the scale-out network.
- Thakur, Rabenseifner & Gropp 2005 (IJHPCA 19(1)): latency term of tree/recursive algorithms grows
  with log2(n) messages.

Bandwidths are bytes/s in one direction per chip; latency is seconds per message.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def _latency_steps(n: Array) -> Array:
    """Messages on the critical path, up and down a tree: 2 * ceil(log2(n)) (0 for n <= 1)."""
    # frexp(n - 1) returns the exponent e with n - 1 < 2**e, i.e. ceil(log2(n)) for integer n >= 1
    return 2.0 * np.frexp(np.maximum(n - 1.0, 0.0))[1]


def allreduce_s(nbytes: Array, n: Array, bw: Array, latency: Array) -> Array:
    """Seconds for an all-reduce of `nbytes` per chip over n chips (0 when n <= 1)."""
    t = 2.0 * (n - 1.0) / np.maximum(n, 1.0) * nbytes / bw + _latency_steps(n) * latency
    return np.where(n > 1, t, 0.0)


def allgather_s(nbytes: Array, n: Array, bw: Array, latency: Array) -> Array:
    """Seconds for an all-gather (or reduce-scatter) whose full result is `nbytes` per chip."""
    t = (n - 1.0) / np.maximum(n, 1.0) * nbytes / bw + 0.5 * _latency_steps(n) * latency
    return np.where(n > 1, t, 0.0)


def p2p_s(nbytes: Array, bw: Array, latency: Array) -> Array:
    """Seconds to send `nbytes` to a neighbour."""
    return nbytes / bw + latency


def group_link(group_span: Array, domain: Array, up_bw: Array, out_bw: Array) -> Array:
    """Bandwidth a group of `group_span` consecutive chips sees: scale-up inside one domain, else scale-out."""
    return np.where(group_span <= domain, up_bw, out_bw)


def hier_allreduce_s(
    nbytes: Array, n: Array, stride: Array, domain: Array, up_bw: Array, out_bw: Array, up_lat: Array, out_lat: Array
) -> Array:
    """All-reduce over a group of n chips whose members sit `stride` ranks apart, hierarchically: a
    reduce-scatter/all-gather inside each scale-up domain, then an all-reduce of the 1/g shards between
    domains, each chip on its own NIC (Jia et al. 2018 / NCCL's 2D hierarchical all-reduce)."""
    g = np.clip(np.floor(domain / np.maximum(stride, 1.0)), 1.0, n)  # group members per domain
    k = np.ceil(n / g)  # domains the group spans
    return allreduce_s(nbytes, g, up_bw, up_lat) + allreduce_s(nbytes / g, k, out_bw, out_lat)


def hier_allgather_s(
    nbytes: Array, n: Array, stride: Array, domain: Array, up_bw: Array, out_bw: Array, up_lat: Array, out_lat: Array
) -> Array:
    """All-gather (or reduce-scatter) of `nbytes` over n chips, hierarchically as `hier_allreduce_s`."""
    g = np.clip(np.floor(domain / np.maximum(stride, 1.0)), 1.0, n)
    k = np.ceil(n / g)
    return allgather_s(nbytes, g, up_bw, up_lat) + allgather_s(nbytes / g, k, out_bw, out_lat)


class Group:
    """A collective group of n chips whose members sit `stride` ranks apart on scale-up domains of
    `domain` chips. Its per-byte and latency costs are computed once and reused by every collective the
    step issues on it (hierarchical: inside each domain, then between domains on each chip's own NIC)."""

    def __init__(
        self, n: Array, stride: Array, domain: Array, up_bw: Array, out_bw: Array, up_lat: Array, out_lat: Array
    ) -> None:
        g = np.clip(np.floor(domain / np.maximum(stride, 1.0)), 1.0, n)  # members per domain
        k = np.ceil(n / g)  # domains spanned
        inner = 2.0 * (g - 1.0) / g  # ring all-reduce factor inside a domain
        outer = 2.0 * (k - 1.0) / k  # ... between domains, on 1/g of the bytes
        self.per_byte = inner / up_bw + outer / (g * out_bw)  # s per byte of an all-reduce
        self.latency = _latency_steps(g) * up_lat + _latency_steps(k) * out_lat  # s per all-reduce
        self.active = n > 1

    def allreduce(self, nbytes: Array) -> Array:
        """Seconds for an all-reduce of `nbytes` per chip."""
        return np.where(self.active, nbytes * self.per_byte + self.latency, 0.0)

    def allgather(self, nbytes: Array) -> Array:
        """Seconds for an all-gather (or reduce-scatter) of `nbytes`: half an all-reduce's volume and messages."""
        return np.where(self.active, 0.5 * (nbytes * self.per_byte + self.latency), 0.0)
