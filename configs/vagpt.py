"""VA-GPT model configs.

  configs/vagpt.py:size=tiny              CPU, seconds (tests, demo)
  configs/vagpt.py:size=paper             EVA ViT-g/14 (1408-wide patch tokens, 16x16 grid) +
                                          DINOv2-B/14 on the same 224 crop + Vicuna-7B v1.5, K=0.5
  ...:sets=false / tetg=false / k=0.25    ablation switches
  ...:qformer=true                        LLaMA-VID's text-guided Q-Former for the context token
                                          (default on for size=paper; needs a BERT vocab.txt)
  --config.model.attention=cudnn          fused flash attention on NVIDIA GPUs (bf16); "xla" is
                                          jax.nn.dot_product_attention's portable path; "einsum"
                                          one unchunked logits block (the default "chunked"
                                          skips the causal upper triangle in up to
                                          config.model.attention_chunks query chunks)
  --config.model.remat=True               rematerialise each LLM and Q-Former layer in the
                                          backward pass (default on for size=paper)
  --config.model.remat_policy=dots        what a rematerialised LLM layer keeps: its weight
                                          matmuls' outputs (more memory, less recompute)
  --config.model.scan_layers=True         the LLM's and Q-Former's layers as lax.scans over
                                          stacked weights: one compiled layer, and each layer's
                                          gathered weights and recomputed buffers live for one
                                          iteration (on for size=paper)
"""

import ml_collections

from configs.common import parse_arg


def get_config(arg=None):
  args = parse_arg(arg, size="tiny", sets=True, tetg=True, k=0.5, frames=8,
                   mode="context_content", qformer="default")
  c = ml_collections.ConfigDict()
  c.size = args.size
  c.num_frames = args.frames
  c.use_sets = args.sets
  c.use_tetg = args.tetg
  c.sets_ratio = args.k
  c.frame_token_mode = args.mode
  c.attention = "chunked"  # LLM attention kernel: chunked | einsum | xla | cudnn (models/llama.py)
  c.attention_chunks = 8   # "chunked": at most this many causal query chunks
  # Paper scale: rematerialise each LLM and Q-Former layer in the backward pass, and run both
  # stacks as scans (llama.py / qformer.py: scan_layers). At 32 layers, fsdp=8, bf16 the
  # compiled temp is 9.6 GiB per device scanned and 80.3 GiB unrolled
  # (benchmarks/memory_plan.py). Tiny: neither (seconds-scale steps, exact HF layer order).
  c.remat = args.size == "paper"
  c.remat_policy = "full"  # LLM layers: full (recompute all) | dots (keep the projections' outputs)
  c.scan_layers = args.size == "paper"
  if args.size == "paper":
    c.llm = "vicuna_7b_v15"
    c.vision_dim, c.num_patches = 1408, 256       # EVA-g patch tokens, CLS dropped
    c.dino_dim, c.dino_patches = 768, 256         # DINOv2-B/14 on the 224 crop
    c.query_dim, c.num_queries = 768, 32
  elif args.size == "tiny":
    c.llm = "tiny"
    c.vision_dim, c.num_patches = 32, 64          # features.tiny_encoder(): 112 px, 8x8 grid
    c.dino_dim, c.dino_patches = 64, 64
    c.query_dim, c.num_queries = 16, 4
  else:
    raise ValueError(f"unknown VA-GPT size {args.size!r} (tiny | paper)")
  use = args.qformer if args.qformer != "default" else args.size == "paper"
  c.qformer = str(use).lower() in ("true", "1", "yes")
  # Q-Former sizes: BERT-base for the paper, a small BERT for tiny; vocab from the vocab file.
  c.qformer_layers, c.qformer_heads, c.qformer_mlp = (12, 12, 3072) if args.size == "paper" \
      else (2, 2, 32)
  c.qformer_vocab_size = 30523 if args.size == "paper" else 0   # 0: the vocab file's size
  # Tokens of the Q-Former's question ([CLS] ... [SEP]), every example padded to it. LLaMA-VID
  # pads to the batch's longest, at most 256; a 4-option MC prompt is about 70 BERT tokens, and
  # 128 instead of 256 takes the paper plan's compiled temp from 32.3 to 22.0 GiB per device at
  # 4 LLM layers (benchmarks/memory_plan.py). Longer questions keep their end and are counted in
  # the log.
  c.qformer_max_length = 128 if args.size == "paper" else 32
  return c
