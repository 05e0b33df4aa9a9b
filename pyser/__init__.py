"""pyser: streaming, real-time speech emotion recognition."""

from pyser.features import (
    FeatureConfig,
    StreamingFeatures,
    extract_features,
    extract_features_batch,
)

__version__ = "0.1.0"

__all__ = [
    "FeatureConfig",
    "StreamingFeatures",
    "__version__",
    "extract_features",
    "extract_features_batch",
]
