#!/usr/bin/env bash
# Sets everything up, then runs pyser on a 3 s test signal it generates
# (a gliding harmonic tone with noise; any WAV/FLAC file works the same way).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo
.venv/bin/python - <<'PY'
import numpy as np, soundfile as sf
sr, t = 16000, np.arange(3 * 16000) / 16000
f0 = 140 + 60 * np.sin(2 * np.pi * 0.5 * t)
phase = 2 * np.pi * np.cumsum(f0) / sr
y = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
y += 0.02 * np.random.default_rng(0).standard_normal(len(t))
sf.write("demo/tone.wav", (0.3 * y / np.abs(y).max()).astype(np.float32), sr, subtype="PCM_16")
PY
.venv/bin/pyser features demo/tone.wav --png demo/tone.png
