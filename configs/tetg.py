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
  # [paper] a 3-layer MLP on each frame's class embedding; [ours] widths 512 and 256
  c.hidden = (512, 256)
  c.learning_rate = 1e-3          # [paper] SGD, lr 1e-3 (as the project brief quotes it)
  c.momentum = args.momentum      # [paper] plain SGD: 0
  c.batch_size = 32               # [paper] batch 32 (as the project brief quotes it)
  c.num_epochs = args.epochs      # [ours] the paper gives no length
  c.seed = 0                      # [ours]
  # interval extraction (see vaujax/models/tetg.py): [paper] "high-confidence frames" give
  # <a-start> and <a-end>; [ours] the threshold, smoothing, merging and extension below
  c.threshold = 0.5
  c.smooth = 1
  c.merge_gap = 0
  c.extend = 0.5   # each end moves out by half the frame spacing (a frame stands for its span)
  # [ours, issue 29] the typed hint's class head: the anomaly classes, comma-separated, to
  # train it on (the labels' events' classes); "" trains none (data.hint_types needs one)
  c.types = ""
  return c
