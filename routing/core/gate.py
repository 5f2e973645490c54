"""The learned gate: scores every service in a fleet for a request, and how to train it.

Why a two-tower (bilinear) gate rather than a fixed N-way softmax head: the fleet changes
(services join, leave, get new capabilities) far more often than the gate is retrained. A
fixed output head would need retraining, and re-indexing, on every registry change. Here a
service is scored from what it *is*::

    logit(x, s) = r(x) . e(s) + b(s) + a_type * <type(x), type(s)> + a_cap * <caps(x), caps(s)>
                  + a_w * log(weight(s))

- ``r(x)``: a small MLP over the request features (``features.FEATURE_DIM``);
- ``e(s)``, ``b(s)``: linear in the service's features (hashed type, hashed capabilities,
  log capacity, weight) plus a learned embedding and bias for a hashed bucket of the service
  id. The bucket lets the gate learn what is particular to one service (it was fast for
  "inference" last week); a new service starts from what its features say and the bucket
  (shared with at most a few others by hash collision) is refined at the next retraining;
- the ``a_*`` terms are learned scalars over hashed columns that requests and services share,
  so a type match counts from the first request, before any training. (Every eligible
  service offers all required capabilities, so the capability term only separates services
  in training, where every service of the fleet is a candidate.)

A fresh gate is deterministic (seeded): the bilinear part starts small, so an untrained gate
prefers services of the request's type and, mildly, higher weights; at routing time the engine
subtracts ``headroom_coef * utilisation`` so it leans toward idle services, and the capacity
factor caps how far above its fair share (by capacity) any service may go.

Training (:func:`train_gate`) fits the logit to the outcome: it regresses, with a binary
cross-entropy, the chosen service's logit on a reward in [0, 1] (0 for a failure, else
``exp(-latency / scale)``), so for every request the highest logit is the service expected to
succeed fastest. Unlike imitating the historical choices, this does not copy whatever the
old policy preferred. On top: the Switch Transformer auxiliary load-balancing loss
``N * sum_e f_e * P_e`` and the router z-loss ``mean(logsumexp(logits)^2)``; input jitter
(Switch) and Gaussian noise on the logits (noisy top-k) only in training mode.

Inference does not run torch: :class:`GateScorer` holds a numpy copy of the weights with the
service side precomputed for one snapshot, which is several times faster than a torch forward
for one request (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import contextlib
import io
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from routing.core import features as ft
from routing.core.types import FleetSnapshot, RouteRequest

FORMAT_VERSION = 1
SERVICE_FEATURE_DIM = ft.TYPE_BUCKETS + ft.CAPABILITY_BUCKETS + 3
_NEG = -1e9


@dataclass(frozen=True)
class GateConfig:
    feature_dim: int = ft.FEATURE_DIM
    hidden_dim: int = 64
    embed_dim: int = 32
    id_buckets: int = 256
    seed: int = 0
    # Scale of the random initial weights of the bilinear part (small: priors dominate).
    init_scale: float = 0.05
    # Priors of an untrained gate. Weight is a mild prior only: the capacity factor already
    # shares load by capacity, and a strong weight term would pile load on big services.
    type_affinity_init: float = 0.5
    capability_affinity_init: float = 1.0
    weight_affinity_init: float = 0.25
    # Training-only noise: multiplicative input jitter (Switch) and logit noise (noisy top-k).
    jitter_eps: float = 0.01
    logit_noise_std: float = 0.1
    # At routing time, logits lose headroom_coef * (in-flight / capacity).
    headroom_coef: float = 4.0


@dataclass(frozen=True, slots=True)
class GateExample:
    """One routed request from history with its outcome."""

    request: RouteRequest
    service_id: str
    success: bool
    latency_ms: float | None = None


def service_bucket(service_id: str, buckets: int) -> int:
    return zlib.crc32(b"id:" + service_id.encode("utf-8")) % buckets


def service_features(snapshot: FleetSnapshot) -> np.ndarray:
    """Rows of service features ``(len(snapshot), SERVICE_FEATURE_DIM)``: hashed type one-hot,
    hashed capability multi-hot (same buckets as requests), log capacity, weight, bias."""
    out = np.zeros((len(snapshot), SERVICE_FEATURE_DIM), dtype=np.float32)
    cap_base = ft.TYPE_BUCKETS - ft.CAPABILITY_OFFSET
    for i, spec in enumerate(snapshot.services):
        col = ft.type_column(spec.service_type)
        if col >= 0:
            out[i, col - ft.TYPE_OFFSET] = 1.0
        for col in ft.capability_columns(spec.capabilities):
            out[i, cap_base + col] = 1.0
        out[i, -3] = math.log1p(max(spec.max_capacity, 0)) / 8.0
        out[i, -2] = spec.weight
        out[i, -1] = 1.0
    return out


class Gate(nn.Module):
    """Scores services for requests; see the module docstring for the form of the score."""

    def __init__(self, config: GateConfig | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg = config or GateConfig()
        self.metadata: dict[str, Any] = {}
        g = torch.Generator().manual_seed(cfg.seed)

        def param(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g) * scale)

        s = cfg.init_scale
        self.w1 = param(cfg.feature_dim, cfg.hidden_dim, scale=1 / math.sqrt(cfg.feature_dim))
        self.b1 = nn.Parameter(torch.zeros(cfg.hidden_dim))
        self.w2 = param(cfg.hidden_dim, cfg.embed_dim, scale=s)
        self.b2 = nn.Parameter(torch.zeros(cfg.embed_dim))
        self.ws = param(SERVICE_FEATURE_DIM, cfg.embed_dim, scale=s)
        self.ws_bias = nn.Parameter(torch.zeros(SERVICE_FEATURE_DIM))
        self.id_embed = param(cfg.id_buckets, cfg.embed_dim, scale=s)
        self.id_bias = nn.Parameter(torch.zeros(cfg.id_buckets))
        self.type_affinity = nn.Parameter(torch.tensor(cfg.type_affinity_init))
        self.capability_affinity = nn.Parameter(torch.tensor(cfg.capability_affinity_init))
        self.weight_affinity = nn.Parameter(torch.tensor(cfg.weight_affinity_init))
        self.to(device)

    @property
    def device(self) -> torch.device:
        return self.w1.device

    def service_tensors(self, snapshot: FleetSnapshot) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.from_numpy(service_features(snapshot)).to(self.device)
        buckets = torch.tensor(
            [service_bucket(s.service_id, self.config.id_buckets) for s in snapshot.services],
            dtype=torch.long,
            device=self.device,
        )
        return feats, buckets

    def forward(
        self,
        x: torch.Tensor,
        service_feats: torch.Tensor,
        service_buckets: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(batch, n_services)``; masked-out services get a very negative logit."""
        cfg = self.config
        if self.training and cfg.jitter_eps > 0:
            x = x * torch.empty_like(x).uniform_(1 - cfg.jitter_eps, 1 + cfg.jitter_eps)
        r = torch.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2
        e = service_feats @ self.ws + self.id_embed[service_buckets]
        b = service_feats @ self.ws_bias + self.id_bias[service_buckets]
        type_match = x[:, ft.TYPE_SLICE] @ service_feats[:, : ft.TYPE_BUCKETS].T
        cap_cols = slice(ft.TYPE_BUCKETS, ft.TYPE_BUCKETS + ft.CAPABILITY_BUCKETS)
        cap_match = x[:, ft.CAPABILITY_SLICE] @ service_feats[:, cap_cols].T
        log_weight = torch.log(service_feats[:, -2].clamp_min(1e-6))
        logits = (
            r @ e.T
            + b
            + self.type_affinity * type_match
            + self.capability_affinity * cap_match
            + self.weight_affinity * log_weight
        )
        if self.training and cfg.logit_noise_std > 0:
            logits = logits + torch.randn_like(logits) * cfg.logit_noise_std
        if mask is not None:
            logits = logits.masked_fill(~mask, _NEG)
        return logits

    def scorer(self, snapshot: FleetSnapshot) -> GateScorer:
        return GateScorer(self, snapshot)


# The request columns the affinity terms read: the type and capability blocks, which (with
# the scalars between them) are the first AFFINITY_COLUMNS columns of a feature row.
AFFINITY_COLUMNS = ft.CAPABILITY_OFFSET + ft.CAPABILITY_BUCKETS
assert ft.TYPE_OFFSET == 0


class GateScorer:
    """A numpy copy of a gate with the service side precomputed for one snapshot.

    ``logits(X)`` equals ``Gate.forward`` in eval mode (float32 rounding aside). The second
    layer is folded into the service embeddings, so scoring is::

        h = tanh(x @ w1 + b1)
        logits = [h, x[:, :AFFINITY_COLUMNS]] @ service_matrix + bias

    where ``service_matrix`` stacks ``w2 @ e.T`` (hidden -> services) over the affinity
    weights (request type/capability columns -> services).
    """

    def __init__(self, gate: Gate, snapshot: FleetSnapshot) -> None:
        with torch.no_grad():
            feats, buckets = gate.service_tensors(snapshot)
            e = feats @ gate.ws + gate.id_embed[buckets]  # (n_services, embed)
            bias = feats @ gate.ws_bias + gate.id_bias[buckets] + e @ gate.b2
            bias = bias + gate.weight_affinity * torch.log(feats[:, -2].clamp_min(1e-6))
            affinity = torch.zeros(len(snapshot), AFFINITY_COLUMNS, device=feats.device)
            affinity[:, ft.TYPE_SLICE] = gate.type_affinity * feats[:, : ft.TYPE_BUCKETS]
            cap_cols = slice(ft.TYPE_BUCKETS, ft.TYPE_BUCKETS + ft.CAPABILITY_BUCKETS)
            affinity[:, ft.CAPABILITY_SLICE] = gate.capability_affinity * feats[:, cap_cols]
            matrix = torch.cat([gate.w2 @ e.T, affinity.T], dim=0)
            self.w1 = gate.w1.detach().cpu().numpy().astype(np.float32)
            self.b1 = gate.b1.detach().cpu().numpy().astype(np.float32)
            self.service_matrix = np.ascontiguousarray(matrix.cpu().numpy(), dtype=np.float32)
            self.bias = bias.cpu().numpy().astype(np.float32)
        self.n_services = len(snapshot)
        self.headroom_coef = gate.config.headroom_coef

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(n, n_services)`` for feature rows ``x`` ``(n, feature_dim)``."""
        return by_row_blocks(self._logits, x, self.n_services)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        h = np.tanh(x @ self.w1 + self.b1)
        return (
            np.concatenate([h, x[:, :AFFINITY_COLUMNS]], axis=1) @ self.service_matrix + self.bias
        )


# Large matrix products make OpenBLAS start its worker threads, which spin-wait: on a busy
# 2-core host that made 10,000-row gate scoring 2-5x slower in wall time than blocks of 64
# rows, which stay below its threading threshold and cost nothing extra single-threaded.
ROW_BLOCK = 64


def by_row_blocks(fn, x: np.ndarray, out_cols: int) -> np.ndarray:
    """``fn(x)`` computed in blocks of ``ROW_BLOCK`` rows."""
    if len(x) <= ROW_BLOCK:
        return fn(x)
    out = np.empty((len(x), out_cols), dtype=np.float32)
    for start in range(0, len(x), ROW_BLOCK):
        out[start : start + ROW_BLOCK] = fn(x[start : start + ROW_BLOCK])
    return out


# -- training ---------------------------------------------------------------------------------


def switch_aux_loss(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Switch Transformer load-balancing loss ``N * sum_e f_e * P_e`` (1.0 when balanced).

    f_e: fraction of the batch whose top-1 is e; P_e: mean router probability of e.
    """
    probs = torch.softmax(logits, dim=-1)
    n = logits.shape[-1] if mask is None else mask.any(dim=0).sum().clamp_min(1)
    top1 = probs.argmax(dim=-1)
    f = (
        torch.zeros(logits.shape[-1], device=logits.device).index_add_(
            0, top1, torch.ones_like(top1, dtype=probs.dtype)
        )
        / logits.shape[0]
    )
    return n * torch.sum(f * probs.mean(dim=0))


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss: mean squared logsumexp of the logits."""
    return torch.logsumexp(logits, dim=-1).pow(2).mean()


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-4
    task_loss_coef: float = 1.0
    aux_loss_coef: float = 1e-2
    z_loss_coef: float = 1e-3
    # Reward = exp(-latency / scale) for a success; None: the median successful latency.
    latency_scale_ms: float | None = None
    val_fraction: float = 0.2
    seed: int = 0
    # The gate is tiny: intra-op threads cost more than they gain (much more on a busy
    # 2-core host). None leaves torch's setting alone.
    num_threads: int | None = 1


def outcome_rewards(
    success: np.ndarray, latency_ms: np.ndarray, scale_ms: float | None
) -> tuple[np.ndarray, float]:
    """Reward in [0, 1] per example: 0 for a failure, ``exp(-latency / scale)`` otherwise
    (1.0 when the latency is unknown). Returns the rewards and the scale used."""
    known = success & ~np.isnan(latency_ms)
    if scale_ms is None:
        scale_ms = float(np.median(latency_ms[known])) if known.any() else 1.0
    scale_ms = max(scale_ms, 1e-3)
    lat = np.where(np.isnan(latency_ms), 0.0, latency_ms)
    reward = np.where(success, np.exp(-np.maximum(lat, 0.0) / scale_ms), 0.0)
    return reward.astype(np.float32), scale_ms


def _prepare_examples(examples: Sequence[GateExample], snapshot: FleetSnapshot):
    index = snapshot.index
    kept = [ex for ex in examples if ex.service_id in index]
    x = ft.featurize([ex.request for ex in kept])
    target = np.array([index[ex.service_id] for ex in kept], dtype=np.int64)
    success = np.array([ex.success for ex in kept], dtype=bool)
    latency = np.array(
        [np.nan if ex.latency_ms is None else ex.latency_ms for ex in kept], dtype=np.float64
    )
    return x, target, success, latency, len(examples) - len(kept)


def _losses(gate, x, target, reward, feats, buckets, cfg: TrainConfig):
    logits = gate(x, feats, buckets)
    chosen = logits.gather(1, target[:, None]).squeeze(1)
    task = nn.functional.binary_cross_entropy_with_logits(chosen, reward)
    aux = switch_aux_loss(logits)
    z = router_z_loss(logits)
    total = cfg.task_loss_coef * task + cfg.aux_loss_coef * aux + cfg.z_loss_coef * z
    return total, task, aux, z, logits


def train_gate(
    gate: Gate,
    examples: Sequence[GateExample],
    snapshot: FleetSnapshot,
    config: TrainConfig | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Fit ``gate`` (in place) on history; returns metrics (losses before/after, validation).

    ``snapshot`` gives the services to score; examples for services not in it are skipped.
    Keyword overrides patch ``config`` (``train_gate(g, ex, snap, epochs=5)``).
    """
    cfg = config or TrainConfig()
    if overrides:
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    with torch_threads(cfg.num_threads):
        return _train_gate(gate, examples, snapshot, cfg)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, restoring the previous setting."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_gate(gate, examples, snapshot, cfg: TrainConfig) -> dict[str, Any]:
    x_np, target_np, success, latency, skipped = _prepare_examples(examples, snapshot)
    n = len(target_np)
    if n == 0 or len(snapshot) == 0:
        return {"examples": 0, "skipped": skipped, "trained": False}
    reward_np, scale = outcome_rewards(success, latency, cfg.latency_scale_ms)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(n)
    n_val = int(n * cfg.val_fraction) if n >= 10 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]

    device = gate.device
    feats, buckets = gate.service_tensors(snapshot)
    x = torch.from_numpy(x_np).to(device)
    target = torch.from_numpy(target_np).to(device)
    reward = torch.from_numpy(reward_np).to(device)
    t_idx = torch.from_numpy(train_idx).to(device)
    v_idx = torch.from_numpy(val_idx).to(device)

    def evaluate(idx: torch.Tensor) -> dict[str, float]:
        gate.eval()
        with torch.no_grad():
            total, task, aux, z, _ = _losses(
                gate, x[idx], target[idx], reward[idx], feats, buckets, cfg
            )
        return {
            "loss": total.item(),
            "task_loss": task.item(),
            "aux_loss": aux.item(),
            "z_loss": z.item(),
        }

    before = evaluate(t_idx)
    val_before = evaluate(v_idx) if n_val else {}
    torch_gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # training noise draws from the default generator
    opt = torch.optim.AdamW(gate.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.epochs):
        gate.train()
        perm = t_idx[torch.randperm(len(t_idx), generator=torch_gen).to(device)]
        for start in range(0, len(perm), cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            total, *_ = _losses(gate, x[idx], target[idx], reward[idx], feats, buckets, cfg)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
    gate.eval()
    after = evaluate(t_idx)
    metrics: dict[str, Any] = {
        "trained": True,
        "examples": n,
        "skipped": skipped,
        "train_examples": len(train_idx),
        "val_examples": n_val,
        "epochs": cfg.epochs,
        "latency_scale_ms": scale,
        "loss_initial": before["loss"],
        "loss_final": after["loss"],
        "task_loss_initial": before["task_loss"],
        "task_loss_final": after["task_loss"],
        "aux_loss_final": after["aux_loss"],
        "z_loss_final": after["z_loss"],
    }
    if n_val:
        val_after = evaluate(v_idx)
        metrics.update(
            val_loss_initial=val_before["task_loss"],
            val_loss=val_after["task_loss"],
            **{
                f"val_{k}": v
                for k, v in _decision_quality(
                    gate, x_np[val_idx], target_np[val_idx], reward_np[val_idx], snapshot
                ).items()
            },
        )
    gate.metadata = {**gate.metadata, "metrics": metrics}
    return metrics


def _decision_quality(gate, x, target, reward, snapshot) -> dict[str, float]:
    """How often the gate's top choice is the service that did well (reward >= median)."""
    if len(target) == 0:
        return {}
    top = gate.scorer(snapshot).logits(x).argmax(axis=1)
    good = reward >= np.median(reward)
    agree_good = float((top[good] == target[good]).mean()) if good.any() else 0.0
    return {"agreement_on_good": agree_good, "mean_reward": float(reward.mean())}


def evaluate_gate(
    gate: Gate,
    examples: Sequence[GateExample],
    snapshot: FleetSnapshot,
    latency_scale_ms: float | None = None,
) -> dict[str, float]:
    """Validation metrics of a gate on held-out history (lower ``loss`` is better)."""
    x_np, target_np, success, latency, _ = _prepare_examples(examples, snapshot)
    if len(target_np) == 0:
        return {"examples": 0}
    reward_np, _ = outcome_rewards(success, latency, latency_scale_ms)
    gate.eval()
    feats, buckets = gate.service_tensors(snapshot)
    with torch.no_grad():
        logits = gate(torch.from_numpy(x_np).to(gate.device), feats, buckets)
        chosen = logits.gather(1, torch.from_numpy(target_np).to(gate.device)[:, None])
        loss = nn.functional.binary_cross_entropy_with_logits(
            chosen.squeeze(1), torch.from_numpy(reward_np).to(gate.device)
        ).item()
    return {
        "examples": len(target_np),
        "loss": loss,
        **_decision_quality(gate, x_np, target_np, reward_np, snapshot),
    }


# -- persistence ------------------------------------------------------------------------------


def gate_to_bytes(gate: Gate) -> bytes:
    """Config, weights and metadata in one blob (torch.save; loadable with weights_only)."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": FORMAT_VERSION,
            "kind": "gate",
            "config": asdict(gate.config),
            "state_dict": {k: v.detach().cpu() for k, v in gate.state_dict().items()},
            "metadata": plain_metadata(gate.metadata),
        },
        buf,
    )
    return buf.getvalue()


def gate_from_bytes(blob: bytes, device: str | torch.device = "cpu") -> Gate:
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if payload.get("kind") != "gate" or payload.get("format") != FORMAT_VERSION:
        raise ValueError("not a gate blob of a supported format")
    gate = Gate(GateConfig(**payload["config"]), device="cpu")
    gate.load_state_dict(payload["state_dict"])
    gate.metadata = dict(payload.get("metadata") or {})
    gate.eval()
    return gate.to(device)


def plain_metadata(value: Any) -> Any:
    """Metadata reduced to JSON-like primitives (weights_only loading accepts only those)."""
    if isinstance(value, dict):
        return {str(k): plain_metadata(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_metadata(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
