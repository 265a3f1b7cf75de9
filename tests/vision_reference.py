"""Plain-torch reference of the LAVIS EVA ViT-g block layout that LLaMA-VID loads.

timm's EVA would be the natural reference, but timm imports torchvision, and PyPI's torchvision
does not import beside torch 2.13.0 (see BUILD.md). This is an independent transcription of the
documented architecture: fused qkv with q/v bias and no k bias, exact GELU, pre-norm blocks,
absolute position embeddings, no final norm, state-dict keys as in `eva_vit_g.pth`.
"""

import torch
from torch import nn


class EvaAttention(nn.Module):
  def __init__(self, dim, heads):
    super().__init__()
    self.heads = heads
    self.qkv = nn.Linear(dim, 3 * dim, bias=False)
    self.q_bias = nn.Parameter(torch.randn(dim) * 0.1)
    self.v_bias = nn.Parameter(torch.randn(dim) * 0.1)
    self.proj = nn.Linear(dim, dim)

  def forward(self, x):
    b, n, d = x.shape
    bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
    qkv = nn.functional.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attn = (q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return self.proj(out)


class EvaBlock(nn.Module):
  def __init__(self, dim, heads, mlp):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = EvaAttention(dim, heads)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp = nn.Sequential()
    self.mlp.fc1 = nn.Linear(dim, mlp)
    self.mlp.act = nn.GELU()
    self.mlp.fc2 = nn.Linear(mlp, dim)

  def forward(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))


class EvaViT(nn.Module):
  """`depth` blocks are built, as LAVIS builds them; the checkpoint may hold one more."""

  def __init__(self, img=56, patch=14, dim=32, depth=3, heads=4, mlp=70):
    super().__init__()
    self.patch_embed = nn.Module()
    self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
    n = (img // patch) ** 2
    self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
    self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.5)
    self.blocks = nn.ModuleList([EvaBlock(dim, heads, mlp) for _ in range(depth)])

  def forward(self, x):                      # [B, 3, H, W] -> [B, 1+N, D]
    x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
    x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
    for blk in self.blocks:
      x = blk(x)
    return x
