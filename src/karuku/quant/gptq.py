"""GPTQ rounding: each weight column rounded in turn, the error it leaves pushed onto the columns not yet rounded
(Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers").

For a Linear y = x Wᵀ and calibration inputs X, nearest rounding minimises each weight's own error; GPTQ
minimises the layer's output error ‖X Wᵀ − X Ŵᵀ‖² column by column (the Optimal Brain Surgeon update with the
Hessian H = Xᵀ X): after column j is rounded, the other columns move by −e_j · H⁻¹[j, j+1:] / H⁻¹[j, j], so inputs
correlated with x_j absorb what rounding w_:j lost. The per-channel scales are given and kept (the grid is the
caller's), so the result drops in wherever nearest rounding was used. Pure function; no model, no data.
"""

from __future__ import annotations

import torch

from karuku.errors import KarukuError


def gptq_round(w: torch.Tensor, scale: torch.Tensor, qmax: int, hessian: torch.Tensor, damp: float = 0.01,
               block: int = 128) -> torch.Tensor:
    """The integers (as float, in −qmax..qmax) for w (out × in) on the symmetric grid `scale` (one per output row),
    rounded by GPTQ against `hessian` (in × in, Σ xᵀx over calibration inputs). `damp` × mean(diag H) is added to
    the diagonal (keeps the inverse well conditioned); inputs that never fire (zero diagonal) get nearest rounding
    of a zero weight, as their weights cannot change the output. With a diagonal H this is nearest rounding exactly.
    """
    if w.dim() != 2 or hessian.shape != (w.shape[1], w.shape[1]) or scale.shape != (w.shape[0],):
        raise KarukuError(f"GPTQ needs w (out × in), scale (out,) and H (in × in); got {tuple(w.shape)}, "
                          f"{tuple(scale.shape)}, {tuple(hessian.shape)}", "collect H from the layer's own inputs")
    W = w.detach().double().clone()
    H = hessian.detach().double().clone()
    n = W.shape[1]
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.diagonal(H).mean() * torch.eye(n, dtype=H.dtype)
    # the upper Cholesky factor of H⁻¹: row j holds the update for column j given columns < j already fixed
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    s = scale.detach().double()
    Q = torch.zeros_like(W)
    for i1 in range(0, n, block):  # lazy batch updates: the block's errors reach later columns in one product
        i2 = min(i1 + block, n)
        Wb, Ub = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        E = torch.zeros_like(Wb)
        for j in range(i2 - i1):
            q = torch.clamp(torch.round(Wb[:, j] / s), -qmax, qmax)
            Q[:, i1 + j] = q
            e = (Wb[:, j] - q * s) / Ub[j, j]
            Wb[:, j:] -= e[:, None] * Ub[j, j:][None, :]
            E[:, j] = e
        W[:, i2:] -= E @ U[i1:i2, i2:]
    return Q.to(w.dtype)
