"""Online speaker adaptation: the estimate's arithmetic, the training histories, and the
runtime (Recognizer.predict with a speaker, EmotionStream) on real speech."""

import dataclasses
import itertools

import numpy as np
import pytest
import soundfile as sf
from crnn_factory import random_crnn
import torch
from pyser.training.speaker_adapt import (LogitMemory, SpeakerHistory, SpeechStats,
                                          adapt_batch, normalize_logits, speech_stats,
                                          stream_orders)

from pyser.adapt import MAX_GAIN, SpeakerAdaptation, SpeakerState
from pyser.features import FeatureConfig, extract_features
from pyser.model import ModelFileError, ModelMetadata, save_model
from pyser.stream import SPEECH_MARGIN_S, Recognizer, Utterance, _softmax
from pyser.vad import VadConfig, speech_mask, speech_span

LABELS = ["neutral", "angry", "happy", "sad"]
SR = 16000
CLIPS = ["Actor_01/03-01-05-02-01-01-01.flac", "Actor_01/03-01-04-01-02-01-01.flac"]


def adaptation(n_bins=128, seed=0, prior=300.0, scale=False, logits=False):
    rng = np.random.default_rng(seed)
    mean = -40.0 + 5.0 * rng.standard_normal(n_bins)
    return SpeakerAdaptation(mean, prior, 12.0 + rng.random(n_bins) * 6 if scale else None,
                             rng.standard_normal(len(LABELS)) if logits else None,
                             logit_std=rng.uniform(0.5, 2.0, len(LABELS)) if logits else None)


# ------------------------------------------------------------------- the estimate


def test_shift_is_zero_without_history_and_shrinks_toward_the_speaker_mean():
    a = adaptation(n_bins=4, prior=100.0)
    state = a.new_speaker()
    assert np.array_equal(state.shift, np.zeros(4, np.float32))
    frames = np.tile(a.population_mean + np.array([6.0, -3.0, 0.0, 1.0]), (100, 1))
    state.add(frames)
    # 100 prior frames at the population mean + 100 frames offset by d: the mean moves d/2
    np.testing.assert_allclose(state.shift, -np.array([3.0, -1.5, 0.0, 0.5]), atol=1e-5)
    state.add(np.tile(a.population_mean + np.array([6.0, -3.0, 0.0, 1.0]), (9800, 1)))
    np.testing.assert_allclose(state.shift, -0.99 * np.array([6.0, -3.0, 0.0, 1.0]), atol=1e-4)
    state.reset()
    assert state.speech_frames == 0 and not state.shift.any()


def test_bad_frames_and_constants_are_refused_and_leave_the_state_as_it_was():
    a = adaptation(n_bins=4)
    state = a.new_speaker()
    state.add(np.zeros((5, 4)))
    before = state.shift.copy()
    for bad in (np.zeros((5, 3)), np.zeros(4), np.full((2, 4), np.nan)):
        with pytest.raises(ValueError, match="SpeakerState.add"):
            state.add(bad)
    assert np.array_equal(state.shift, before) and state.speech_frames == 5
    with pytest.raises(ValueError, match="prior_frames"):
        SpeakerAdaptation(np.zeros(4), 0.0)
    with pytest.raises(ValueError, match="population_mean"):
        SpeakerAdaptation(np.array([0.0, np.inf]), 10.0)
    with pytest.raises(ValueError, match="malformed"):
        SpeakerAdaptation.from_dict({"prior_frames": 3.0})


def test_metadata_round_trips_and_is_checked_against_the_features(tmp_path):
    a = adaptation()
    meta = ModelMetadata(labels=LABELS, feature_config=FeatureConfig(),
                         speaker_adaptation=a.to_dict())
    again = ModelMetadata.from_json(meta.to_json()).adaptation()
    np.testing.assert_array_equal(again.population_mean, a.population_mean)
    assert again.prior_frames == a.prior_frames
    assert "speaker_adaptation" not in ModelMetadata(labels=LABELS).to_dict()
    with pytest.raises(ModelFileError, match="bins"):
        ModelMetadata.from_dict({**meta.to_dict(),
                                 "speaker_adaptation": adaptation(n_bins=64).to_dict()})


def test_output_normalisation_moves_a_speakers_mean_output_onto_the_populations():
    mean = np.array([0.5, -0.2, 0.1, -0.4])
    a = SpeakerAdaptation(np.zeros(8), 100.0, logit_mean=mean, logit_prior=2.0)
    state = a.new_speaker()
    logits = np.array([3.0, -1.0, 0.0, 1.0])
    assert state.logit_affine is None and np.array_equal(state.score(logits), logits)
    speaker = mean + np.array([1.0, 0.0, -2.0, 0.5])  # this voice's outputs, on average
    state.add_logits(speaker)
    # 2 prior utterances at the population mean + 1 at the speaker's: a third of the way
    np.testing.assert_allclose(state.score(logits), logits - (speaker - mean) / 3)
    np.testing.assert_array_equal(state.logit_affine[0], np.ones(4))  # no logit_std: no gain
    for _ in range(998):
        state.add_logits(speaker)
    assert state.utterances == 999
    np.testing.assert_allclose(state.score(speaker), mean, atol=0.01)
    np.testing.assert_allclose(state.score(np.stack([speaker, speaker + 1])),
                               np.stack([mean, mean + 1]), atol=0.01)  # any batch shape
    state.reset()
    assert state.utterances == 0 and state.logit_affine is None
    assert np.array_equal(state.score(logits), logits)


def test_output_normalisation_with_logit_std_maps_a_speakers_spread_onto_the_populations():
    mean, std = np.array([0.5, -0.2, 0.1, -0.4]), np.array([1.0, 2.0, 1.5, 0.5])
    a = SpeakerAdaptation(np.zeros(8), 100.0, logit_mean=mean, logit_prior=8.0,
                          logit_std=std)
    rng = np.random.default_rng(1)
    spread = np.array([2.0, 1.0, 1.5, 4.0])  # wider, narrower, the same, much wider
    heard = mean + 1.0 + rng.standard_normal((20000, 4)) * spread
    state = a.new_speaker()
    for row in heard:
        state.add_logits(row)
    scored = state.score(heard)
    np.testing.assert_allclose(scored.mean(axis=0), mean, atol=0.05)
    # the gain maps each spread onto the population's, but never beyond MAX_GAIN either way
    np.testing.assert_allclose(state.logit_affine[0],
                               np.clip(std / spread, 1 / MAX_GAIN, MAX_GAIN), rtol=0.03)
    np.testing.assert_allclose(scored.std(axis=0)[:3], std[:3], rtol=0.03)
    flat = a.new_speaker()  # a speaker who always says the same: gain capped, not infinite
    for _ in range(1000):
        flat.add_logits(mean + 0.3)
    np.testing.assert_allclose(flat.logit_affine[0], np.full(4, MAX_GAIN))
    np.testing.assert_allclose(flat.score(mean + 0.3), mean, atol=0.02)


def test_output_normalisation_is_off_without_logit_mean_and_checked_when_set():
    plain = adaptation(n_bins=4).new_speaker()
    plain.add_logits(np.array([1.0, 2.0, 3.0, 4.0]))  # a shift-only model: ignored
    assert plain.utterances == 0 and plain.logit_affine is None
    state = adaptation(n_bins=4, logits=True).new_speaker()
    state.add_logits(np.ones(4))
    before = state.logit_affine.copy()
    for bad in (np.ones(3), np.array([0.0, np.nan, 0.0, 0.0])):
        with pytest.raises(ValueError, match="SpeakerState.add_logits"):
            state.add_logits(bad)
    assert np.array_equal(state.logit_affine, before) and state.utterances == 1
    with pytest.raises(ValueError, match="logit_mean"):
        SpeakerAdaptation(np.zeros(4), 10.0, logit_mean=np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="logit_prior"):
        SpeakerAdaptation(np.zeros(4), 10.0, logit_mean=np.zeros(4), logit_prior=0.0)
    for mean, std in ((None, np.ones(4)), (np.zeros(4), np.ones(3)), (np.zeros(4), np.zeros(4))):
        with pytest.raises(ValueError, match="logit_std"):
            SpeakerAdaptation(np.zeros(4), 10.0, logit_mean=mean, logit_std=std)


def test_normalize_logits_walks_each_speaker_in_stream_order_never_using_an_item_itself():
    rng = np.random.default_rng(3)
    speakers = ["b", "a", "b", "c", "a", "b", "a", "b"]
    logits = rng.standard_normal((8, 4)) + np.array([[2.0, 0, 0, 0]])
    a = adaptation(n_bins=4, logits=True)
    out = normalize_logits(logits, speakers, 7, a)
    orders = stream_orders(speakers, 7)
    assert sorted(np.concatenate(orders).tolist()) == list(range(8))
    for order in orders:
        state = a.new_speaker()
        np.testing.assert_array_equal(out[order[0]], logits[order[0]])  # no history yet
        for p in order:
            np.testing.assert_allclose(out[p], state.score(logits[p]))
            state.add_logits(logits[p])
    changed = logits.copy()
    last = orders[0][-1]  # the last item of a speaker never moves the others
    changed[last] += 5.0
    again = normalize_logits(changed, speakers, 7, a)
    keep = np.arange(8) != last
    np.testing.assert_array_equal(again[keep], out[keep])
    assert np.array_equal(normalize_logits(logits, speakers, 7, adaptation(n_bins=4)), logits)


def test_logit_constants_round_trip_and_must_match_the_labels(tmp_path):
    a = adaptation(logits=True)
    meta = ModelMetadata(labels=LABELS, feature_config=FeatureConfig(),
                         speaker_adaptation=a.to_dict())
    again = ModelMetadata.from_json(meta.to_json()).adaptation()
    np.testing.assert_array_equal(again.logit_mean, a.logit_mean)
    np.testing.assert_array_equal(again.logit_std, a.logit_std)
    assert again.logit_prior == a.logit_prior == 8.0
    assert "logit_mean" not in adaptation().to_dict()  # older models' files stay as they were
    path = tmp_path / "m.pt"
    bad = {k: v for k, v in a.to_dict().items() if k != "logit_std"}
    bad["logit_mean"] = [0.0, 1.0, 2.0]
    save_model(path, random_crnn(seed=5), ModelMetadata(
        labels=LABELS, feature_config=FeatureConfig(), speaker_adaptation=bad))
    with pytest.raises(ModelFileError, match="3 logit_mean values for 4 labels"):
        Recognizer.load(path)


def test_affine_maps_a_long_history_onto_the_population_mean_and_spread():
    pop_mean, pop_std = np.array([-40.0, -50.0, -60.0]), np.array([6.0, 5.0, 4.0])
    a = SpeakerAdaptation(pop_mean, 100.0, pop_std)
    assert np.array_equal(a.affine(np.zeros(3), np.zeros(3), 0),
                          np.stack([np.ones(3), np.zeros(3)]).astype(np.float32))
    rng = np.random.default_rng(3)
    mean, std = np.array([-30.0, -55.0, -61.0]), np.array([9.0, 5.0, 3.0])
    frames = mean + std * rng.standard_normal((200_000, 3))
    gain, offset = a.affine(frames.sum(axis=0), np.square(frames).sum(axis=0), len(frames))
    mapped = frames * gain + offset
    np.testing.assert_allclose(mapped.mean(axis=0), pop_mean, atol=0.05)
    np.testing.assert_allclose(mapped.std(axis=0), pop_std, rtol=0.01)
    # a flat history (one repeated frame) cannot blow the bins up
    flat = np.tile(mean, (1000, 1))
    gain, _ = a.affine(flat.sum(axis=0), np.square(flat).sum(axis=0), len(flat))
    assert (gain <= MAX_GAIN).all() and (gain >= 1 / MAX_GAIN).all() and gain.max() == MAX_GAIN


def test_a_scaling_speaker_state_applies_the_gain_and_offset_of_what_it_heard():
    a = adaptation(n_bins=4, prior=100.0, scale=True)
    state = a.new_speaker()
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 50
    assert state.gain is None and np.array_equal(state.apply(x), x)
    rng = np.random.default_rng(0)
    heard = a.population_mean + 3.0 * rng.standard_normal((500, 4))
    state.add(heard[:200])
    state.add_sums(heard[200:].sum(axis=0), 300, np.square(heard[200:]).sum(axis=0))
    gain, offset = a.affine(heard.sum(axis=0), np.square(heard).sum(axis=0), 500)
    np.testing.assert_allclose(state.gain, gain, rtol=1e-6)
    np.testing.assert_allclose(state.apply(x), x * gain + offset, rtol=1e-6)
    assert (state.gain > 1).all()  # a narrower spread than the population's is widened
    with pytest.raises(ValueError, match="sum of squares"):
        state.add_sums(heard.sum(axis=0), 500)
    assert state.speech_frames == 500
    state.reset()
    assert state.gain is None and state.speech_frames == 0


def test_population_std_round_trips_and_is_checked():
    a = SpeakerAdaptation(np.zeros(3), 10.0, np.array([1.0, 2.0, 3.0]))
    again = SpeakerAdaptation.from_dict(a.to_dict())
    np.testing.assert_array_equal(again.population_std, a.population_std)
    assert "population_std" not in adaptation(n_bins=3).to_dict()
    for bad in (np.array([1.0, 0.0, 1.0]), np.ones(2), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(ValueError, match="population_std"):
            SpeakerAdaptation(np.zeros(3), 10.0, bad)
    with pytest.raises(ValueError, match="population_std"):
        adaptation(n_bins=3).affine(np.zeros(3), np.zeros(3), 0)


# ------------------------------------------------------------------- training histories


def history(p_none=0.0, max_history=32, scale=False):
    rng = np.random.default_rng(1)
    n, f = 12, 3
    counts = rng.integers(50, 150, n)
    sums = rng.standard_normal((n, f)) * counts[:, None]
    sumsqs = (rng.random((n, f)) * 4 + 1) * counts[:, None] + sums ** 2 / counts[:, None]
    speakers = ["a"] * 5 + ["b"] * 4 + ["c"] * 3  # c is never trained on
    return SpeakerHistory(SpeechStats(sums, sumsqs, counts), speakers, list(range(9)), 100.0,
                          max_history, p_none, scale)


def test_stream_shifts_use_only_earlier_utterances_of_the_same_speaker():
    h = history()
    idx = np.array([9, 10, 11, 0, 1])
    shifts = h.stream_shifts(idx, seed=4)
    # c: its three utterances in some order: the first with no history, each later one
    # with exactly the ones before it
    def is_stream_order(rows, utts):
        for order in itertools.permutations(range(len(utts))):
            want = [h.adaptation.shift(h.stats.sums[[utts[o] for o in order[:p]]].sum(axis=0),
                                       h.stats.counts[[utts[o] for o in order[:p]]].sum())
                    for p in range(len(order))]
            if all(np.allclose(rows[o], w) for o, w in zip(order, want)):
                return True
        return False

    assert is_stream_order(shifts[:3], [9, 10, 11])
    assert is_stream_order(shifts[3:], [0, 1])
    assert not is_stream_order(shifts[[0, 1, 3]], [9, 10, 0])  # speakers never mix
    assert np.array_equal(h.stream_shifts(idx, seed=4), shifts)  # the seed fixes the order


def test_train_shifts_draw_other_training_utterances_of_the_speaker():
    h = history(max_history=1)
    rng = np.random.default_rng(0)
    possible = {i: [h.adaptation.shift(h.stats.sums[j], h.stats.counts[j]) for j in range(9)
                    if h.speakers[j] == h.speakers[i] and j != i] for i in range(9)}
    for _ in range(20):
        batch = rng.integers(0, 9, 6)
        for i, row in zip(batch, h.train_shifts(batch, rng)):
            assert any(np.allclose(row, p) for p in possible[int(i)])
    none = history(p_none=1.0)
    assert not none.train_shifts(np.arange(9), rng).any()


def test_drawn_histories_are_the_ones_the_training_shifts_come_from():
    h = history(max_history=3)
    batch = np.array([0, 4, 5, 8, 2])
    drawn = h.draw(batch, np.random.default_rng(5))
    np.testing.assert_array_equal(h.shifts_of(drawn),
                                  h.train_shifts(batch, np.random.default_rng(5)))
    for i, past in zip(batch, drawn):
        if past is not None:
            assert 1 <= len(past) <= 3 and i not in past and len(set(past)) == len(past)
            assert {h.speakers[j] for j in past} == {h.speakers[i]} and (past < 9).all()
    assert all(p is None for p in history(p_none=1.0).draw(batch, np.random.default_rng(0)))


def memory(prior=8.0, scale=True):
    """A LogitMemory over 8 utterances, 6 of them training ones, with a 3-wide embedding."""
    torch.manual_seed(0)
    fc2 = torch.nn.Linear(3, len(LABELS))
    return LogitMemory(adaptation(n_bins=4), 8, np.arange(6), 3, prior, scale), fc2


@pytest.mark.parametrize("scale", [True, False])
def test_logit_memory_normalises_by_the_history_as_a_speaker_state_would(scale):
    mem, fc2 = memory(scale=scale)
    rng = np.random.default_rng(2)
    z = torch.from_numpy(rng.standard_normal((8, 3)).astype(np.float32))
    logits = torch.from_numpy(rng.standard_normal((2, len(LABELS))).astype(np.float32))
    histories = [np.array([1, 2, 4]), None]
    # nothing remembered yet: the logits pass as they are, and the batch is remembered
    out = mem.normaliser(np.array([0, 3]), histories, fc2)(logits, z[[0, 3]])
    torch.testing.assert_close(out, logits)
    assert mem.seen.tolist() == [True, False, False, True, False, False, False, False]
    mem.remember(np.arange(1, 6)[::-1].copy(), z[1:6].flip(0))
    mem.remember([7], z[[7]])  # not a training utterance: not in the population
    assert mem.ready
    wanted = logits.double().numpy().copy()
    with torch.no_grad():
        heard = fc2(z).double().numpy()
    population = heard[:6]
    a = dataclasses.replace(mem.adaptation, logit_mean=population.mean(0), logit_prior=8.0,
                            logit_std=population.std(0) if scale else None)
    state = a.new_speaker()
    for row in heard[[1, 2, 4]]:
        state.add_logits(row)
    wanted[0] = state.score(wanted[0])
    x = logits.clone().requires_grad_(True)
    out = mem.normaliser(np.array([0, 3]), histories, fc2)(x, z[[0, 3]])
    np.testing.assert_allclose(out.detach().double().numpy(), wanted, rtol=1e-5, atol=1e-5)
    assert not np.allclose(wanted[0], logits[0].numpy(), atol=1e-3)
    out.sum().backward()  # the gain and shift are constants: d out / d logits is the gain
    gain = mem.affines(histories, fc2)[:, 0]
    np.testing.assert_allclose(x.grad.numpy(), gain, rtol=1e-6)
    assert fc2.weight.grad is None  # the history's logits carry no gradient


def test_logit_memory_state_round_trips_and_refuses_another_folds():
    mem, _ = memory()
    mem.remember(np.arange(6), torch.randn(6, 3))
    again, _ = memory()
    again.load_state_dict(mem.state_dict())
    assert again.ready and np.array_equal(again.z, mem.z)
    other = LogitMemory(adaptation(n_bins=4), 9, np.arange(6), 3, 8.0, True)
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state_dict(mem.state_dict())
    assert not other.ready  # the refused state left it as it was
    with pytest.raises(ValueError, match="prior must be > 0"):
        LogitMemory(adaptation(n_bins=4), 8, np.arange(6), 3, 0.0, True)


def test_scaling_histories_are_gain_offset_pairs_of_earlier_utterances():
    h = history(scale=True)
    s = h.stats
    train = np.arange(9)
    mean = s.sums[train].sum(axis=0) / s.counts[train].sum()
    np.testing.assert_allclose(h.adaptation.population_std ** 2,
                               s.sumsqs[train].sum(axis=0) / s.counts[train].sum() - mean ** 2)
    idx = np.array([9, 10, 11])
    adjust = h.stream_shifts(idx, seed=2)
    assert adjust.shape == (3, 2, 3)
    first = [r for r in range(3) if np.array_equal(adjust[r], h.identity(1)[0])]
    assert len(first) == 1  # the stream's first utterance is read as it is
    later = [r for r in range(3) if r not in first]

    def heard(rows):
        u = idx[rows]
        return h.adjust(s.sums[u].sum(axis=0), s.sumsqs[u].sum(axis=0), s.counts[u].sum())

    # stream order first, middle, last: the middle one is adapted by the first, the last
    # by both
    assert any(np.allclose(adjust[m], heard(first))
               and np.allclose(adjust[last], heard(first + [m]))
               for m, last in (later, later[::-1]))
    rng = np.random.default_rng(0)
    drawn = h.train_shifts(np.arange(9), rng)
    assert drawn.shape == (9, 2, 3) and (drawn[:, 0] != 1).any()


def test_adapt_batch_applies_shifts_and_gain_offset_pairs():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
    shift = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]], np.float32)
    torch.testing.assert_close(adapt_batch(x, shift), x + torch.from_numpy(shift)[:, None])
    pair = np.stack([np.full((2, 3), 2.0), shift], axis=1).astype(np.float32)
    torch.testing.assert_close(adapt_batch(x, pair), 2 * x + torch.from_numpy(shift)[:, None])


def test_speech_stats_sum_the_speech_frames_of_each_utterance():
    rng = np.random.default_rng(0)
    # a tilted spectrum (speech-like, not flat) well above the quiet frames
    loud = (np.linspace(0.0, -60.0, 8) + rng.normal(0.0, 3.0, (300, 8))).astype(np.float32)
    quiet = rng.normal(-70.0, 1.0, (100, 8)).astype(np.float32)

    items = [np.concatenate([quiet, loud, quiet]), np.concatenate([quiet, loud[:150]])]

    class Store:
        def __len__(self):
            return len(items)

        def get(self, i):
            return items[i]

    stats = speech_stats(Store(), 100.0)
    for i, x in enumerate(items):
        speech = x[speech_mask(x, VadConfig(), 100.0)].astype(np.float64)
        assert stats.counts[i] == len(speech) > 0
        np.testing.assert_allclose(stats.sums[i], speech.sum(axis=0))
        np.testing.assert_allclose(stats.sumsqs[i], np.square(speech).sum(axis=0))


# ------------------------------------------------------------------- the runtime


@pytest.fixture(scope="module", params=["shift", "scale", "logits"])
def adapted(tmp_path_factory, request):
    """A random-weight CRNN whose metadata carries adaptation constants (TorchScript): a
    shifting one, one that also scales, and a shifting one that normalises its outputs."""
    path = tmp_path_factory.mktemp("adapt") / "m.pt"
    constants = adaptation(seed=2, prior=100.0, scale=request.param == "scale",
                           logits=request.param == "logits")
    save_model(path, random_crnn(seed=5), ModelMetadata(
        labels=LABELS, feature_config=FeatureConfig(),
        speaker_adaptation=constants.to_dict()))
    return Recognizer.load(path)


@pytest.fixture(scope="module")
def clips(data_root):
    out = []
    for clip in CLIPS:
        x, rate = sf.read(data_root / "ravdess" / clip, dtype="float32")
        assert rate == SR
        out.append(x)
    return out


def test_a_model_without_constants_has_no_speaker(tmp_path):
    from crnn_factory import save_random_model

    rec = Recognizer.load(save_random_model(tmp_path / "plain.pt"))
    assert rec.adaptation is None and rec.create_stream().speaker is None
    with pytest.raises(ValueError, match="not trained for speaker adaptation"):
        rec.new_speaker()


@pytest.mark.corpus
def test_predict_with_a_speaker_adapts_by_the_earlier_utterances(adapted, clips):
    speaker = adapted.new_speaker()
    first = adapted.predict(clips[0], SR, speaker=speaker)
    assert first.probabilities == adapted.predict(clips[0], SR).probabilities  # no history
    frames = extract_features(clips[0], FeatureConfig(center=False))
    mask = speech_mask(frames, VadConfig(), 100.0)
    assert speaker.speech_frames == mask.sum() > 0
    expected = adapted.adaptation.new_speaker()
    expected.add(frames[mask])
    span, m = speech_span(frames, VadConfig(), 100.0), round(SPEECH_MARGIN_S * 100)
    expected.add_logits(adapted._logits(frames[max(0, span.start - m) : span.stop + m]))
    np.testing.assert_array_equal(speaker.shift, expected.shift)
    assert (speaker.gain is None) == (adapted.adaptation.population_std is None)
    logits_model = adapted.adaptation.logit_mean is not None
    assert speaker.utterances == expected.utterances == int(logits_model)
    if logits_model:
        np.testing.assert_allclose(speaker.logit_affine, expected.logit_affine, atol=1e-6)
    second = adapted.predict(clips[1], SR, speaker=speaker)
    frames2 = extract_features(clips[1], FeatureConfig(center=False))
    span, m = speech_span(frames2, VadConfig(), 100.0), round(SPEECH_MARGIN_S * 100)
    p = _softmax(expected.score(
        adapted._logits(expected.apply(frames2[max(0, span.start - m) : span.stop + m]))))
    np.testing.assert_allclose([second.probabilities[k] for k in LABELS], p, atol=1e-6)
    alone = adapted.predict(clips[1], SR)
    assert max(abs(alone.probabilities[k] - second.probabilities[k]) for k in LABELS) > 1e-4
    with pytest.raises(ValueError, match="new_speaker"):
        adapted.predict(clips[1], SR, speaker=SpeakerState(adaptation(n_bins=64)))


def test_silence_joins_neither_the_speakers_speech_nor_its_outputs(adapted):
    speaker = adapted.new_speaker()
    p = adapted.predict(np.zeros(SR, np.float32), SR, speaker=speaker)
    assert p.label is None  # no speech found
    assert speaker.utterances == 0 and speaker.speech_frames == 0
    assert speaker.logit_affine is None


@pytest.mark.corpus
@pytest.mark.parametrize("chunk", [None, 1600, 4001])
def test_stream_adapts_between_utterances_never_within_one(adapted, clips, chunk):
    gap = np.zeros(SR, np.float32)
    audio = np.concatenate([gap, clips[0], gap, clips[1], gap])
    stream = adapted.create_stream()
    events = []
    if chunk is None:
        events += stream.accept_waveform(audio)
    else:
        for pos in range(0, len(audio), chunk):
            events += stream.accept_waveform(audio[pos : pos + chunk])
    events += stream.flush()
    plain = adapted.create_stream(adapt=False)
    reference = plain.accept_waveform(audio) + plain.flush()
    utts = [e for e in events if isinstance(e, Utterance)]
    ref_utts = [e for e in reference if isinstance(e, Utterance)]
    assert len(utts) == len(ref_utts) == 2
    # the first utterance has no history: exactly the unadapted stream's result
    assert utts[0].to_dict() == ref_utts[0].to_dict()
    # the second is the model on its frames shifted by the first segment's frames
    first_only = adapted.create_stream()
    first_only.accept_waveform(np.concatenate([gap, clips[0], gap]))
    first_only.flush()
    assert np.abs(first_only.speaker.shift).max() > 0.1
    cfg = FeatureConfig(center=False)
    frames = extract_features(audio, cfg)
    begin = round(utts[1].start * SR / cfg.hop_length)
    stop = round((utts[1].end * SR - cfg.n_fft) / cfg.hop_length) + 1
    p = _softmax(first_only.speaker.score(
        adapted._logits(first_only.speaker.apply(frames[begin:stop]))))
    np.testing.assert_allclose([utts[1].probabilities[k] for k in LABELS], p, atol=1e-5)
    assert max(abs(utts[1].probabilities[k] - ref_utts[1].probabilities[k])
               for k in LABELS) > 1e-4
    # the history is exactly the VAD's speech frames, as predict() counts them
    mask = speech_mask(frames, VadConfig(), cfg.frame_rate)
    assert stream.speaker.speech_frames == mask.sum()
    speech = frames[mask].astype(np.float64)
    np.testing.assert_allclose(stream.speaker._sum, speech.sum(axis=0), rtol=1e-9)
    if adapted.adaptation.population_std is not None:  # only a scaling model needs squares
        np.testing.assert_allclose(stream.speaker._sumsq, np.square(speech).sum(axis=0),
                                   rtol=1e-9)
    # each utterance's result (not its partials) joins the speaker's outputs
    if adapted.adaptation.logit_mean is not None:
        assert stream.speaker.utterances == 2 and first_only.speaker.utterances == 1
    stream.reset()
    assert stream.speaker.speech_frames == 0 and stream.speaker.utterances == 0
    assert stream.speaker.logit_affine is None


@pytest.mark.corpus
def test_batched_adapting_streams_equal_stream_by_stream(adapted, clips):
    gap = np.zeros(SR // 2, np.float32)
    audios = [np.concatenate([gap, clips[0], gap, clips[1], gap]),
              np.concatenate([gap, clips[1], gap, gap, clips[0], gap])]
    serial = []
    for audio in audios:
        stream = adapted.create_stream()
        events = []
        for pos in range(0, len(audio), 2000):
            events += stream.accept_waveform(audio[pos : pos + 2000])
        serial.append(events + stream.flush())
    streams = [adapted.create_stream() for _ in audios]
    batched = [[] for _ in audios]
    for pos in range(0, max(map(len, audios)), 2000):
        chunks = [a[pos : pos + 2000] for a in audios]
        for got, events in zip(batched, adapted.accept_waveforms(streams, chunks)):
            got += events
    for got, stream in zip(batched, streams):
        got += stream.flush()
    for got, want in zip(batched, serial):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            da, db = a.to_dict(), b.to_dict()
            pa, pb = da.pop("probabilities", None), db.pop("probabilities", None)
            assert da == db
            if pa is not None:
                np.testing.assert_allclose([pa[k] for k in LABELS], [pb[k] for k in LABELS],
                                           atol=1e-5)
    assert all(s.speaker.speech_frames > 0 for s in streams)
