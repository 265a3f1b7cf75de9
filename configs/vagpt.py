"""VA-GPT model configs.

  configs/vagpt.py:size=tiny              CPU, seconds (tests, demo)
  configs/vagpt.py:size=paper             EVA ViT-g/14 (1408-wide patch tokens, 16x16 grid) +
                                          DINOv2-B/14 on the same 224 crop + Vicuna-7B v1.5, K=0.5,
                                          64 frames (the sources: comments below, BUILD.md)
  ...:frames=32                           frames per video (default: tiny 8, paper 64)
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
  --config.model.llm_sizes.num_layers=4   the named LLM with other sizes (also hidden_size,
                                          intermediate_size, num_heads, num_kv_heads; 0 keeps
                                          the named LLM's)
"""

import ml_collections

from configs.common import parse_arg


def get_config(arg=None):
  args = parse_arg(arg, size="tiny", sets=True, tetg=True, k=0.5, frames=0,
                   mode="context_content", qformer="default")
  # Where each size=paper value comes from: [paper] the VA-GPT paper (ICCV 2025; no code was
  # published, its text as summarised in public paper notes); [LLaMA-VID] its published video
  # recipe (scripts/video/train/stage_2_full_v7b_224_fps_1.sh, llamavid/train/train.py); [ours]
  # a choice of this project. The same table is in BUILD.md ("The paper config's sources").
  c = ml_collections.ConfigDict()
  c.size = args.size
  # [ours] 64 frames for paper (frames=0: the size's default; tiny: 8). LLaMA-VID samples 1 fps
  # with no cap (a UCF-Crime clip gives ~60-600 frames) and the paper gives no count; a batch
  # needs a fixed T, and 64 x 2 tokens fit 2048 with room for the conversation. The data
  # config samples at 1 fps up to this (data.sample_fps, [LLaMA-VID] --video_fps 1).
  c.num_frames = args.frames or (64 if args.size == "paper" else 8)
  c.use_sets = args.sets          # [paper] SETS (stage two and inference)
  c.use_tetg = args.tetg          # [paper] TETG's interval hint in the prompt
  c.sets_ratio = args.k           # [paper] K = 0.5, the best of its K ablation
  # [LLaMA-VID] one context + one content token per frame (--compress_type mean)
  c.frame_token_mode = args.mode
  # [ours] a learned position embedding on the tower's patches before SETS and pooling
  # (models/vagpt.py): off for LLaMA-VID's trained ViT, whose patches carry their position
  c.patch_position = False
  # [ours] content tokens per frame: one per cell of a g x g grid over the tower's patches
  # (models/frame_tokens.py), so a frame's tokens say where things are; 1: LLaMA-VID's one mean
  c.content_grid = 1
  c.attention = "chunked"  # [ours] LLM attention kernel: chunked | einsum | xla | cudnn (models/llama.py)
  c.attention_chunks = 8   # "chunked": at most this many causal query chunks
  # Paper scale: rematerialise each LLM and Q-Former layer in the backward pass, and run both
  # stacks as scans (llama.py / qformer.py: scan_layers). At 32 layers, fsdp=8, bf16 the
  # compiled temp is 9.6 GiB per device scanned and 80.3 GiB unrolled
  # (benchmarks/memory_plan.py). Tiny: neither (seconds-scale steps, exact HF layer order).
  # [LLaMA-VID] --gradient_checkpointing True is the same trade; scans are [ours]
  c.remat = args.size == "paper"
  c.remat_policy = "full"  # LLM layers: full (recompute all) | dots (keep the projections' outputs)
  c.scan_layers = args.size == "paper"
  if args.size == "paper":
    c.llm = "vicuna_7b_v15"   # [paper] Vicuna-7B; [LLaMA-VID] v1.5 (--model_name_or_path)
    # [LLaMA-VID] EVA ViT-g/14 at 224 (eva_vit_g.pth): 16x16 patch tokens, CLS dropped
    c.vision_dim, c.num_patches = 1408, 256
    # [paper] DINOv2 for SETS and TETG, variant not given; [ours] ViT-B/14 on the same 224 crop
    c.dino_dim, c.dino_patches = 768, 256
    c.query_dim, c.num_queries = 768, 32          # [LLaMA-VID] BERT-base width, --num_query 32
  elif args.size == "tiny":
    c.llm = "tiny"
    c.vision_dim, c.num_patches = 32, 64          # features.tiny_encoder(): 112 px, 8x8 grid
    c.dino_dim, c.dino_patches = 64, 64
    c.query_dim, c.num_queries = 16, 4
  else:
    raise ValueError(f"unknown VA-GPT size {args.size!r} (tiny | paper)")
  # [ours] The named LLM's sizes, changed where a value is not 0 (models/llama.py LLM_SIZES):
  # e.g. --config.model.llm_sizes.num_layers=4 for a deeper tiny LLM. Recorded in the run; runs
  # saved before the key read 0 (the named LLM as it is).
  c.llm_sizes = ml_collections.ConfigDict(dict(hidden_size=0, intermediate_size=0, num_layers=0,
                                                num_heads=0, num_kv_heads=0))
  use = args.qformer if args.qformer != "default" else args.size == "paper"
  c.qformer = str(use).lower() in ("true", "1", "yes")   # [LLaMA-VID] text-guided Q-Former
  # [LLaMA-VID] Q-Former sizes: BERT-base (bert-base-uncased + [DEC]: 30523) for the paper, a small BERT for tiny; vocab from the vocab file.
  c.qformer_layers, c.qformer_heads, c.qformer_mlp = (12, 12, 3072) if args.size == "paper" \
      else (2, 2, 32)
  c.qformer_vocab_size = 30523 if args.size == "paper" else 0   # 0: the vocab file's size
  # [ours] Tokens of the Q-Former's question ([CLS] ... [SEP]), every example padded to it. LLaMA-VID
  # pads to the batch's longest, at most 256; a 4-option MC prompt is about 70 BERT tokens, and
  # 128 instead of 256 takes the paper plan's compiled temp from 32.3 to 22.0 GiB per device at
  # 4 LLM layers (benchmarks/memory_plan.py). Longer questions keep their end and are counted in
  # the log.
  c.qformer_max_length = 128 if args.size == "paper" else 32
  return c
