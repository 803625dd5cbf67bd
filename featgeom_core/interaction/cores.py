"""Section cores that know their own Jacobian.

Every LIB quantity is built from one per-sample Jacobian: that of ``x -> core(x @ A) @ G`` for a
section ``core(x @ linear_in) @ linear_out`` read in some input coordinates (``A = C_in_pinv @
linear_in``) and output coordinates (``G = linear_out @ C_out``). A generic core gets it from a
vmapped reverse pass, one output row at a time (``jacobians.pullbacks``). The cores here return it
in closed form, contracting ``A`` and ``G`` into small per-head or per-neuron matrices first, so the
large (rows x samples x positions x pre-width) intermediate of a backward pass never exists:

- :class:`Positionwise`: an elementwise function of each coordinate (a ReLU on some coordinates,
  identity on the rest), so the Jacobian is ``A diag(f'(pre)) G`` at each position;
- :class:`LastQueryAttention`: attention read only at the last position, as in the
  modular-addition model.

``jacobian(x, A, G, points)`` takes the integration points of ``jacobians.integration_points``
and returns the weighted sum of the Jacobians at ``alpha * x``. Both are checked against autograd
in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass(frozen=True)
class Positionwise:
    """ReLU on coordinates ``start..stop`` of the pre-activation, identity elsewhere.

    ``jacobian`` returns (B, T, rows, n_in): the Jacobian at each position, which is block
    diagonal over positions (output position t depends only on input position t).
    """

    start: int
    stop: int
    positionwise: ClassVar[bool] = True

    def _relu_mask(self, width: int, device: torch.device) -> torch.Tensor:
        index = torch.arange(width, device=device)
        return (index >= self.start) & (index < self.stop)

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        # torch.where, not slices and a cat: elementwise, so a vmapped backward stays elementwise too
        return torch.where(self._relu_mask(pre.shape[-1], pre.device), torch.relu(pre), pre)

    def derivative(self, pre: torch.Tensor) -> torch.Tensor:
        """f'(pre), same shape as pre."""
        mask = self._relu_mask(pre.shape[-1], pre.device)
        return torch.where(mask, (pre > 0).to(pre.dtype), torch.ones((), dtype=pre.dtype))

    def jacobian(self, x: torch.Tensor, A: torch.Tensor, G: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
        """x (B, T, n_in), A (n_in, m), G (m, rows) -> (B, T, rows, n_in)."""
        return (self._slope(x, A, points).unsqueeze(-2) * G.T) @ A.T

    def gram(self, x: torch.Tensor, A: torch.Tensor, G: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
        """sum over samples, positions and rows of J^T J, (n_in, n_in), without forming J:
        A ((D^T D) * (G G^T)) A^T with D the (samples x positions, m) slopes."""
        slope = self._slope(x, A, points).reshape(-1, A.shape[1])
        return A @ ((slope.T @ slope) * (G @ G.T)) @ A.T

    def _slope(self, x: torch.Tensor, A: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
        """The integrated slopes at pre = x @ A, with pre-activations that are zero up to rounding
        set to exactly zero. Such zeros are common: a ReLU layer's output is often exactly zero on a
        whole block of the next layer's inputs, and read back through a basis (x = f C, A = C^+ W)
        the zero comes back as +-1e-16, whose sign would otherwise choose the slope (and with it the
        constant direction's edges) at random. The rounding bound n eps max|x| sum|A| bounds
        n eps |x| @ |A| without a second matrix product on this hot path."""
        pre = x @ A
        rounding = x.abs().amax(-1, keepdim=True) * A.abs().sum(0) * (4 * x.shape[-1] * torch.finfo(pre.dtype).eps)
        pre = torch.where(pre.abs() <= rounding, torch.zeros((), dtype=pre.dtype), pre)
        return torch.stack([weight * self.derivative(alpha * pre) for alpha, weight in points]).sum(dim=0)


@dataclass(frozen=True)
class LastQueryAttention:
    """``[q, k, v, x, 1]`` at every position -> ``[z, c, x, 1]`` at the last: the last position's
    query attends over all positions; z = pattern-weighted values (heads x d_head), c = each head's
    pattern-weighted constant (which carries the folded output bias), x and 1 passed through.

    ``jacobian`` returns (B, 1, rows, S, n_in).
    """

    n_heads: int
    d_head: int
    positionwise: ClassVar[bool] = False

    def _split(self, pre: torch.Tensor) -> tuple[torch.Tensor, ...]:
        width = self.n_heads * self.d_head
        return pre.split([width, width, width, pre.shape[-1] - 3 * width - 1, 1], dim=-1)

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        # one split rather than several slices: under a vmapped backward each slice zero-fills a
        # full-width gradient, the split fills one
        n, p, _ = pre.shape
        q, k, v, x, one = self._split(pre)
        pattern = self._pattern(q[:, -1].reshape(n, self.n_heads, self.d_head), k.reshape(n, p, self.n_heads, self.d_head))
        z = torch.einsum("nhp,nphe->nhe", pattern, v.reshape(n, p, self.n_heads, self.d_head)).reshape(n, 1, -1)
        constant = torch.einsum("nhp,np->nh", pattern, one[..., 0]).reshape(n, 1, self.n_heads)
        return torch.cat([z, constant, x[:, -1:], one[:, -1:]], dim=-1)

    def _pattern(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.einsum("nhe,nphe->nhp", q, k) / math.sqrt(self.d_head), dim=-1)

    def jacobian(self, x: torch.Tensor, A: torch.Tensor, G: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
        """x (B, S, n_in), A (n_in, 3 H e + d_x + 1), G (H e + H + d_x + 1, rows) -> (B, 1, rows, S, n_in)."""
        H, e = self.n_heads, self.d_head
        width = H * e
        A_q, A_k, A_v, A_x, A_1 = self._split(A)
        G_z, G_c, G_x, G_1 = G.split([width, H, A_x.shape[1], 1], dim=0)
        # pathways that do not depend on x, contracted once: values and the constant into each head,
        # and the pass-through of x and 1 at the last position
        W_v = torch.einsum("jhe,her->hjr", A_v.reshape(-1, H, e), G_z.reshape(H, e, -1))
        W_c = torch.einsum("j,hr->hjr", A_1[:, 0], G_c)
        W_last = A_x @ G_x + A_1 @ G_1
        total = None
        for alpha, weight in points:
            J = self._jacobian_at(alpha * x, A_q, A_k, A_v, A_1, G_z, G_c, W_v + W_c, W_last)
            total = J * weight if total is None else total + J * weight
        assert total is not None, "an integration rule has at least one point"
        return total

    def masked_columns(self, x: torch.Tensor, A: torch.Tensor, G: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Each output direction's value when it sees only its kept inputs: column i of
        ``core((x * masks[i]) @ A) @ G``, for x (N, S, n_in), A (n_in, 3 H e + d_x + 1),
        G (H e + H + d_x + 1, n_dirs), masks (n_dirs, n_in) bool -> (N, 1, n_dirs).

        The values, the constant and the pass-through enter linearly, so they are contracted with
        each direction's column of G first (H numbers per position instead of H e); only q (at the
        last position) and k are computed per direction, from the kept inputs or as the full ones
        minus the removed inputs' part, whichever is fewer.
        """
        H, e = self.n_heads, self.d_head
        n, S, n_in = x.shape
        A_q, A_k, A_v, A_x, A_1 = self._split(A)
        G_z, G_c, G_x, G_1 = G.split([H * e, H, A_x.shape[1], 1], dim=0)
        value_weights = (
            torch.einsum("jhe,hei->ijh", A_v.reshape(n_in, H, e), G_z.reshape(H, e, -1)) + A_1[:, 0][None, :, None] * G_c.T[:, None, :]
        )
        last_weights = (A_x @ G_x + A_1 @ G_1).T  # (n_dirs, n_in)
        x_last = x[:, -1]
        q_full, k_full = x_last @ A_q, x @ A_k
        out = torch.empty(n, 1, masks.shape[0], dtype=x.dtype)
        for i, kept in enumerate(masks):
            n_kept = int(kept.sum())
            if n_kept <= n_in - n_kept:
                index = torch.nonzero(kept).flatten()
                q, k = x_last[:, index] @ A_q[index], x[..., index] @ A_k[index]
            else:
                index = torch.nonzero(~kept).flatten()
                q, k = q_full - x_last[:, index] @ A_q[index], k_full - x[..., index] @ A_k[index]
            kept_index = torch.nonzero(kept).flatten()
            values = x[..., kept_index] @ value_weights[i, kept_index]  # (n, S, H)
            pattern = self._pattern(q.reshape(n, H, e), k.reshape(n, S, H, e))  # (n, H, S)
            out[:, 0, i] = torch.einsum("nhp,nph->n", pattern, values) + x_last[:, kept_index] @ last_weights[i, kept_index]
        return out

    def _jacobian_at(
        self,
        x: torch.Tensor,
        A_q: torch.Tensor,
        A_k: torch.Tensor,
        A_v: torch.Tensor,
        A_1: torch.Tensor,
        G_z: torch.Tensor,
        G_c: torch.Tensor,
        W_vc: torch.Tensor,
        W_last: torch.Tensor,
    ) -> torch.Tensor:
        H, e = self.n_heads, self.d_head
        n, S, n_in = x.shape
        q = (x[:, -1] @ A_q).reshape(n, H, e)
        k = (x @ A_k).reshape(n, S, H, e)
        v = (x @ A_v).reshape(n, S, H, e)
        one = (x @ A_1)[..., 0]  # (n, S)
        pattern = self._pattern(q, k)  # (n, H, S)
        # d y_r / d pattern[h, p] = v[p, h] . G_z[h, :, r] + one[p] G_c[h, r]; then the softmax
        d_pattern = torch.einsum("nphe,her->nhpr", v, G_z.reshape(H, e, -1)) + one[:, None, :, None] * G_c[None, :, None, :]
        d_scores = pattern[..., None] * (d_pattern - (pattern[..., None] * d_pattern).sum(2, keepdim=True))  # (n, H, S, r)
        scale = 1.0 / math.sqrt(e)
        k_in = torch.einsum("nphe,jhe->nhpj", k, A_q.reshape(-1, H, e)) * scale  # scores' gradient in q, mapped to x
        q_in = torch.einsum("nhe,jhe->nhj", q, A_k.reshape(-1, H, e)) * scale  # scores' gradient in k, mapped to x
        J = torch.einsum("nhp,hjr->nrpj", pattern, W_vc) + torch.einsum("nhpr,nhj->nrpj", d_scores, q_in)
        J[:, :, -1, :] += torch.einsum("nhpr,nhpj->nrj", d_scores, k_in) + W_last.T
        return J.unsqueeze(1)
