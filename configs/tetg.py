"""TETG frame classifier (VA-GPT): SGD, lr 1e-3, batch 32 as in the paper.

  configs/tetg.py                 paper defaults
  configs/tetg.py:momentum=0.9    faster convergence on small synthetic data
"""

from configs.common import parse_arg
import ml_collections


def get_config(arg=None):
  args = parse_arg(arg, momentum=0.0, epochs=20)
  c = ml_collections.ConfigDict()
  c.task = "tetg"
  c.data = ml_collections.ConfigDict(dict(feature_dir="", labels_json=""))
  c.hidden = (512, 256)
  c.learning_rate = 1e-3
  c.momentum = args.momentum
  c.batch_size = 32
  c.num_epochs = args.epochs
  c.seed = 0
  # interval extraction (see vaujax/models/tetg.py)
  c.threshold = 0.5
  c.smooth = 1
  c.merge_gap = 0
  c.extend = 0.5   # each end moves out by half the frame spacing (a frame stands for its span)
  return c
