#!/usr/bin/env bash
# Sets everything up, then recognises emotion in speech with the bundled model:
#   - from the microphone (`pyser listen`, Ctrl-C to stop) where an input device exists;
#   - otherwise from a speech clip: a real one from the corpora in ../shared/data when they
#     are there, else one that espeak-ng synthesises (synthetic speech carries no real
#     emotion: it only shows the pipeline working).
# Arguments are passed to `pyser listen` (e.g. --json, --device 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYSER=.venv/bin/pyser

if .venv/bin/python -c "import sys; from pyser.audio import list_input_devices
sys.exit(0 if list_input_devices() else 1)" 2>/dev/null; then
  echo "==> pyser listen: speak into the microphone, Ctrl-C to stop"
  exec "$PYSER" listen "$@"
fi

echo "==> no microphone (PortAudio lists no input device): recognising a speech clip instead"
mkdir -p demo
clip=""
# Acted angry speech from the corpora. The bundled model trained on every speaker there,
# so this shows the pipeline; its accuracy on unseen speakers is in docs/MODEL_CARD.md.
for candidate in ../shared/data/ravdess/Actor_02/03-01-05-02-01-01-02.flac \
                 ../shared/data/emodb/wav/03a01Wa.flac; do
  if [ -f "$candidate" ]; then clip=$candidate; break; fi
done
if [ -z "$clip" ]; then
  clip=demo/speech.wav
  echo "    (no corpus clip found; synthesising one with espeak-ng: synthetic speech carries no"
  echo "     real emotion, so this only shows the pipeline working)"
  espeak-ng -w "$clip" "I can't believe you did that again. This is absolutely unacceptable!"
else
  echo "    clip: $clip (acted anger; this speaker is in the bundled model's training data,"
  echo "     so it shows the pipeline, not accuracy on new speakers: see docs/MODEL_CARD.md)"
fi
echo "==> pyser stream $clip  (the streaming path, as the microphone would feed it)"
"$PYSER" stream "$clip"
echo "==> pyser predict $clip  (the whole file at once)"
"$PYSER" predict "$clip"
echo
echo "For any sound file: .venv/bin/pyser stream FILE  |  .venv/bin/pyser predict FILE --timeline"
