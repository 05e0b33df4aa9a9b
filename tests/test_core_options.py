"""The C++ options (issue 8, finding 5): string options are parsed into enums
when they are set, a FeatureConfig is validated once into an immutable
``_core.ValidatedOptions``, and the extractors accept nothing else, so no call
re-parses or re-validates.
"""

import numpy as np
import pytest

from pyser import FeatureConfig, _core, extract_features


@pytest.mark.parametrize(
    "field, value, message",
    [("kind", "mfcc", "kind.*'mel' or 'stft'"),
     ("window", "kaiser", "window.*hamming"),
     ("pad_mode", "edge", "pad_mode.*reflect"),
     ("norm", "l2", "norm.*slaney")],
)
def test_string_options_are_parsed_when_set(field, value, message):
    options = _core.FeatureOptions()
    with pytest.raises(ValueError, match=message):
        setattr(options, field, value)


def test_string_options_round_trip():
    options = _core.FeatureOptions()
    for field, values in [("kind", ["mel", "stft"]), ("window", ["hamming", "hann", "rectangular"]),
                          ("pad_mode", ["reflect", "constant"]), ("norm", ["slaney", "none"])]:
        for value in values:
            setattr(options, field, value)
            assert getattr(options, field) == value
    options.window = "boxcar"  # scipy's name for the rectangular window
    assert options.window == "rectangular"


def test_validated_options_are_immutable():
    cfg = FeatureConfig()
    validated = cfg._options()
    assert isinstance(validated, _core.ValidatedOptions)
    with pytest.raises(AttributeError):
        validated.n_fft = 512
    assert validated.n_bins == 128
    # Reading gives a copy: changing it cannot reach the frozen config's options.
    copy = validated.options
    copy.n_fft = 512
    assert validated.options.n_fft == 1024


def test_extractors_accept_only_validated_options():
    raw = _core.FeatureOptions()
    raw.n_fft = 1000  # invalid, never validated
    x = np.zeros(4000, np.float32)
    for call in (lambda: _core.extract_features(raw, x),
                 lambda: _core.extract_features_batch(raw, [x]),
                 lambda: _core.StreamingFeatures(raw),
                 lambda: _core.num_frames(raw, 4000),
                 lambda: _core.mel_filterbank(raw),
                 lambda: _core.frame_window(raw)):
        with pytest.raises(TypeError):
            call()


def test_validation_happens_once_when_the_config_is_built():
    raw = _core.FeatureOptions()
    raw.n_fft = 1000
    with pytest.raises(ValueError, match="n_fft.*power of two"):
        _core.ValidatedOptions(raw)
    raw.n_fft = 2048
    validated = _core.ValidatedOptions(raw)
    raw.n_fft = 1000  # later changes to the builder do not reach the validated copy
    assert validated.options.n_fft == 2048
    out = _core.extract_features(validated, np.zeros(4000, np.float32))
    assert out.shape == (1 + (4000 - 2048) // 160, 128)
    assert np.array_equal(out, extract_features(np.zeros(4000, np.float32),
                                                FeatureConfig(n_fft=2048)))
