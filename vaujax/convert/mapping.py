"""Declarative checkpoint mappings: a table of (vaujax param path <-> published key, hooks).

Every converter (LLaMA, vision towers, Q-Former, LLaMA-VID) is a `rules(config)` table plus, where
a published format fuses or splits tensors, a small normaliser applied to the state dict first.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping

import numpy as np

from vaujax.errors import InputError

Hook = Callable[[np.ndarray], np.ndarray]


def transpose(w: np.ndarray) -> np.ndarray:
  """torch Linear [out, in] <-> flax Dense kernel [in, out]."""
  return w.T


def identity(w: np.ndarray) -> np.ndarray:
  return w


def conv_to_flax(w: np.ndarray) -> np.ndarray:
  """torch Conv2d [O, I, kh, kw] -> flax Conv [kh, kw, I, O]."""
  return w.transpose(2, 3, 1, 0)


def conv_to_torch(w: np.ndarray) -> np.ndarray:
  return w.transpose(3, 2, 0, 1)


def reshaper(shape_out: tuple[int, ...]) -> Hook:
  return lambda w: w.reshape(shape_out)


@dataclasses.dataclass(frozen=True)
class Rule:
  path: tuple[str, ...]          # vaujax param path (under 'params')
  key: str                       # published state-dict key
  to_vaujax: Hook = identity
  to_source: Hook = identity


LINEAR = dict(to_vaujax=transpose, to_source=transpose)
CONV = dict(to_vaujax=conv_to_flax, to_source=conv_to_torch)


def _get(tree: Mapping, path: tuple[str, ...]):
  for part in path:
    tree = tree[part]
  return tree


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for part in path[:-1]:
    tree = tree.setdefault(part, {})
  tree[path[-1]] = value


def import_state(state: Mapping[str, np.ndarray], rules: Iterable[Rule], *, source: str,
                 prefix: str = "", expected: Mapping | None = None,
                 ignore: Callable[[str], bool] = lambda k: False,
                 strict: bool = True) -> tuple[dict, set[str]]:
  """Applies `rules` to a state dict -> (params tree, consumed keys).

  `expected`: an (abstract) params tree; every produced array must match its shape, and the
  error names the published key. With `strict`, keys under `prefix` that no rule consumes (and
  `ignore` does not excuse) raise an InputError naming the first one.
  """
  tree: dict = {}
  used: set[str] = set()
  for rule in rules:
    key = prefix + rule.key
    if key not in state:
      raise InputError(source, f"missing key {key!r}")
    value = rule.to_vaujax(np.asarray(state[key]))
    if expected is not None:
      want = tuple(_get(expected, rule.path).shape)
      if tuple(value.shape) != want:
        got = tuple(np.asarray(state[key]).shape)
        raise InputError(source, f"key {key!r} has shape {got}, which does not fit the "
                         f"config's {'/'.join(rule.path)} {want}")
    _set(tree, rule.path, value)
    used.add(key)
  if strict:
    unknown = sorted(k for k in state if k.startswith(prefix) and k not in used and not ignore(k))
    if unknown:
      raise InputError(source, f"unknown key {unknown[0]!r} ({len(unknown)} unknown in all)")
  return tree, used


def export_state(params: Mapping, rules: Iterable[Rule], *, prefix: str = "") -> dict:
  """params tree -> state dict of numpy arrays (inverse of `import_state`)."""
  return {prefix + r.key: np.ascontiguousarray(r.to_source(np.asarray(_get(params, r.path))))
          for r in rules}
