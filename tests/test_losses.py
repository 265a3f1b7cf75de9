"""next_token_loss against PyTorch's causal-LM cross-entropy: value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from vaujax.data.conversation import IGNORE_INDEX
from vaujax.train.losses import next_token_loss


def _torch_loss(logits: np.ndarray, labels: np.ndarray):
  """HF's recipe: shift, flatten, cross_entropy(ignore_index=-100, mean); -> (loss, dlogits)."""
  x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
  target = torch.tensor(labels[:, 1:], dtype=torch.long)
  loss = torch.nn.functional.cross_entropy(x[:, :-1].reshape(-1, x.shape[-1]),
                                           target.reshape(-1), ignore_index=IGNORE_INDEX)
  loss.backward()
  return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("scale", [1.0, 40.0])   # 40: logits far beyond exp()'s fp32 range
def test_next_token_loss_matches_torch_cross_entropy(scale):
  rng = np.random.RandomState(0)
  b, l, v = 3, 9, 37
  logits = (scale * rng.randn(b, l, v)).astype(np.float32)
  labels = rng.randint(0, v, (b, l)).astype(np.int32)
  labels[0, :4] = IGNORE_INDEX            # a prompt
  labels[1, 6:] = IGNORE_INDEX            # right padding
  labels[2, 3] = IGNORE_INDEX             # a hole
  want, want_grad = _torch_loss(logits, labels)
  (loss, count), grad = jax.value_and_grad(next_token_loss, has_aux=True)(
      jnp.asarray(logits), jnp.asarray(labels))
  assert int(count) == int((labels[:, 1:] != IGNORE_INDEX).sum())
  np.testing.assert_allclose(float(loss), want, rtol=2e-6)
  np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-4, atol=1e-7)
  # The last position predicts nothing and ignored targets send no gradient.
  assert not np.asarray(grad)[:, -1].any() and not np.asarray(grad)[0, :3].any()


def test_next_token_loss_without_supervised_tokens_is_zero():
  logits = jnp.asarray(np.random.RandomState(1).randn(2, 5, 7), jnp.float32)
  labels = jnp.full((2, 5), IGNORE_INDEX, jnp.int32)
  (loss, count), grad = jax.value_and_grad(next_token_loss, has_aux=True)(logits, labels)
  assert float(loss) == 0.0 and int(count) == 0 and not np.asarray(grad).any()
