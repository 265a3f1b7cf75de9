"""Parameter trees: counting (one definition for every model)."""

import flax.linen as nn
import jax


def param_path(path) -> str:
  """'a/b/kernel' for a key path of `jax.tree_util.tree_leaves_with_path`."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def count_params(params) -> int:
  """Scalars in a parameter tree (boxed or unboxed, arrays or ShapeDtypeStructs)."""
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(nn.unbox(params)))
