"""RMSNorm (Zhang & Sennrich 2019), the only normalization in DeepSeek-V3: attention, FFN, MLA's low-rank
latents, MTP and the final norm all use it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32 statistics like DeepSeek and HF, so bf16 runs normalize the same way
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)
