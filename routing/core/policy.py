"""The adaptive policy: a small learned model that picks which concrete strategy to use.

Input: the request's features plus four numbers about the fleet at that moment (mean
utilisation and fraction of services eligible, highest anomaly score, mean error rate).
Output: one logit per concrete strategy, trained like the gate (:func:`train_policy` regresses
the logit of the strategy that was used on the outcome's reward), so the highest logit is the
strategy expected to do best for that context. The softmax of the logits is the policy's
confidence; below the engine's threshold the engine uses :func:`rule_choice` instead. Like the
gate, inference uses a numpy copy of the weights.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from routing.core import features as ft
from routing.core.gate import by_row_blocks, outcome_rewards, plain_metadata, torch_threads
from routing.core.types import RouteRequest

CONCRETE_STRATEGIES = (
    "switch_transformer",
    "top_k",
    "semantic",
    "tda_aware",
    "consistent_hash",
    "power_of_two",
)
CONTEXT_DIM = 4
# Context assumed for history recorded without one: an idle, fully eligible, healthy fleet.
DEFAULT_CONTEXT = (0.0, 1.0, 0.0, 0.0)
FORMAT_VERSION = 1
# Initial output bias: a strategy never tried in the training history keeps a pessimistic
# score, so the policy does not grow confident in what it has no evidence for.
_INITIAL_BIAS = -2.0


@dataclass(frozen=True)
class PolicyConfig:
    feature_dim: int = ft.FEATURE_DIM
    context_dim: int = CONTEXT_DIM
    hidden_dim: int = 32
    strategies: tuple[str, ...] = CONCRETE_STRATEGIES
    seed: int = 0
    # Confidence is softmax(logits / temperature); logits are log-odds of a good outcome,
    # whose gaps are modest, so a temperature below 1 sharpens the preference.
    temperature: float = 0.5


@dataclass(frozen=True, slots=True)
class PolicyExample:
    """One routed request from history: the concrete strategy used and how it went.

    ``context`` is the fleet context at decision time (see :func:`fleet_context`) when it was
    recorded; ``DEFAULT_CONTEXT`` otherwise.
    """

    request: RouteRequest
    strategy: str
    success: bool
    latency_ms: float | None = None
    context: tuple[float, ...] | None = None


class StrategyPolicy(nn.Module):
    def __init__(self, config: PolicyConfig | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = cfg = config or PolicyConfig()
        self.metadata: dict[str, Any] = {}
        g = torch.Generator().manual_seed(cfg.seed)
        d_in = cfg.feature_dim + cfg.context_dim
        self.w1 = nn.Parameter(torch.randn(d_in, cfg.hidden_dim, generator=g) / math.sqrt(d_in))
        self.b1 = nn.Parameter(torch.zeros(cfg.hidden_dim))
        self.w2 = nn.Parameter(torch.randn(cfg.hidden_dim, len(cfg.strategies), generator=g) * 0.01)
        self.b2 = nn.Parameter(torch.full((len(cfg.strategies),), _INITIAL_BIAS))
        self.to(device)
        self._numpy: tuple[np.ndarray, ...] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def numpy_weights(self) -> tuple[np.ndarray, ...]:
        if self._numpy is None:
            self._numpy = tuple(
                p.detach().cpu().numpy().astype(np.float32)
                for p in (self.w1, self.b1, self.w2, self.b2)
            )
        return self._numpy

    def probabilities(self, x: np.ndarray, context: np.ndarray) -> np.ndarray:
        """Softmax over strategies, ``(n, n_strategies)``, for features and contexts."""
        w1, b1, w2, b2 = self.numpy_weights()
        z = by_row_blocks(
            lambda rows: np.tanh(rows @ w1 + b1) @ w2 + b2,
            np.concatenate([x, context], axis=1),
            len(self.config.strategies),
        )
        z = z / self.config.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fleet_context(
    in_flight: np.ndarray,
    capacity: np.ndarray,
    anomaly: np.ndarray,
    error_rate: np.ndarray,
    eligible: np.ndarray,
) -> np.ndarray:
    """The four context numbers, float32 ``(CONTEXT_DIM,)``."""
    n = len(capacity)
    if n == 0 or not eligible.any():
        return np.zeros(CONTEXT_DIM, dtype=np.float32)
    util = in_flight[eligible] / np.maximum(capacity[eligible], 1.0)
    return np.array(
        [util.mean(), eligible.mean(), anomaly.max(), error_rate.mean()], dtype=np.float32
    )


def rule_choice(
    request: RouteRequest,
    anomaly_threshold: float,
    fleet_anomaly: float,
    gate_trained: bool,
) -> tuple[str, str]:
    """The fallback rules: (strategy, why)."""
    if (request.anomaly_score or 0.0) >= anomaly_threshold:
        return "tda_aware", f"request anomaly score >= {anomaly_threshold:g}"
    if fleet_anomaly >= anomaly_threshold:
        return "tda_aware", f"a service has anomaly score >= {anomaly_threshold:g}"
    if request.key is not None:
        return "consistent_hash", "request has an affinity key"
    if request.capabilities:
        return "semantic", "request names required capabilities"
    if gate_trained:
        return "switch_transformer", "a trained gate is loaded"
    return "power_of_two", "no stronger signal: least-cost of two"


def train_policy(
    policy: StrategyPolicy,
    examples: Sequence[PolicyExample],
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    latency_scale_ms: float | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """Fit ``policy`` in place on history; returns metrics (losses before/after, validation)."""
    with torch_threads(num_threads):
        return _train_policy(
            policy,
            examples,
            epochs,
            batch_size,
            lr,
            weight_decay,
            latency_scale_ms,
            val_fraction,
            seed,
        )


def _train_policy(
    policy, examples, epochs, batch_size, lr, weight_decay, latency_scale_ms, val_fraction, seed
) -> dict[str, Any]:
    names = {name: i for i, name in enumerate(policy.config.strategies)}
    kept = [ex for ex in examples if ex.strategy in names]
    n = len(kept)
    if n == 0:
        return {"examples": 0, "skipped": len(examples), "trained": False}
    x = np.concatenate(
        [
            ft.featurize([ex.request for ex in kept]),
            np.array(
                [ex.context or DEFAULT_CONTEXT for ex in kept],
                dtype=np.float32,
            ),
        ],
        axis=1,
    )
    target = np.array([names[ex.strategy] for ex in kept], dtype=np.int64)
    success = np.array([ex.success for ex in kept], dtype=bool)
    latency = np.array([np.nan if ex.latency_ms is None else ex.latency_ms for ex in kept])
    reward, scale = outcome_rewards(success, latency, latency_scale_ms)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(n * val_fraction) if n >= 10 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]

    device = policy.w1.device
    xt = torch.from_numpy(x).to(device)
    tt = torch.from_numpy(target).to(device)
    rt = torch.from_numpy(reward).to(device)

    def loss_on(idx: np.ndarray) -> torch.Tensor:
        i = torch.from_numpy(idx).to(device)
        chosen = policy(xt[i]).gather(1, tt[i][:, None]).squeeze(1)
        return nn.functional.binary_cross_entropy_with_logits(chosen, rt[i])

    with torch.no_grad():
        loss_initial = loss_on(train_idx).item()
        val_initial = loss_on(val_idx).item() if n_val else None
    gen = np.random.default_rng(seed + 1)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = gen.permutation(train_idx)
        for start in range(0, len(perm), batch_size):
            loss = loss_on(perm[start : start + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    policy._numpy = None
    with torch.no_grad():
        metrics: dict[str, Any] = {
            "trained": True,
            "examples": n,
            "skipped": len(examples) - n,
            "epochs": epochs,
            "latency_scale_ms": scale,
            "loss_initial": loss_initial,
            "loss_final": loss_on(train_idx).item(),
        }
        if n_val:
            metrics["val_loss_initial"] = val_initial
            metrics["val_loss"] = loss_on(val_idx).item()
    policy.metadata = {**policy.metadata, "metrics": metrics}
    return metrics


def policy_to_bytes(policy: StrategyPolicy) -> bytes:
    buf = io.BytesIO()
    config = asdict(policy.config)
    config["strategies"] = list(config["strategies"])
    torch.save(
        {
            "format": FORMAT_VERSION,
            "kind": "policy",
            "config": config,
            "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "metadata": plain_metadata(policy.metadata),
        },
        buf,
    )
    return buf.getvalue()


def policy_from_bytes(blob: bytes, device: str | torch.device = "cpu") -> StrategyPolicy:
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if payload.get("kind") != "policy" or payload.get("format") != FORMAT_VERSION:
        raise ValueError("not a policy blob of a supported format")
    config = dict(payload["config"])
    config["strategies"] = tuple(config["strategies"])
    policy = StrategyPolicy(PolicyConfig(**config), device="cpu")
    policy.load_state_dict(payload["state_dict"])
    policy.metadata = dict(payload.get("metadata") or {})
    policy.eval()
    return policy.to(device)
