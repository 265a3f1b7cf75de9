"""vaujax: VA-GPT (video anomaly understanding multimodal LLM) in JAX/Flax.

Folders follow the architecture:
  models/     pure flax.linen modules (LLaMA decoder, ViT towers, DINOv2, SETS, TETG, VA-GPT)
  generation/ KV-cache sampling and continuation scoring
  convert/    published checkpoints (HF safetensors / .bin, timm/LAVIS .pth) <-> vaujax params
  data/       video decoding, preprocessing, annotations, instruction data, Grain pipelines
  train/      sharded trainers and checkpointing
  evaluate/   benchmark evaluators and metrics
"""

__version__ = "0.1.0"
