"""pyser: streaming, real-time speech emotion recognition.

``Recognizer`` and the streaming names load on first use (they bring in torch), so that
``import pyser`` for features alone stays light.
"""

from typing import Any

from pyser.adapt import SpeakerState
from pyser.features import (
    FeatureConfig,
    StreamingFeatures,
    extract_features,
    extract_features_batch,
)

__version__ = "0.1.0"

_STREAM_NAMES = (
    "EmotionStream",
    "Partial",
    "Prediction",
    "Recognizer",
    "SpeechEnd",
    "SpeechStart",
    "Utterance",
)

__all__ = [
    "EmotionStream",
    "FeatureConfig",
    "Partial",
    "Prediction",
    "Recognizer",
    "SpeechEnd",
    "SpeakerState",
    "SpeechStart",
    "StreamingFeatures",
    "Utterance",
    "VadConfig",
    "__version__",
    "extract_features",
    "extract_features_batch",
]


def __getattr__(name: str) -> Any:
    if name in _STREAM_NAMES:
        from pyser import stream

        return getattr(stream, name)
    if name == "VadConfig":
        from pyser.vad import VadConfig

        return VadConfig
    raise AttributeError(f"module 'pyser' has no attribute {name!r}")
