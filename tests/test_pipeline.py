"""Grain pipeline: example-by-example round trip, resume mid-epoch, process shards, TFDS path."""

import json

import numpy as np
import pytest

from vaujax.data import annotations as ann
from vaujax.data import conversation as conv
from vaujax.data import features, instructions, pipeline, synthetic, tfds_builders
from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
from vaujax.errors import InputError

T, N, DV = 4, 9, 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("pipe")
  labels = synthetic.generate(str(root / "syn"), synthetic.SyntheticConfig(num_videos=10,
                                                                           seconds=8.0))
  vids, _ = ann.read_uca(str(root / "syn" / "uca.json"),
                         anomaly_intervals={k: v["anomaly_intervals"] for k, v in labels.items()})
  items = instructions.build_instructions(vids, video_dir_prefix="videos/")
  instructions.write_json(str(root / "train.json"), items)
  rng = np.random.RandomState(0)
  (root / "feats").mkdir()
  for v in vids:  # small fake features; the pipeline only moves them
    features.write_features(str(root / "feats" / f"{v.video_id}.npz"),
                  {"tower_patches": rng.randn(T, N, DV).astype(np.float32),
                   "dino_cls": rng.randn(T, 5).astype(np.float32),
                   "timestamps": np.arange(T, dtype=np.float64)})
  texts = [conv.SYSTEM] + [t["value"] for i in items for t in i["conversations"]]
  tok = Tokenizer.load(train_sentencepiece(texts * 3, root / "tok", 600))
  cfg = pipeline.PipelineConfig(feature_dir=str(root / "feats"), num_video_tokens=2 * T,
                                max_length=256, batch_size=2, seed=3,
                                feature_shapes={"tower_patches": (N, DV)})
  return root, items, tok, cfg


def _collect(it, n=None):
  out = []
  for i, batch in enumerate(it):
    if n is not None and i == n:
      break
    out.append(batch)
  return out


def test_round_trip_example_by_example(data):
  root, items, tok, cfg = data
  source, problems = pipeline.json_source(str(root / "train.json"))
  assert problems == []
  batches = _collect(pipeline.make_dataset(source, cfg, tok))
  assert len(batches) == len(items) // 2
  seen = set()
  for batch in batches:
    assert batch["input_ids"].shape == (2, 256) and batch["tower_patches"].shape == (2, T, N, DV)
    for row in range(2):
      index = int(batch["example_index"][row])
      seen.add(index)
      item = items[index]
      ids, labels = conv.tokenize_conversation(item["conversations"], tok,
                                               num_video_tokens=2 * T)
      np.testing.assert_array_equal(batch["input_ids"][row, :len(ids)], ids)
      np.testing.assert_array_equal(batch["labels"][row, :len(ids)], labels)
      assert (batch["labels"][row, len(ids):] == conv.IGNORE_INDEX).all()
      assert batch["attention_mask"][row].sum() == len(ids)
      supervised = batch["labels"][row] != conv.IGNORE_INDEX
      answers = [t["value"] for t in item["conversations"] if t["from"] == "gpt"]
      supervised_text = tok.decode(batch["input_ids"][row][supervised])
      assert all(a in supervised_text for a in answers)
      feats = features.read_features(str(root / "feats" / (pipeline.video_key(item) + ".npz")))
      np.testing.assert_array_equal(batch["tower_patches"][row], feats["tower_patches"])
  assert len(seen) == len(items)


def test_restored_iterator_yields_exactly_the_rest(data):
  root, _, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  cfg2 = pipeline.PipelineConfig(**{**cfg.__dict__, "num_epochs": 2})
  full = [b["example_index"].tolist() for b in _collect(pipeline.make_dataset(source, cfg2, tok))]
  it = iter(pipeline.make_dataset(source, cfg2, tok))
  head = [next(it)["example_index"].tolist() for _ in range(3)]
  state = json.loads(json.dumps(it.get_state()))   # survives serialisation
  resumed = iter(pipeline.make_dataset(source, cfg2, tok))
  resumed.set_state(state)
  tail = [b["example_index"].tolist() for b in resumed]
  assert head + tail == full and len(full) == 10


def test_two_processes_get_disjoint_covering_shards(data):
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  cfg1 = pipeline.PipelineConfig(**{**cfg.__dict__, "batch_size": 1})
  shards = [{int(b["example_index"][0]) for b in pipeline.make_dataset(
      source, cfg1, tok, process_index=p, process_count=2)} for p in (0, 1)]
  assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(len(items)))


def test_prefetch_settings_keep_batches_and_bound_the_buffer(data, monkeypatch):
  """read_threads/prefetch_buffer change how far grain reads ahead, never what it yields."""
  import dataclasses
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  runs = []
  for threads, buffer in ((-1, 0), (0, 0), (3, 5)):
    c = dataclasses.replace(cfg, read_threads=threads, prefetch_buffer=buffer)
    runs.append([b["example_index"].tolist() for b in pipeline.make_dataset(source, c, tok)])
  assert runs[0] == runs[1] == runs[2] and len(runs[0]) == len(items) // 2
  options = lambda **kw: pipeline.read_options(dataclasses.replace(cfg, **kw))  # noqa: E731
  assert (options(read_threads=-1).num_threads, options(read_threads=-1).prefetch_buffer_size) \
      == (0, 0)
  assert (options(read_threads=3, prefetch_buffer=5).num_threads,
          options(read_threads=3, prefetch_buffer=5).prefetch_buffer_size) == (3, 5)
  for cores, threads in ((2, 1), (8, 4), (64, 16), (None, 1)):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: cores)
    auto = options()
    assert (auto.num_threads, auto.prefetch_buffer_size) == (threads, 2 * threads)


def test_bucket_length_and_trim():
  mask = np.zeros((3, 40), np.int32)
  mask[0, :7], mask[1, :19], mask[2, :] = 1, 1, 0          # the last row is all padding
  assert pipeline.bucket_length(mask, 8, 40) == 24
  assert pipeline.bucket_length(mask, 16, 40) == 32
  assert pipeline.bucket_length(mask, 64, 40) == 40        # never past max_length
  assert pipeline.bucket_length(np.zeros((2, 40), np.int32), 8, 40) == 8
  batch = {"input_ids": np.arange(120).reshape(3, 40), "labels": np.ones((3, 40)),
           "attention_mask": mask, "tower_patches": np.ones((3, 2, 5))}
  short = pipeline.trim_to_length(batch, 24)
  assert short["input_ids"].shape == short["labels"].shape == short["attention_mask"].shape \
      == (3, 24)
  np.testing.assert_array_equal(short["input_ids"], batch["input_ids"][:, :24])
  assert short["tower_patches"] is batch["tower_patches"]
  with pytest.raises(ValueError, match="real tokens beyond"):
    pipeline.trim_to_length(batch, 16)


def test_hint_and_truncation(data):
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  hinted = pipeline.Prepare(cfg, tok, hint_fn=lambda vid, f: "Known common crime types are: "
                            "'Arson'.").map(source[0])
  plain = pipeline.Prepare(cfg, tok).map(source[0])
  assert hinted["attention_mask"].sum() > plain["attention_mask"].sum()
  short = pipeline.Prepare(pipeline.PipelineConfig(**{**cfg.__dict__, "max_length": 80}), tok)
  out = short.map(source[0])
  assert out["input_ids"].shape == (80,) and short.truncated == 1
  with pytest.raises(InputError, match="cuts into the video slots"):
    pipeline.Prepare(pipeline.PipelineConfig(**{**cfg.__dict__, "max_length": 20}), tok).map(
        source[0])


def _bert_tokenizer(items, tmp_path):
  """A BERT tokenizer whose vocab.txt covers every word of the examples (no [UNK])."""
  import re

  from vaujax.data.bert_tokenizer import BertTokenizer
  words = sorted(set(re.findall(r"[a-z0-9]+", json.dumps(items).lower())))
  (tmp_path / "vocab.txt").write_text(
      "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "'"] + words))
  return BertTokenizer.load(str(tmp_path / "vocab.txt"))


def test_qformer_question_ids_and_truncation(data, tmp_path, caplog):
  """The Q-Former's question: BERT ids padded to qformer_max_length; a longer one keeps its end
  and is counted and logged, one that fills the width exactly is not."""
  from vaujax.data.bert_tokenizer import question_text
  root, items, tok, cfg = data
  bert = _bert_tokenizer(items, tmp_path)
  source, _ = pipeline.json_source(str(root / "train.json"))
  full = bert.encode(question_text(source[0]["conversations"]), 1 << 30)
  assert len(full) > 4 and 1 not in full   # no [UNK]: the vocab covers the question
  for width, cut in ((len(full) + 3, 0), (len(full), 0), (len(full) - 2, 1)):
    prep = pipeline.Prepare(pipeline.PipelineConfig(**{**cfg.__dict__,
                                                       "qformer_max_length": width}),
                            tok, bert_tokenizer=bert)
    with caplog.at_level("WARNING"):
      out = prep.map(source[0])
    assert out["qformer_ids"].shape == out["qformer_mask"].shape == (width,)
    kept = out["qformer_ids"][out["qformer_mask"] == 1].tolist()
    assert kept == (full if not cut else [full[0]] + full[-(width - 1):])
    assert prep.questions_truncated == cut
  assert "Q-Former question of" in caplog.text and "qformer_max_length" in caplog.text


def test_imgsp_gives_every_question_a_placeholder_and_its_own_qformer_prompt(data, tmp_path):
  """imgsp: the three questions of an example each get the video slots and a Q-Former row of
  their own text (LLaMA-VID's guided prompts), in order; the sides are fixed per example; more
  questions than data.imgsp_turns is an error naming the example."""
  root, items, tok, cfg = data
  bert = _bert_tokenizer(items, tmp_path)
  source, _ = pipeline.json_source(str(root / "train.json"))
  imgsp = pipeline.PipelineConfig(**{**cfg.__dict__, "qformer_max_length": 24, "imgsp": True,
                                     "imgsp_turns": 4})
  prep = pipeline.Prepare(imgsp, tok, bert_tokenizer=bert)
  out = prep.map(source[0])
  assert (out["input_ids"] == conv.VIDEO_TOKEN_ID).sum() == 3 * cfg.num_video_tokens
  assert out["qformer_ids"].shape == out["qformer_mask"].shape == (4, 24)
  questions = [t["value"].replace("<video>", "").replace("\n", "")
               for t in source[0]["conversations"] if t["from"] == "human"]
  for row, question in enumerate(questions):
    want = bert.encode(question)
    assert out["qformer_ids"][row, :len(want)].tolist() == want
    assert out["qformer_mask"][row].sum() == len(want)
  assert not out["qformer_mask"][3].any()                            # a padding row
  np.testing.assert_array_equal(prep.map(source[0])["input_ids"], out["input_ids"])
  plain = pipeline.Prepare(pipeline.PipelineConfig(**{**cfg.__dict__, "qformer_max_length": 24}),
                           tok, bert_tokenizer=bert).map(source[0])
  assert (plain["input_ids"] == conv.VIDEO_TOKEN_ID).sum() == cfg.num_video_tokens
  np.testing.assert_array_equal(plain["qformer_ids"], out["qformer_ids"][0])
  with pytest.raises(InputError, match=r"3 questions, more than data.imgsp_turns=2"):
    pipeline.Prepare(pipeline.PipelineConfig(**{**imgsp.__dict__, "imgsp_turns": 2}), tok,
                     bert_tokenizer=bert).map(source[0])


def test_missing_or_bad_features_error_or_skip(data, tmp_path):
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  broken = dict(source[0], video="videos/Nowhere001_x264.mp4")
  with pytest.raises(InputError, match=r"Nowhere001_x264.npz: feature file does not exist"):
    pipeline.Prepare(cfg, tok).map(broken)
  kept, problems = pipeline.drop_examples_without_features([broken] + source[1:], cfg)
  assert len(kept) == len(source) - 1 and len(problems) == 1
  wrong = pipeline.PipelineConfig(**{**cfg.__dict__, "feature_shapes": {"tower_patches": (N, 7)}})
  with pytest.raises(InputError, match="expected \\[T, 9, 7\\]"):
    pipeline.Prepare(wrong, tok).map(source[0])


def test_tfds_builder_gives_identical_batches(data, tmp_path):
  import tensorflow_datasets as tfds
  root, _, tok, cfg = data
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "train.json").write_text((root / "train.json").read_text())
  tfds_builders.build(tfds_builders.InstructionData, str(tmp_path / "tfds"), str(manual))
  tsrc = pipeline.TFDSInstructionSource(tfds.data_source("vaujax_instructions",
                                                         data_dir=str(tmp_path / "tfds"),
                                                         split="train"))
  jsrc, _ = pipeline.json_source(str(root / "train.json"))
  a = _collect(pipeline.make_dataset(jsrc, cfg, tok))
  b = _collect(pipeline.make_dataset(tsrc, cfg, tok))
  assert len(a) == len(b) > 0
  for x, y in zip(a, b):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_tfds_mc_benchmark_builder(tmp_path):
  import tensorflow_datasets as tfds
  manual = tmp_path / "m"
  manual.mkdir()
  item = {"id": "v_type", "video": "v.mp4", "question": "Which?", "options": ["a", "b", "c", "d"],
          "answer": "C", "category": "type", "gt_interval": None, "label": "Arson"}
  (manual / "test.json").write_text(json.dumps([item]))
  tfds_builders.build(tfds_builders.MultipleChoiceBenchmark, str(tmp_path / "t"), str(manual))
  src = tfds.data_source("vaujax_multiple_choice", data_dir=str(tmp_path / "t"), split="test")
  assert json.loads(src[0]["options"]) == ["a", "b", "c", "d"] and src[0]["answer"] == b"C"


def test_hint_jitter_draws_anew_per_read_and_the_stream_repeats_exactly(data):
  """With hint_jitter, the hint function gets the jitter and a generator seeded by the
  example's place in the repeated, shuffled stream: an example read in two epochs gets two
  draws, and a rebuilt dataset (a resumed run) the same draws in the same order. Without it,
  the hint function is called as before, with no draw."""
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))

  def read(jitter=0.5, state=None, batches=None):
    """(the iterator's state after `batches` batches (None: all), [(video, jitter, draw)])."""
    calls = []

    def hint(vid, feats, jitter=None, rng=None):
      calls.append((vid, jitter, None if rng is None else round(float(rng.uniform()), 9)))
      return "Known common crime types are: 'Arson'."
    jcfg = pipeline.PipelineConfig(**{**cfg.__dict__, "num_epochs": 2, "hint_jitter": jitter,
                                      "read_threads": -1})
    it = iter(pipeline.make_dataset(source, jcfg, tok, hint_fn=hint))
    if state is not None:
      it.set_state(state)
    _ = list(it) if batches is None else [next(it) for _ in range(batches)]
    return it.get_state(), calls

  calls = read()[1]
  assert calls == read()[1]                                 # a rebuilt stream: the same draws
  assert len(calls) >= len(source) and all(j == 0.5 for _, j, _ in calls)
  by_video = {}
  for vid, _, draw in calls:
    by_video.setdefault(vid, []).append(draw)
  twice = [d for d in by_video.values() if len(d) >= 2]
  assert twice and all(len(set(d)) == len(d) for d in twice)   # each read its own draw
  assert all(j is None and d is None for _, j, d in read(jitter=0.0)[1])   # off: no draw

  # a resumed run (the trainer restores the iterator's state) reads the same draws
  state, first = read(batches=3)
  rest = read(batches=6)[1]
  resumed = read(state=state, batches=3)[1]
  assert rest[:len(first)] == first and resumed == rest[len(first):]


def test_labelled_hint_regions_pass_each_items_events_to_the_hint(data, tmp_path):
  """hint_labels (data.train_hint_labels): the hint function gets each item's annotated events (those
  `instructions.attach_events` wrote, validated on reading); an item without them is refused
  naming it; "tower" passes none, as before."""
  root, items, tok, cfg = data
  vids, _ = ann.read_uca(str(root / "syn" / "uca.json"), anomaly_intervals={
      k: v["anomaly_intervals"] for k, v in json.loads((root / "syn" / "labels.json")
                                                       .read_text()).items()})
  labelled = instructions.attach_events(items, vids)
  assert all([[e["start"], e["end"]] for e in i["events"]] == i["anomaly_intervals"]
             for i in labelled) and any(i["events"] for i in labelled)
  path = tmp_path / "train.json"
  instructions.write_json(str(path), labelled)
  source, _ = pipeline.json_source(str(path))
  calls = []

  def hint(vid, feats, events=None):
    calls.append((vid, events))
    return "Known common crime types are: 'Arson'."
  lcfg = pipeline.PipelineConfig(**{**cfg.__dict__, "hint_labels": True, "read_threads": -1})
  _collect(pipeline.make_dataset(source, lcfg, tok, hint_fn=hint))
  by_video = {pipeline.video_key(i): i["events"] for i in labelled}
  assert len(calls) == len(labelled) and all(e == by_video[v] for v, e in calls)
  calls.clear()
  _collect(pipeline.make_dataset(source, pipeline.PipelineConfig(
      **{**cfg.__dict__, "read_threads": -1}), tok, hint_fn=hint))
  assert calls and all(e is None for _, e in calls)     # off: no events passed
  plain, _ = pipeline.json_source(str(root / "train.json"))
  with pytest.raises(InputError, match=rf"{items[0]['id']}.*train_hint_labels needs the "
                     "training item's annotated 'events'"):
    pipeline.Prepare(lcfg, tok, hint).map(plain[0])
  bad = [{**labelled[0], "events": [{"start": 2.0, "end": 1.0, "region": None}]}]
  path.write_text(json.dumps(bad))
  with pytest.raises(InputError, match=r"train\.json.*events\[0\] ends before it starts"):
    pipeline.json_source(str(path))


def test_tetgs_own_frames_reach_the_hint_but_not_the_batch(data, tmp_path):
  """A feature file with TETG's denser frames (tetg_cls [S, D], tetg_timestamps [S]) gives
  the hint function all of them and batches exactly like one without: the batch holds the
  model's T frames only, so files with and without them (and other S) stack together."""
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  feats_dir = tmp_path / "feats"
  feats_dir.mkdir()
  for n, p in enumerate(sorted((root / "feats").iterdir())):
    f = features.read_features(str(p))
    if n % 2 == 0:   # every other file: TETG frames of their own, of different counts
      f = {**f, "tetg_cls": np.ones((6 + n, 5), np.float32),
           "tetg_timestamps": np.arange(6.0 + n) * 0.5}
    features.write_features(str(feats_dir / p.name), f)
  seen = {}

  def hint(vid, f):
    seen[vid] = len(features.tetg_inputs(f)[1])
    return "Known common crime types are: 'Arson'."
  dense_cfg = pipeline.PipelineConfig(**{**cfg.__dict__, "feature_dir": str(feats_dir)})
  plain = [pipeline.Prepare(cfg, tok, hint_fn=hint).map(item) for item in source]
  dense = [pipeline.Prepare(dense_cfg, tok, hint_fn=hint).map(item) for item in source]
  assert any(n > T for n in seen.values())           # the hint saw the denser frames
  for a, b in zip(plain, dense):
    assert set(a) == set(b) and not set(b) & set(features.TETG_KEYS)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  batch = next(iter(pipeline.make_dataset(source, dense_cfg, tok, hint_fn=hint)))
  assert batch["tower_patches"].shape[1:] == (T, N, DV)


def _text_item(i):
  return {"id": f"t{i}", "conversations": [
      {"from": "human", "value": f"Drill {i}: when does the anomaly happen?"},
      {"from": "gpt", "value": f"From {i}.0 to {i + 2}.0 seconds."}]}


def test_modality_grouped_epochs_order():
  """Each epoch: every batch one kind, but for at most one mixed batch of the leftovers; no
  item twice; fewer than a batch sit the epoch out, and not always the same ones; epochs differ;
  a pure function of (seed, position)."""
  items = [{"id": f"v{i}", "video": f"v{i}.mp4"} for i in range(23)] + \
      [_text_item(i) for i in range(17)]
  source = [dict(item, _index=i) for i, item in enumerate(items)]
  grouped = pipeline.ModalityGroupedEpochs(source, 4, 5, seed=1)
  assert grouped.epoch_length == 40 and len(grouped) == 200
  left_out, orders = [], []
  for epoch in range(5):
    order = grouped.order(epoch)
    orders.append(order.tolist())
    assert len(set(order.tolist())) == 40 and sorted(order.tolist()) == list(range(40))
    kinds = [[pipeline.is_text_only(source[i]) for i in batch] for batch in order.reshape(-1, 4)]
    mixed = [k for k in kinds if len(set(k)) > 1]
    assert len(mixed) <= 1
    assert sum(all(k) for k in kinds) == 17 // 4 and sum(not any(k) for k in kinds) == 23 // 4
  assert len({tuple(o) for o in orders}) == 5
  odd = pipeline.ModalityGroupedEpochs(source[:39], 4, None, seed=1)   # 39 = 9 batches + 3
  assert odd.epoch_length == 36 and len(odd) > 10 ** 12
  for epoch in range(6):
    left_out.append(frozenset(range(39)) - set(odd.order(epoch).tolist()))
  assert all(len(s) == 3 for s in left_out) and len(set(left_out)) > 1
  again = pipeline.ModalityGroupedEpochs(source, 4, 5, seed=1)
  assert [again[i]["_index"] for i in range(200)] == [grouped[i]["_index"] for i in range(200)]
  assert pipeline.ModalityGroupedEpochs(source, 4, 5, seed=2).order(0).tolist() != orders[0]
  with pytest.raises(IndexError):
    grouped[200]
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.ModalityGroupedEpochs(source, 0, 1, seed=0)


def test_grouped_pipeline_batches_one_kind_resumes_and_shards(data):
  """Through the real pipeline (video and text-only items): every batch one kind but for the
  epoch's one mixed batch, each item once an epoch, an exact resume, and with two processes
  each process's batches are one kind and the shards disjoint."""
  root, items, tok, cfg = data
  source, _ = pipeline.json_source(str(root / "train.json"))
  source = source + [dict(_text_item(i), _index=len(source) + i) for i in range(9)]
  grouped = pipeline.PipelineConfig(**{**cfg.__dict__, "num_epochs": 2, "batch_size": 4,
                                       "group_by_modality": True, "num_frames": T})
  full = [b["example_index"].tolist() for b in _collect(
      pipeline.make_dataset(source, grouped, tok))]
  n = len(source)
  assert len(full) == 2 * (n // 4)
  is_text = lambda i: i >= len(items)  # noqa: E731
  for epoch in (full[:n // 4], full[n // 4:]):
    flat = [i for b in epoch for i in b]
    assert len(set(flat)) == len(flat) == n // 4 * 4
    assert sum(len({is_text(i) for i in b}) > 1 for b in epoch) <= 1
  it = iter(pipeline.make_dataset(source, grouped, tok))
  head = [next(it)["example_index"].tolist() for _ in range(5)]
  resumed = iter(pipeline.make_dataset(source, grouped, tok))
  resumed.set_state(json.loads(json.dumps(it.get_state())))
  assert head + [b["example_index"].tolist() for b in resumed] == full
  shards = [[b["example_index"].tolist() for b in pipeline.make_dataset(
      source, pipeline.PipelineConfig(**{**grouped.__dict__, "batch_size": 2}), tok,
      process_index=p, process_count=2)] for p in (0, 1)]
  for a, b in zip(*shards):    # one global batch of 4: its two halves
    assert not set(a) & set(b)
  assert [len({is_text(i) for i in a + b}) > 1 for a, b in zip(*shards)].count(True) <= 2
  assert [sorted(a + b) for a, b in zip(*shards)] == [sorted(b) for b in full]
  unshuffled = pipeline.PipelineConfig(**{**grouped.__dict__, "shuffle": False})
  ordered = [b["example_index"].tolist() for b in _collect(
      pipeline.make_dataset(source, unshuffled, tok), 3)]
  assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]   # evaluation: file order
