"""Training losses: the KL divergence of predictions from vote distributions, and loss weights by votes.

:func:`kl_loss` is the competition metric as a differentiable loss (for softmax outputs it equals
:func:`hmslib.metrics.kaggle_kl` of the predicted distributions); :func:`loss_weights` gives the
per-window weights by vote count that the 2nd and 3rd place solutions credited.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hmslib.models import probabilities

#: Loss weight of a window with this many votes or more is 1 when ``vote_weight`` is on.
FULL_WEIGHT_VOTES = 20


def kl_loss(
    logits: torch.Tensor,
    target_probs: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    output: str = "softmax",
    eps: float = 1e-15,
) -> torch.Tensor:
    """KL divergence ``sum_c y_c log(y_c / p_c)`` of the predictions from the vote distributions.

    For softmax outputs ``log p`` is ``log_softmax(logits)``, so the value equals
    :func:`hmslib.metrics.kaggle_kl` of ``softmax(logits)`` on the same rows (up to Kaggle's clipping
    of ``p`` at 1e-15). For entmax outputs ``p`` is clamped at ``eps`` inside the logarithm, as Kaggle
    clips it; a class outside the entmax support gets no gradient (the price of a sparse output).

    Parameters
    ----------
    logits : torch.Tensor
        ``(batch, 6)`` raw model outputs.
    target_probs : torch.Tensor
        ``(batch, 6)`` vote probabilities (rows sum to 1; zeros allowed).
    weights : torch.Tensor, optional
        ``(batch,)`` per-window weights (e.g. by vote count); the loss is ``mean_i w_i KL_i``.
    output : {"softmax", "entmax15"}
        Output mapping of the model.
    eps : float
        Floor of ``p`` inside the logarithm for entmax outputs.

    Returns
    -------
    torch.Tensor
        Scalar: the batch mean (``batchmean``) of the per-window KL, in nats.

    Raises
    ------
    ValueError
        Shapes differ or are not ``(batch, n_classes)``.
    """
    if logits.ndim != 2 or logits.shape != target_probs.shape:
        raise ValueError(
            f"kl_loss: logits {tuple(logits.shape)} and targets {tuple(target_probs.shape)} must both "
            "be (batch, n_classes)"
        )
    target = target_probs.float()
    if output == "softmax":
        log_p = F.log_softmax(logits.float(), dim=-1)
    else:
        log_p = torch.log(probabilities(logits, output).clamp_min(eps))
    log_y = torch.log(torch.where(target > 0, target, torch.ones_like(target)))
    per_window = (target * (log_y - log_p)).sum(dim=-1)
    if weights is not None:
        if weights.shape != per_window.shape:
            raise ValueError(
                f"kl_loss: weights {tuple(weights.shape)} must be ({per_window.shape[0]},)"
            )
        per_window = per_window * weights.float()
    return per_window.mean()


def loss_weights(
    total_votes: torch.Tensor,
    *,
    vote_weight: bool,
    few_vote_decay: float,
    min_votes: int,
    epoch: int,
) -> torch.Tensor | None:
    """Per-window loss weights from vote counts, or None when every weight is 1.

    Parameters
    ----------
    total_votes : torch.Tensor
        ``(batch,)`` votes per window.
    vote_weight : bool
        Weight ``min(votes / 20, 1)`` (2nd place: fewer votes, noisier target, smaller weight).
    few_vote_decay : float
        Windows with fewer than ``min_votes`` votes get a further ``few_vote_decay ** epoch``
        (3rd place: few-vote windows fade out as training goes on); 1 = off.
    min_votes : int
        Threshold of the few-vote decay.
    epoch : int
        Epoch within the stage, from 0.

    Returns
    -------
    torch.Tensor or None
        float32 ``(batch,)``.
    """
    if not vote_weight and few_vote_decay == 1.0:
        return None
    votes = total_votes.float()
    weights = torch.ones_like(votes)
    if vote_weight:
        weights = (votes / FULL_WEIGHT_VOTES).clamp(max=1.0)
    if few_vote_decay != 1.0:
        weights = torch.where(votes < min_votes, weights * few_vote_decay**epoch, weights)
    return weights
