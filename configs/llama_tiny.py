"""A tiny LLaMA for CPU tests and demos (seconds).

  python -m vaujax.convert.llama ...  /  configs/llama_tiny.py:layers=4
"""

from configs.common import parse_arg
from vaujax.models import config_dicts, llama


def get_config(arg=None):
  args = parse_arg(arg, layers=2, hidden=64, vocab=256)
  cfg = llama.tiny_llama(num_layers=args.layers, hidden_size=args.hidden, vocab_size=args.vocab)
  return config_dicts.to_config_dict(cfg)
