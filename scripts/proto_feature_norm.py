"""Prototype (not shipped): how much would feature normalisation per utterance or per
speaker help the CRNN? Runs the ablation's base variant on features transformed in memory.

    python scripts/proto_feature_norm.py spk [KEY=VALUE ...] [--resume]
    -> runs/proto_norm/spk/results.md (docs/training.md quotes it)

    utt: each utterance's (3 s crop) per-bin time mean removed (what a per-segment
         normalisation at runtime could at best give)
    spk: each speaker's per-bin mean over all their frames removed, global mean added back
         (transductive: test speakers' own unlabelled statistics; the baseline's protocol)
"""
import logging
import sys
from collections import defaultdict

import numpy as np

from pyser.training.config import load_experiment
from pyser.training.data import prepare_data
from pyser.training.runtime import setup_runtime
from pyser.training.train import run

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
mode = sys.argv[1]
overrides = [f"experiment=proto_norm/{mode}"] + [a for a in sys.argv[2:] if a != "--resume"]
cfg = load_experiment("ablation_pooled", overrides).config  # = its empty "base" variant
data = prepare_data(cfg, setup_runtime(cfg.device))
mem = data.store._mem  # the preloaded (cropped) features; a prototype reaches in
if mode == "utt":
    for i, x in enumerate(mem):
        mem[i] = (x - x.mean(axis=0, keepdims=True)).astype(np.float32)
elif mode == "spk":
    groups = defaultdict(list)
    for i, u in enumerate(data.utts):
        groups[(u.corpus, u.speaker)].append(i)
    overall = np.concatenate(mem).mean(axis=0)
    for idx in groups.values():
        m = np.concatenate([mem[i] for i in idx]).mean(axis=0)
        for i in idx:
            mem[i] = (mem[i] - m + overall).astype(np.float32)
else:
    raise SystemExit(f"unknown mode {mode}")
out = run(cfg, resume="--resume" in sys.argv, data=data)
by_corpus = out["summary"].get("test_by_corpus", {})
print(out["summary"]["test"]["ua"], {c: s["ua"] for c, s in by_corpus.items()})
