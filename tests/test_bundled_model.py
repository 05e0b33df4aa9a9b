"""The model bundled in pyser/assets: it loads with no argument, says what it is, and its
TorchScript and ONNX files agree on real speech."""

import numpy as np
import pytest
import soundfile as sf

from pyser import Recognizer
from pyser.stream import Partial, Utterance, bundled_model_path


def test_loads_with_no_argument_and_describes_itself():
    rec = Recognizer.load()
    assert rec.labels == ("neutral", "angry", "happy", "sad")
    assert rec.feature_config.sample_rate == 16000 and rec.feature_config.n_bins == 128
    prov = rec.metadata.provenance
    assert prov["bundled"] is True and "MODEL_CARD" in prov["note"]
    assert set(prov["training_data"]) == {"emodb", "ravdess", "tess"}
    assert "non-commercial" in prov["licence"]
    # trained on every speaker: its held-out figures are those of its recipe's cross-validation
    assert prov["split"] == "all" and set(prov["metrics"]) == {"train"}
    cv = prov["cross_validation"]
    assert cv["folds_run"] >= 5 and "speaker split" in cv["protocol"]
    assert cv["test_last_step"]["ua"]["mean"] > 0.25  # better than chance on unseen speakers
    assert set(cv["test_by_corpus"]) == {"emodb", "ravdess", "tess"}
    # the recipe adapts to the speaker: streamed figures, and each utterance alone
    assert set(cv["test_unadapted_by_corpus"]) == {"emodb", "ravdess", "tess"}
    assert cv["test_unadapted"]["ua"]["mean"] > 0.25
    # and its figures as predict and streams read utterances (speech span + margin)
    served = cv["as_served"]["ua"]
    assert served["speech+0.5 streamed"]["n"] == served["speech+0.5 alone"]["n"] == cv["folds_run"]
    assert served["speech+0.5 streamed"]["mean"] > 0.25 and cv["as_served"]["part"] == "test"
    assert rec.adaptation is not None and rec.adaptation.n_bins == 128
    assert rec.adaptation.prior_frames == 300
    assert -100 < rec.adaptation.population_mean.mean() < 20  # dB of speech, not of silence
    # output normalisation, scored as shipped in the same fold runs
    assert served["speech+0.5 streamed+out"]["n"] == cv["folds_run"]
    assert rec.adaptation.logit_mean.shape == (4,) and rec.adaptation.logit_prior == 8
    assert np.abs(rec.adaptation.logit_mean).max() < 20  # logits, in the folded scale
    assert rec.adaptation.logit_std.shape == (4,) and (rec.adaptation.logit_std > 0).all()
    # the last-step folds' temperature is folded into the model
    assert prov["temperature"] == cv["calibration_last"]["temperature"]["mean"] > 0
    assert bundled_model_path("onnx").stat().st_size < 5 * 2**20


def test_silence_and_noise_are_not_given_an_emotion():
    rec = Recognizer.load()
    rng = np.random.default_rng(0)
    for audio in (np.zeros(16000, np.float32), (0.05 * rng.standard_normal(16000)).astype(np.float32)):
        assert rec.predict(audio, 16000).label is None


@pytest.mark.corpus
def test_torchscript_and_onnx_agree_on_real_speech(data_root):
    x, rate = sf.read(data_root / "emodb" / "wav" / "03a01Wa.flac", dtype="float32")
    gap = np.zeros(rate, np.float32)
    audio = np.concatenate([gap[: rate // 2], x, x, gap, x, gap])  # the last one is adapted
    runs = []
    for backend in ("torchscript", "onnx"):
        rec = Recognizer.load(backend=backend)
        p = rec.predict(audio, rate)
        stream = rec.create_stream()
        events = stream.accept_waveform(audio, rate) + stream.flush()
        assert stream.speaker is not None and stream.speaker.speech_frames > 0
        assert stream.speaker.utterances == 2  # the second result was output-normalised
        runs.append((p, [e for e in events if isinstance(e, (Partial, Utterance))]))
    (p_ts, ev_ts), (p_ox, ev_ox) = runs
    assert p_ts.label == p_ox.label is not None
    np.testing.assert_allclose(list(p_ts.probabilities.values()),
                               list(p_ox.probabilities.values()), atol=1e-4)
    assert len(ev_ts) == len(ev_ox) >= 3
    assert sum(isinstance(e, Utterance) for e in ev_ts) == 2
    for a, b in zip(ev_ts, ev_ox):
        assert (a.type, a.start, a.end) == (b.type, b.start, b.end)
        np.testing.assert_allclose(list(a.probabilities.values()),
                                   list(b.probabilities.values()), atol=1e-4)
