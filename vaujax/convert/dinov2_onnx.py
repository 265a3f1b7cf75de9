"""A DINOv2 exported to ONNX -> vaujax `ViT` params, each weight found by following the graph.

    vaujax convert-vision --kind dinov2 --onnx vit_s_focus.onnx --out DIR

torch.onnx names a Linear's weight after the MatMul that uses it (`onnx::MatMul_1966`), stores
the position table HF slices at run time as two initializers (CLS row, patch rows) and drops the
unused mask token. Names and initializer order are therefore not trusted: the walk starts at the
image input and follows the data: patch Conv -> CLS Concat -> position Add, then per block
LayerNorm -> three MatMuls told apart by where they enter the attention (query and key feed the
score MatMul, in that order; the value feeds the MatMul after the Softmax) -> output MatMul ->
LayerScale -> residual Add -> LayerNorm -> fc1 -> exact GELU -> fc2 -> LayerScale -> residual
Add, until a LayerNorm feeds no attention: the final norm. Width, depth, heads (from the
attention scale), MLP width, patch, eps and the position grid are read off the graph; the result
is an HF `Dinov2Model` state dict that `vision.params_from_state_dict` maps and shape-checks.

Reading is bounded: the file size, every initializer's declared size (against the bytes it
holds) and the geometry are checked before any weight is turned into an array, and external
data files are refused rather than opened.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from typing import Optional

import numpy as np

from vaujax.convert import vision
from vaujax.errors import InputError, require_file
from vaujax.models import vit

MAX_FILE_BYTES = 2 << 30           # protobuf's own limit on one message
MAX_TENSOR_ELEMENTS = 1 << 28      # one initializer: 1 GiB of float32
MAX_WIDTH, MAX_DEPTH, MAX_POSITIONS = 8192, 128, 1 << 16
# Ops that only move or relabel data between the nodes the walk looks for.
PASS_OPS = ("Reshape", "Transpose", "Cast", "Squeeze", "Unsqueeze", "Identity", "Flatten",
            "Dropout")
_FLOAT = 1   # onnx.TensorProto.FLOAT


@dataclasses.dataclass(frozen=True)
class OnnxDinov2:
  """What the walk found: the tower's config, its HF-layout state dict and graph facts."""

  config: vit.ViTConfig
  state: dict                      # HF Dinov2Model keys -> float32 arrays
  input_size: tuple[int, int]      # the image size the graph declares (H, W), 0 if dynamic
  output: str                      # tensor name of the final LayerNorm's output [B, 1+N, D]
  input: str                       # the image input's name, NCHW


def _onnx(path: str):
  try:
    import onnx
  except ImportError as e:
    raise InputError(path, "reading an ONNX model needs the `onnx` package (pip install "
                     "'onnx>=1.23,<2')") from e
  return onnx


def load_model(path: str):
  """The parsed ModelProto, without opening any external data file it may reference."""
  path = require_file(path, "ONNX model")
  size = os.path.getsize(path)
  if size > MAX_FILE_BYTES:
    raise InputError(path, f"{size} bytes: larger than an ONNX protobuf can be "
                     f"({MAX_FILE_BYTES} bytes)")
  onnx = _onnx(path)
  try:
    model = onnx.load(path, load_external_data=False)
  except Exception as e:  # protobuf raises DecodeError and assorted others on damaged files
    raise InputError(path, f"not a readable ONNX model ({type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''})") from e
  if not model.graph.node:
    raise InputError(path, "not a readable ONNX model (no graph nodes)")
  return model


class _Graph:
  """Producer/consumer index over one graph, with bounded access to its constants."""

  def __init__(self, model, path: str):
    self.path = path
    graph = model.graph
    self.inits = {t.name: t for t in graph.initializer}
    self.producer = {o: n for n in graph.node for o in n.output}
    self.consumers = collections.defaultdict(list)
    for n in graph.node:
      for name in n.input:
        if name:
          self.consumers[name].append(n)
    self.inputs = [i for i in graph.input if i.name not in self.inits]

  def fail(self, problem: str) -> InputError:
    return InputError(self.path, f"not a DINOv2 graph this converter reads: {problem}")

  # --- constants -------------------------------------------------------------------------------

  def _tensor(self, t) -> np.ndarray:
    from onnx import numpy_helper
    dims = tuple(int(d) for d in t.dims)
    if any(d < 0 for d in dims) or math.prod(dims) > MAX_TENSOR_ELEMENTS:
      raise InputError(self.path, f"tensor {t.name!r} declares shape {dims} (at most "
                       f"{MAX_TENSOR_ELEMENTS} elements are read)")
    if t.data_location == 1:  # onnx.TensorProto.EXTERNAL
      raise InputError(self.path, f"tensor {t.name!r} lives in an external data file; only "
                       "self-contained models are read")
    if t.data_type != _FLOAT:
      raise InputError(self.path, f"tensor {t.name!r} has ONNX data type {t.data_type}; "
                       "float32 expected")
    held = len(t.raw_data) // 4 if t.raw_data else len(t.float_data)
    if held != math.prod(dims):
      raise InputError(self.path, f"tensor {t.name!r} declares shape {dims} but holds "
                       f"{held} values")
    return np.asarray(numpy_helper.to_array(t), np.float32)

  def weight(self, name: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """An initializer of exactly `shape`; its declared dims are checked before reading it."""
    t = self.inits.get(name)
    if t is None:
      raise self.fail(f"{what} is computed ({name!r}), not a stored weight")
    if tuple(t.dims) != tuple(shape):
      raise InputError(self.path, f"{what} ({name!r}) has shape {tuple(t.dims)}, expected "
                       f"{tuple(shape)}")
    return self._tensor(t)

  def shape(self, name: str) -> Optional[tuple[int, ...]]:
    t = self.inits.get(name)
    return None if t is None else tuple(int(d) for d in t.dims)

  def const(self, name: str) -> Optional[np.ndarray]:
    """A small constant (a Constant node's value or an initializer of <= 16 values), else None."""
    t = self.inits.get(name)
    if t is None:
      node = self.producer.get(name)
      if node is None or node.op_type != "Constant":
        return None
      t = next((a.t for a in node.attribute if a.name == "value"), None)
      if t is None:
        return None
    if math.prod(t.dims) > 16 or t.data_location == 1:
      return None
    if t.data_type != _FLOAT:   # integer constants (shapes, axes) are never factors here
      from onnx import numpy_helper
      return np.asarray(numpy_helper.to_array(t))
    return self._tensor(t)

  def scalar(self, name: str) -> Optional[float]:
    value = self.const(name)
    return None if value is None or value.size != 1 else float(value.reshape(()))

  # --- walking ---------------------------------------------------------------------------------

  def data_consumers(self, tensor: str) -> list:
    return [n for n in self.consumers.get(tensor, []) if n.op_type != "Shape"]

  def follow(self, tensor: str, until: tuple[str, ...], what: str):
    """Walks forward from `tensor` through PASS_OPS and multiplications/divisions by a scalar
    constant to the next node of a type in `until` -> (node, the input slot it enters at, the
    product of the scalar factors on the way)."""
    factor = 1.0
    for _ in range(64):
      nodes = self.data_consumers(tensor)
      if len(nodes) != 1:
        raise self.fail(f"{what}: {tensor!r} feeds {len(nodes)} nodes, expected one")
      node = nodes[0]
      if node.op_type in until:
        return node, list(node.input).index(tensor), factor
      if node.op_type in PASS_OPS and node.input[0] == tensor:
        tensor = node.output[0]
        continue
      other = [i for i in node.input if i != tensor]
      value = self.scalar(other[0]) if node.op_type in ("Mul", "Div") and len(other) == 1 else None
      if value is None or (node.op_type == "Div" and node.input[0] != tensor):
        raise self.fail(f"{what}: unexpected {node.op_type} node {node.name!r}")
      factor *= value if node.op_type == "Mul" else 1.0 / value
      tensor = node.output[0]
    raise self.fail(f"{what}: no {'/'.join(until)} within 64 nodes")

  def back_to_weight(self, tensor: str, what: str) -> tuple[str, list]:
    """Walks back from `tensor` through PASS_OPS, Expand and Resize to an initializer ->
    (its name, the Resize nodes passed)."""
    resizes = []
    for _ in range(64):
      if tensor in self.inits:
        return tensor, resizes
      node = self.producer.get(tensor)
      if node is None or node.op_type not in PASS_OPS + ("Expand", "Resize", "Tile"):
        raise self.fail(f"{what}: {tensor!r} is not a stored weight")
      if node.op_type == "Resize":
        resizes.append(node)
      tensor = node.input[0]
    raise self.fail(f"{what}: no stored weight within 64 nodes")

  def only(self, tensor: str, op: str, what: str):
    """The one data consumer of `tensor`, which must be an `op` node."""
    nodes = self.data_consumers(tensor)
    if len(nodes) != 1 or nodes[0].op_type != op:
      found = ", ".join(n.op_type for n in nodes) or "nothing"
      raise self.fail(f"{what}: expected {op} after {tensor!r}, found {found}")
    return nodes[0]

  def other_input(self, node, tensor: str) -> str:
    rest = [i for i in node.input if i != tensor]
    if len(rest) != 1:
      raise self.fail(f"{node.op_type} node {node.name!r} has an unexpected input list")
    return rest[0]


def _attr(node, name: str, default=None):
  from onnx import helper
  for a in node.attribute:
    if a.name == name:
      value = helper.get_attribute_value(a)
      return value.decode() if isinstance(value, bytes) else value
  return default


# --- the pieces of a ViT -------------------------------------------------------------------------

def _layer_norm(g: _Graph, x: str, width: int, what: str) -> Optional[dict]:
  """The LayerNorm over the last axis that reads `x` (torch's exported pattern ReduceMean, Sub,
  Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta, or one LayerNormalization) ->
  {gamma, beta, eps, out}, or None when `x` feeds no LayerNorm."""
  nodes = g.data_consumers(x)
  fused = [n for n in nodes if n.op_type == "LayerNormalization"]
  if fused:
    n = fused[0]
    if _attr(n, "axis", -1) not in (-1, 2) or len(n.input) < 3:
      raise g.fail(f"{what}: LayerNormalization {n.name!r} is not over the last axis with a bias")
    return {"gamma": g.weight(n.input[1], (width,), f"{what} weight"),
            "beta": g.weight(n.input[2], (width,), f"{what} bias"),
            "eps": float(_attr(n, "epsilon", 1e-5)), "out": n.output[0]}
  means = [n for n in nodes if n.op_type == "ReduceMean"]
  if len(means) != 1:
    return None
  axes = _attr(means[0], "axes")
  if axes is None and len(means[0].input) > 1:   # opset 18: axes is an input
    axes = g.const(means[0].input[1])
  if axes is None or [int(a) for a in np.ravel(axes)] not in ([-1], [2]):
    raise g.fail(f"{what}: ReduceMean {means[0].name!r} is not over the last axis")
  sub = g.only(means[0].output[0], "Sub", what)
  centred = [n for n in g.data_consumers(sub.output[0])]
  power = next((n for n in centred if n.op_type == "Pow"), None)
  div = next((n for n in centred if n.op_type == "Div"), None)
  if sub.input[0] != x or power is None or div is None or g.scalar(power.input[1]) != 2.0:
    raise g.fail(f"{what}: {sub.name!r} does not start a LayerNorm's variance")
  variance = g.only(power.output[0], "ReduceMean", what).output[0]
  add_eps = g.only(variance, "Add", what)
  eps = g.scalar(g.other_input(add_eps, variance))
  sqrt = g.only(add_eps.output[0], "Sqrt", what)
  if eps is None or div.input[1] != sqrt.output[0]:
    raise g.fail(f"{what}: {add_eps.name!r} does not add a constant eps under a Sqrt")
  mul = g.only(div.output[0], "Mul", what)
  add = g.only(mul.output[0], "Add", what)
  return {"gamma": g.weight(g.other_input(mul, div.output[0]), (width,), f"{what} weight"),
          "beta": g.weight(g.other_input(add, mul.output[0]), (width,), f"{what} bias"),
          "eps": eps, "out": add.output[0]}


def _weight_matmuls(g: _Graph, x: str) -> list:
  return [n for n in g.data_consumers(x) if n.op_type == "MatMul" and n.input[0] == x
          and n.input[1] in g.inits]


def _bias(g: _Graph, matmul, width: int, what: str) -> tuple[Optional[np.ndarray], str]:
  """The bias added right after `matmul` (None if none) and the tensor after it."""
  out = matmul.output[0]
  nodes = g.data_consumers(out)
  if len(nodes) == 1 and nodes[0].op_type == "Add":
    other = g.other_input(nodes[0], out)
    if g.shape(other) == (width,):
      return g.weight(other, (width,), f"{what} bias"), nodes[0].output[0]
  return None, out


def _linear(g: _Graph, matmul, shape: tuple[int, int], what: str) -> dict:
  """A MatMul by a stored [in, out] weight plus its optional bias -> HF layout [out, in]."""
  weight = g.weight(matmul.input[1], shape, f"{what} weight")
  bias, out = _bias(g, matmul, shape[1], what)
  return {"weight": weight.T, "bias": bias, "out": out}


def _layer_scale(g: _Graph, tensor: str, width: int, what: str) -> tuple[np.ndarray, str]:
  mul = g.only(tensor, "Mul", what)
  other = g.other_input(mul, tensor)
  if g.shape(other) != (width,):
    raise g.fail(f"{what}: no LayerScale (a Mul by a stored [{width}] vector) after {tensor!r}")
  return g.weight(other, (width,), what), mul.output[0]


def _residual(g: _Graph, tensor: str, stream: str, what: str) -> str:
  add = g.only(tensor, "Add", what)
  if g.other_input(add, tensor) != stream:
    raise g.fail(f"{what}: {add.name!r} does not add the branch back onto the residual stream")
  return add.output[0]


def _gelu(g: _Graph, x: str, what: str) -> str:
  """Exact (erf) GELU after `x`: one Gelu node, or torch's x * (erf(x / sqrt 2) + 1) * 0.5."""
  nodes = g.data_consumers(x)
  if len(nodes) == 1 and nodes[0].op_type == "Gelu":
    if _attr(nodes[0], "approximate", "none") != "none":
      raise g.fail(f"{what}: tanh-approximate GELU (vaujax's DINOv2 uses the exact one)")
    return nodes[0].output[0]
  div = next((n for n in nodes if n.op_type == "Div" and n.input[0] == x), None)
  if div is None or not np.isclose(g.scalar(div.input[1]) or 0.0, math.sqrt(2), rtol=1e-6):
    ops = ", ".join(n.op_type for n in nodes)
    raise g.fail(f"{what}: the activation after fc1 is not an exact GELU (found {ops})")
  erf = g.only(div.output[0], "Erf", what)
  add = g.only(erf.output[0], "Add", what)
  mul = g.only(add.output[0], "Mul", what)
  half = g.only(mul.output[0], "Mul", what)
  if (g.scalar(g.other_input(add, erf.output[0])) != 1.0 or g.other_input(mul, add.output[0]) != x
      or g.scalar(g.other_input(half, mul.output[0])) != 0.5):
    raise g.fail(f"{what}: the activation after fc1 is not x * (erf(x / sqrt 2) + 1) * 0.5")
  return half.output[0]


def _attention(g: _Graph, h: str, width: int, what: str) -> tuple[dict, int, str]:
  """The three projections reading the normed stream `h`, named by their role in the attention
  -> ({'q'|'k'|'v': linear}, heads, the attention output before its projection)."""
  matmuls = _weight_matmuls(g, h)
  if len(matmuls) != 3:
    raise g.fail(f"{what}: the normed stream feeds {len(matmuls)} weight MatMuls, expected "
                 "three (query, key, value)")
  projections = [_linear(g, m, (width, width), f"{what} projection") for m in matmuls]
  ends = [g.follow(p["out"], ("MatMul",), f"{what} projection") for p in projections]
  # nodes are told apart by their output tensor: node names may be empty or repeated
  by_node = collections.Counter(node.output[0] for node, _, _ in ends)
  shared = [out for out, n in by_node.items() if n == 2]
  if len(shared) != 1:
    raise g.fail(f"{what}: no MatMul of queries by keys among the projections' next MatMuls")
  scores = next(e[0] for e in ends if e[0].output[0] == shared[0])
  softmax, _, score_factor = g.follow(scores.output[0], ("Softmax",), f"{what} scores")
  mix, slot, _ = g.follow(softmax.output[0], ("MatMul",), f"{what} attention weights")
  if slot != 0:
    raise g.fail(f"{what}: the attention weights enter {mix.name!r} second")
  roles, scale = {}, score_factor
  for p, (node, slot, factor) in zip(projections, ends):
    role = {(scores.output[0], 0): "q", (scores.output[0], 1): "k",
            (mix.output[0], 1): "v"}.get((node.output[0], slot))
    if role is None or role in roles:
      raise g.fail(f"{what}: a projection does not enter the attention as query, key or value")
    roles[role] = p
    scale *= factor if role in "qk" else 1.0
  head_dim = round(scale ** -2) if scale > 0 else 0
  if head_dim < 1 or width % head_dim or not np.isclose(scale, head_dim ** -0.5, rtol=1e-4):
    raise g.fail(f"{what}: attention scale {scale:.6g} is not 1/sqrt(head_dim) for a head "
                 f"width dividing {width}")
  return roles, width // head_dim, mix.output[0]


def _embeddings(g: _Graph) -> dict:
  """Patch Conv, CLS token and position table, found from the image input."""
  if len(g.inputs) != 1:
    raise g.fail(f"{len(g.inputs)} graph inputs, expected one image input")
  image = g.inputs[0]
  dims = [d.dim_value if d.HasField("dim_value") else 0 for d in image.type.tensor_type.shape.dim]
  if len(dims) != 4 or dims[1] not in (0, 3):
    raise g.fail(f"image input {image.name!r} has shape {dims}, expected [B, 3, H, W]")
  conv, _, _ = g.follow(image.name, ("Conv",), "image input")
  wshape = g.shape(conv.input[1])
  if wshape is None or len(wshape) != 4 or wshape[1] != 3 or wshape[2] != wshape[3]:
    raise g.fail(f"patch Conv {conv.name!r} weight has shape {wshape}, expected [D, 3, p, p]")
  width, patch = wshape[0], wshape[2]
  if not 0 < width <= MAX_WIDTH or not 0 < patch <= 64:
    raise InputError(g.path, f"patch Conv weight shape {wshape} is out of range")
  if (list(_attr(conv, "strides", [1, 1])) != [patch, patch] or any(_attr(conv, "pads", [0]))
          or _attr(conv, "group", 1) != 1 or len(conv.input) < 3):
    raise g.fail(f"patch Conv {conv.name!r} is not a stride-{patch} unpadded Conv with bias")
  concat, slot, _ = g.follow(conv.output[0], ("Concat",), "patch tokens")
  if slot != 1 or len(concat.input) != 2:
    raise g.fail(f"{concat.name!r} does not put one CLS token before the patch tokens")
  cls_name, _ = g.back_to_weight(concat.input[0], "CLS token")
  add, _, _ = g.follow(concat.output[0], ("Add",), "tokens")
  positions = _positions(g, g.other_input(add, concat.output[0]), width)
  return {"width": width, "patch": patch, "input_size": (dims[2], dims[3]), "stream": add.output[0],
          "embeddings.cls_token": g.weight(cls_name, (1, 1, width), "CLS token"),
          "embeddings.patch_embeddings.projection.weight": g.weight(conv.input[1], wshape,
                                                                    "patch Conv"),
          "embeddings.patch_embeddings.projection.bias": g.weight(conv.input[2], (width,),
                                                                  "patch Conv bias"),
          **positions}


def _positions(g: _Graph, tensor: str, width: int) -> dict:
  """The position table: one stored [1, 1+N, D] tensor, or (as HF's interpolating forward
  exports) Concat(stored CLS row [1, 1, D], Resize(stored patch rows [1, N, D]))."""
  resizes = []
  if tensor in g.inits:
    shape = g.shape(tensor)
    if shape is None or len(shape) != 3 or shape[0] != 1 or shape[2] != width:
      raise InputError(g.path, f"position table {tensor!r} has shape {shape}, expected "
                       f"[1, 1+N, {width}]")
    table = g.weight(tensor, shape, "position table")
  else:
    concat = g.producer.get(tensor)
    if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
      raise g.fail("the position table is neither stored nor a Concat of a CLS row and "
                   "patch rows")
    cls_name, cls_resizes = g.back_to_weight(concat.input[0], "position table CLS row")
    rows_name, resizes = g.back_to_weight(concat.input[1], "position table patch rows")
    rows = g.shape(rows_name)
    if cls_resizes or rows is None or len(rows) != 3 or rows[::2] != (1, width):
      raise InputError(g.path, f"position table patch rows {rows_name!r} have shape {rows}, "
                       f"expected [1, N, {width}]")
    table = np.concatenate([g.weight(cls_name, (1, 1, width), "position table CLS row"),
                            g.weight(rows_name, rows, "position table patch rows")], axis=1)
  n = table.shape[1] - 1
  grid = math.isqrt(n) if 0 < n <= MAX_POSITIONS else 0
  if grid * grid != n or grid == 0:
    raise InputError(g.path, f"position table has {n} patch rows, not a square grid")
  for r in resizes:   # the interpolation vaujax's `torch_bicubic` reproduces
    if (_attr(r, "mode") != "cubic" or _attr(r, "coordinate_transformation_mode") != "half_pixel"
            or not np.isclose(_attr(r, "cubic_coeff_a", -0.75), -0.75)
            or _attr(r, "exclude_outside", 0) or _attr(r, "antialias", 0)):
      raise g.fail(f"position interpolation {r.name!r} is not torch's bicubic (a=-0.75, "
                   "half-pixel, no antialias)")
  return {"embeddings.position_embeddings": table, "grid": grid}


def _block(g: _Graph, stream: str, width: int, i: int) -> Optional[dict]:
  """Block i reading the residual stream `stream`, or None when the LayerNorm there feeds no
  attention (the final norm)."""
  what = f"block {i}"
  norm1 = _layer_norm(g, stream, width, f"{what} norm1")
  if norm1 is None or not _weight_matmuls(g, norm1["out"]):
    return None
  qkv, heads, mixed = _attention(g, norm1["out"], width, f"{what} attention")
  out_mm, slot, _ = g.follow(mixed, ("MatMul",), f"{what} attention output")
  if slot != 0:
    raise g.fail(f"{what}: the attention output enters {out_mm.name!r} second")
  out = _linear(g, out_mm, (width, width), f"{what} attention output")
  scale1, branch = _layer_scale(g, out["out"], width, f"{what} layer_scale1")
  mid = _residual(g, branch, stream, f"{what} attention")
  norm2 = _layer_norm(g, mid, width, f"{what} norm2")
  if norm2 is None:
    raise g.fail(f"{what}: no LayerNorm before the MLP")
  fc1_mm = _weight_matmuls(g, norm2["out"])
  mlp = g.shape(fc1_mm[0].input[1]) if len(fc1_mm) == 1 else None
  if mlp is None or len(mlp) != 2 or mlp[0] != width or not 0 < mlp[1] <= 16 * MAX_WIDTH:
    raise g.fail(f"{what}: no fc1 MatMul by a stored [{width}, F] weight after norm2")
  fc1 = _linear(g, fc1_mm[0], mlp, f"{what} fc1")
  fc2_mm = g.only(_gelu(g, fc1["out"], f"{what} mlp"), "MatMul", f"{what} fc2")
  fc2 = _linear(g, fc2_mm, mlp[::-1], f"{what} fc2")
  scale2, branch = _layer_scale(g, fc2["out"], width, f"{what} layer_scale2")
  pre = f"encoder.layer.{i}"
  state = {f"{pre}.layer_scale1.lambda1": scale1, f"{pre}.layer_scale2.lambda1": scale2}
  parts = {"attention.q_proj": qkv["q"], "attention.k_proj": qkv["k"],
           "attention.v_proj": qkv["v"], "attention.o_proj": out, "mlp.fc1": fc1, "mlp.fc2": fc2}
  for name, p in parts.items():
    state[f"{pre}.{name}.weight"] = p["weight"]
    if p["bias"] is not None:
      state[f"{pre}.{name}.bias"] = p["bias"]
  for name, n in (("norm1", norm1), ("norm2", norm2)):
    state[f"{pre}.{name}.weight"], state[f"{pre}.{name}.bias"] = n["gamma"], n["beta"]
  return {"state": state, "heads": heads, "mlp": mlp[1], "eps": {norm1["eps"], norm2["eps"]},
          "stream": _residual(g, branch, mid, f"{what} mlp"),
          "biases": tuple(p["bias"] is not None for p in parts.values())}


def read_graph(path: str) -> OnnxDinov2:
  """Walks a DINOv2 ONNX file (HF `Dinov2Model` exported by torch.onnx, possibly inside a
  larger model) -> its config, HF-layout state dict and the backbone's output tensor."""
  return walk(load_model(path), path)


def walk(model, path: str) -> OnnxDinov2:
  """`read_graph` on a parsed ModelProto; `path` names it in errors."""
  g = _Graph(model, path)
  emb = _embeddings(g)
  width, stream, state = emb["width"], emb["stream"], {}
  state.update({k: v for k, v in emb.items() if k.startswith("embeddings.")})
  blocks = []
  while (block := _block(g, stream, width, len(blocks))) is not None:
    if len(blocks) >= MAX_DEPTH:
      raise InputError(path, f"more than {MAX_DEPTH} transformer blocks")
    blocks.append(block)
    stream = block["stream"]
    state.update(block["state"])
  if not blocks:
    raise g.fail("no transformer block after the embeddings")
  final = _layer_norm(g, stream, width, "final layernorm")
  if final is None:
    raise g.fail(f"no final LayerNorm after block {len(blocks) - 1}")
  state["layernorm.weight"], state["layernorm.bias"] = final["gamma"], final["beta"]
  eps = set().union(*(b["eps"] for b in blocks), {final["eps"]})
  shapes = {(b["heads"], b["mlp"], b["biases"]) for b in blocks}
  if len(shapes) != 1 or len(eps) != 1:
    raise g.fail(f"blocks differ in heads / MLP width / biases {sorted(shapes)} or LayerNorm "
                 f"eps {sorted(eps)}")
  (heads, mlp, biases), = shapes
  qkv_bias = {(True,) * 6: "qkv", (False,) * 4 + (True, True): "none"}.get(biases)
  if qkv_bias is None:
    raise g.fail(f"attention biases {biases[:4]} (q, k, v, out): all or none are read")
  cfg = dataclasses.replace(vit.dinov2("small"), hidden_size=width, num_layers=len(blocks),
                            num_heads=heads, mlp_dim=mlp, patch_size=emb["patch"],
                            image_size=emb["grid"] * emb["patch"],
                            layer_norm_eps=float(str(np.float32(eps.pop()))),  # 1e-06, not ...7e-07
                            act="gelu", qkv_bias=qkv_bias)
  # The export drops DINOv2's mask token (it only replaces masked patches in training): zero.
  state["embeddings.mask_token"] = np.zeros((1, width), np.float32)
  return OnnxDinov2(cfg, state, emb["input_size"], final["out"], g.inputs[0].name)


def convert(path: str) -> tuple[dict, vit.ViTConfig, OnnxDinov2]:
  """ONNX file -> ({'params': ...} for `vit.ViT(cfg)`, cfg, what the walk found)."""
  found = read_graph(path)
  params, _ = vision.params_from_state_dict("dinov2", found.state, found.config, source=path)
  return params, found.config, found


def write(path: str, out_dir: str) -> tuple[dict, vit.ViTConfig]:
  """Converts and writes a params directory that `features.encoder_from_params` loads."""
  from vaujax.convert import params_io
  params, cfg, found = convert(path)
  params_io.write_params_dir(out_dir, params, {
      "kind": "vit/dinov2", "config": dataclasses.asdict(cfg),
      "source": os.path.basename(path), "input_size": list(found.input_size)})
  return params, cfg


def onnxruntime_backbone(model, found: OnnxDinov2, threads: int = 0):
  """onnxruntime on the graph cut at the backbone's final LayerNorm, its image size left free
  (the graph declares 224 but computes its position grid from the input): NHWC float images
  [B, S, S, 3] -> tokens [B, 1 + (S/14)^2, D]. The reference of the parity test and benchmark
  (needs `onnxruntime`, a test extra)."""
  import onnx
  import onnxruntime
  cut = onnx.ModelProto()
  cut.CopyFrom(model)
  del cut.graph.output[:]
  cut.graph.output.append(onnx.helper.make_tensor_value_info(found.output, onnx.TensorProto.FLOAT,
                                                             None))
  for dim in cut.graph.input[0].type.tensor_type.shape.dim[2:]:
    dim.dim_param = "size"
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = threads or (os.cpu_count() or 1)
  session = onnxruntime.InferenceSession(cut.SerializeToString(), options,
                                         providers=["CPUExecutionProvider"])
  return lambda x: session.run(None, {found.input: x.transpose(0, 3, 1, 2)})[0]
