"""Collective communication times on a chip's links, vectorised.

Sources:
- Patarasuk & Yuan 2009, "Bandwidth optimal all-reduce algorithms for clusters of workstations" (JPDC 69(2)):
  a ring all-reduce moves 2·(n-1)/n x bytes per chip; reduce-scatter or all-gather alone (n-1)/n.
- Narayanan et al. 2021 sec. 3.3 / Shoeybi et al. 2019 (Megatron-LM): tensor-parallel groups sit inside
  one scale-up domain when they fit; otherwise their traffic crosses the scale-out network.
- Thakur, Rabenseifner & Gropp 2005 (IJHPCA 19(1)): latency term of tree/recursive algorithms grows
  with log2(n) messages.
- NVIDIA NVLink SHARP (NCCL NVLS algorithm, 2.18+): the NVSwitch reduces, halving a domain's all-reduce bytes.
  It cannot shrink an all-gather or a reduce-scatter: every chip still receives (or sends) the other chips'
  (n-1)/n of the bytes, so those keep the ring's volume.
- Jia et al. 2018 / NCCL's 2D hierarchical all-reduce: reduce-scatter/all-gather inside each scale-up
  domain, then an all-reduce of the 1/g shards between domains, each chip on its own NIC.
- DeepSeek-V3 technical report (arXiv:2412.19437) sec. 2.1.2 and 3.2.2; DeepEP: an expert-parallel dispatch that
  crosses the scale-out network once per remote domain holding one of a token's experts and fans out inside it over
  the scale-up link; node-limited routing caps the domains a token reaches.
- NVIDIA/nccl src/graph/tuning.cc (commit 01afd20a, the 2021 tuning model), ncclTopoTuneModel: all-gather and reduce-scatter run
  only as rings; their latency is baseLat + (nRanks - nNodes) x the intra-node step + (nNodes - 1) x the network
  step, for the Simple protocol of large messages 8.4 us + 3.4 us per NVLink step + 9.6 us per network step.
- AMD Instinct MI300X platform (8 GPUs, each with 7 Infinity Fabric links of 64 GB/s a direction, one to each
  peer: a full mesh, no switch): a collective among g of the 8 chips reaches g - 1 of a chip's 7 links, (g - 1) / 7
  of its aggregate (`mesh_share`); Huawei's Atlas 800T A2 (HCCS) and Cambricon's MLU370-X8 bridge are meshes too.
- Dally & Towles 2004, "Principles and Practices of Interconnection Networks", ch. 5 (tori): under uniform traffic
  the busiest channel of a k-ary n-cube torus (k even) carries k/8 of what each node injects, so a node sustains at
  most 8b/k of all-to-all traffic (b: one channel, one direction) against the 2n·b its own 2n channels give it.

Bandwidths are bytes/s in one direction per chip; latency is seconds per message.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

# NCCL's ring latency model, Simple protocol (tuning.cc baseLat / hwLat, Ring): s
RING_BASE_S, RING_UP_STEP_S, RING_NET_STEP_S = 8.4e-6, 3.4e-6, 9.6e-6


def mesh_share(members: Array, domain: Array, mesh: Array | float) -> Array | float:
    """The share of a chip's scale-up bandwidth a collective among `members` chips of one domain reaches: 1 on a
    switch; on a full mesh (`mesh` 1: one link to each of the domain's other chips) the links to the other members,
    (members - 1) / (domain - 1), at least one link's share (a point-to-point send, a ring's neighbour)."""
    if not np.any(mesh):  # a switch (or a block without a mesh chip): the whole link, no passes
        return 1.0
    # (a Python float for a scalar count: a numpy float64 scalar would widen a float32 block)
    peers = max(float(members) - 1.0, 1.0) if np.isscalar(members) else np.maximum(members - 1.0, 1.0)
    share = np.minimum(peers / np.maximum(domain - 1.0, 1.0), 1.0)
    return 1.0 + mesh * (share - 1.0)  # a 0/1 blend, in the block's dtype (mesh is 0 or 1)


def latency_steps(n: Array) -> Array:
    """Messages on the critical path, up and down a tree: 2 * ceil(log2(n)) (0 for n <= 1), for
    integer-valued n, in n's dtype. Read from the binary exponent of n - 1 (what np.frexp returns, at a
    third of its cost)."""
    v = np.maximum(np.asarray(n) - 1.0, 0.0)
    if v.dtype == np.float64:
        e = (v.view(np.int64) >> 52) - 1022
    elif v.dtype == np.float32:
        e = (v.view(np.int32) >> 23) - 126
    else:
        e = np.frexp(v)[1]
    return (2 * np.maximum(e, 0)).astype(v.dtype)


class Group:
    """A collective group of n chips whose members sit `stride` ranks apart on scale-up domains of
    `domain` chips. Its per-byte and latency costs are computed once and reused by every collective the
    step issues on it (hierarchical: inside each domain, then between domains on each chip's own NIC).
    A group of one chip costs nothing, whatever its links."""

    def __init__(
        self, n: Array, stride: Array | float, domain: Array, up_bw: Array, out_bw: Array, up_lat: Array,
        out_lat: Array, in_network: Array | float = 0.0, ring: Array | float = 0.0, mesh: Array | float = 0.0,
    ) -> None:
        per_domain = domain if np.isscalar(stride) and stride == 1.0 else np.floor(domain / np.maximum(stride, 1.0))
        g = np.minimum(np.maximum(per_domain, 1.0), n)  # members per domain
        k = np.ceil(n / g)  # domains spanned

        # NCCL's ring latency of one all-gather or reduce-scatter, computed once per group (0 where not a ring)
        no_ring = np.isscalar(ring) and ring == 0.0
        self.ring_s = 0.0 if no_ring else ring * np.where(n > 1, RING_BASE_S + (n - k) * RING_UP_STEP_S
                                                          + (k - 1.0) * RING_NET_STEP_S, 0.0)
        # an all-gather or reduce-scatter moves (g-1)/g of the bytes inside a domain, then (k-1)/k of the 1/g shard
        # between domains; a ring all-reduce twice that, except that a switch that reduces in the network (NVLink
        # SHARP) takes each byte in and gives the sum back once: (g-1)/g inside the domain
        inv_g = 1.0 / g
        up_part = (1.0 - inv_g) / up_bw  # s per byte inside the domain, one all-gather
        if np.any(mesh):
            # on a full mesh the g members reach only their g - 1 links to each other (`mesh_share`): (g - 1) / g of
            # the bytes at (g - 1) / (domain - 1) of the link is (domain - 1) / g, 0 where g = 1 (the min)
            links = mesh * (domain - 1.0)  # 0 on a switch
            up_part = up_part * (1.0 - mesh) + np.minimum(links * inv_g, links * (g - 1.0)) / up_bw
        net_part = (1.0 - 1.0 / k) * inv_g / out_bw  # s per byte between domains, one all-gather
        active = n > 1
        self.per_byte_gather = np.where(active, up_part + net_part, 0.0)
        no_reduction = np.isscalar(in_network) and in_network == 0.0
        reduce_up = up_part if no_reduction else up_part * (1.0 - 0.5 * in_network)
        self.per_byte = np.where(active, 2.0 * (reduce_up + net_part), 0.0)  # s per byte of an all-reduce
        self.latency = latency_steps(g) * up_lat + latency_steps(k) * out_lat  # s per all-reduce (0 when n = 1)
        self.gather_fixed = 0.5 * self.latency + self.ring_s  # s of an all-gather that do not grow with its bytes

    def allreduce(self, nbytes: Array) -> Array:
        """Seconds for an all-reduce of `nbytes` per chip."""
        return nbytes * self.per_byte + self.latency

    def ring_latency(self) -> Array | float:
        """Seconds of latency of one NCCL ring all-gather (or reduce-scatter) on the group: n - 1 steps, the
        domains - 1 of them that cross the network at NCCL's network step, the rest at its NVLink step (0 on chips
        whose collectives are not NCCL/RCCL rings, `ring` = 0)."""
        return self.ring_s

    def allgather(self, nbytes: Array) -> Array:
        """Seconds for an all-gather (or reduce-scatter) of `nbytes`: half a ring all-reduce's volume (each chip
        takes in, or sends out, the other chips' share; no in-network reduction helps) and messages."""
        return nbytes * self.per_byte_gather + self.gather_fixed


def torus_all_to_all(members: Array, dims: Array) -> Array:
    """How much longer an all-to-all among `members` chips takes on a `dims`-dimensional torus (TPU ICI, Trainium's
    NeuronLink) than on a switch that gives every chip the same link bandwidth: max(1, n·k/4), k = members^(1/n) the
    side of the (near-cubic) sub-torus they fill (Dally & Towles ch. 5: 8b/k per node against 2n·b). 1 where `dims`
    is 0 (a switched scale-up domain) or the group is small enough for its chips' own links to be the limit. On a
    TPU v5e pod (16 x 16, four 50 GB/s links per chip) it gives 8: the 1.6 TB/s bisection Google publishes carries
    a quarter of the pod's all-to-all bytes each way. The members are taken to fill a torus with wraparound links,
    the optimistic placement (a sub-block without them, a mesh, halves its bisection again)."""
    n = np.maximum(dims, 1.0)
    side = np.maximum(members, 1.0) ** (1.0 / n)
    return np.where(dims > 0, np.maximum(1.0, n * side / 4.0), 1.0)


def expert_copies(ep: Array, g_ep: Array, k: Array, dedup: Array, groups: Array | None = None,
                  topk_groups: Array | None = None) -> tuple[Array, Array]:
    """(copies per token over the scale-up link, copies per token over the scale-out network) of one expert-parallel
    all-to-all over `ep` chips, `g_ep` of them per scale-up domain, `k` experts per token. Plain: each of a token's k
    copies goes to its expert's chip, 1/ep of them to each peer, those beyond the domain over the network. With
    `dedup` (hierarchical dispatch: DeepEP, HybridEP, DeepSeek-V3 sec. 3.2.2) a token crosses the network once per
    remote domain holding one of its experts and fans out over the scale-up link there: with k experts spread
    evenly over n domains it reaches (n - 1)(1 - (1 - 1/n)^k) remote domains on average, fewer under group-limited
    routing (`groups` expert groups laid out groups/n per domain, at most `topk_groups` per token; DeepSeek-V3 sec.
    2.1.2: the token's groups miss a domain with chance C(G - G/n, M) / C(G, M))."""
    n_dom = np.ceil(ep / g_ep - 1e-9)  # domains the ep group spans
    untouched = (1.0 - 1.0 / n_dom) ** k  # chance a token has no expert in a given domain
    if groups is not None and topk_groups is not None and bool((groups > 0).any()):
        per_dom = groups / n_dom
        limited = (groups > 0) & (np.abs(per_dom - np.round(per_dom)) < 1e-9) & (n_dom > 1)
        miss = np.ones_like(untouched)
        for i in range(int(np.nanmax(np.where(limited, topk_groups, 0.0)))):
            miss = miss * np.where(i < topk_groups, np.maximum(groups - per_dom - i, 0.0) / np.maximum(groups - i, 1.0), 1.0)
        untouched = np.where(limited, np.maximum(untouched, miss), untouched)
    remote = (n_dom - 1.0) * (1.0 - untouched)  # copies per token over the network, deduplicated
    on = dedup * (ep > g_ep)  # 0/1: only where some peers are beyond the domain
    plain_out, plain_up = k * (ep - g_ep) / ep, k * (g_ep - 1.0) / ep
    # 0/1 blends (a multiply, not np.where: cheaper in the cores' hot loops, and keeps a float32 block float32)
    out_copies = plain_out + on * (remote - plain_out)
    up_copies = plain_up + on * (k * (ep - 1.0) / ep - plain_up)  # forwarded copies ride the scale-up link too
    return up_copies, out_copies
