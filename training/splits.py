"""Train/dev/test folds: the paper's stratified split and speaker-independent folds.

All folds are lists of indices into the utterance list they were made from, and
are deterministic given the seeds (``numpy.random.default_rng(seed)``, groups
visited in sorted order).

**Paper split** (:func:`paper_folds`), as in the authors' ``scripts/div_sets.py``
and ``load_data_mix`` (DaiDongyang/ser_nn_spectrogram): utterances are grouped
by a stratification key -- for IEMOCAP (session, improvised/scripted, gender of
the turn's speaker, *original* emotion code, so ``hap`` and ``exc`` are
separate strata), elsewhere (corpus, speaker, original emotion). Each group is
shuffled and dealt round-robin into ``2 * n_folds`` (10) subsets starting at a
random subset. Fold ``k`` uses subset ``2k`` as dev, ``2k + 1`` as test and the
other eight as train (the authors ran ``vali_type``/``test_type`` = 8/9, 6/7,
4/5, 2/3, 0/1). Each repeat (seed) redraws the subsets. A repeat therefore tests half of the
data (the odd subsets); ``rotate_all=True`` rotates dev/test over all ten
subsets instead (10 folds, every utterance tested once). This split is *not*
speaker-independent: every speaker appears in train, dev and test.

**Speaker-independent folds** (:func:`speaker_folds`): speakers (by default
``(corpus, speaker)``) are dealt into ``n_folds`` groups balanced by utterance
count; fold ``k`` tests group ``k``, uses group ``k + 1`` (mod ``n_folds``) as
dev and the rest as train. So each utterance is tested exactly once and used
for dev exactly once per repeat, and no speaker is in two of train/dev/test.
It needs at least 3 speakers; with fewer speakers than ``n_folds``, ``n_folds``
is reduced to the number of speakers and a warning is logged.

:func:`default_split` is the one place that picks the paper split for IEMOCAP and
speaker-independent folds elsewhere; :func:`make_folds` builds the folds of a named split
and :func:`default_folds` those of a corpus's default split.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from pyser.training.datasets import UNKNOWN_SPEAKER, Utterance

__all__ = [
    "SPLIT_KINDS",
    "Fold",
    "default_folds",
    "default_split",
    "make_folds",
    "paper_folds",
    "paper_strata_key",
    "paper_subsets",
    "speaker_folds",
    "speaker_groups",
    "validate_folds",
]

log = logging.getLogger(__name__)


@dataclass
class Fold:
    """One train/dev/test split: sorted index lists into the utterance list."""

    train: list[int]
    dev: list[int]
    test: list[int]
    repeat: int
    fold: int
    seed: int | None = None
    kind: str = ""  # "paper" or "speaker"

    def __repr__(self) -> str:
        return (
            f"Fold(kind={self.kind!r}, repeat={self.repeat}, fold={self.fold}, seed={self.seed}, "
            f"train={len(self.train)}, dev={len(self.dev)}, test={len(self.test)})"
        )


# --------------------------------------------------------------------------- paper split


def paper_strata_key(utt: Utterance) -> tuple[str, ...]:
    """The stratum of ``utt`` in the paper split (see the module docstring)."""
    emotion = str(utt.meta.get("emotion", utt.label))
    if utt.corpus == "iemocap":
        m = utt.meta
        return ("iemocap", f"{m['session']}", str(m["type"]), str(m["gender"]), emotion)
    return (utt.corpus, utt.speaker, emotion)


def paper_subsets(
    utts: Sequence[Utterance],
    n_subsets: int = 10,
    seed: int = 0,
    key: Callable[[Utterance], Hashable] = paper_strata_key,
) -> np.ndarray:
    """Subset number (0 .. n_subsets-1) of every utterance, as ``div_sets.py`` deals them.

    Within each stratum the utterances are shuffled and dealt round-robin from a
    random starting subset, so every subset gets ``floor`` or ``ceil`` of
    ``len(stratum) / n_subsets`` of each stratum.
    """
    if n_subsets < 2:
        raise ValueError(f"n_subsets must be at least 2, got {n_subsets}")
    rng = np.random.default_rng(seed)
    strata: dict[Hashable, list[int]] = defaultdict(list)
    for i, u in enumerate(utts):
        strata[key(u)].append(i)
    subset = np.full(len(utts), -1, dtype=np.int64)
    for k in sorted(strata, key=repr):
        members = np.asarray(strata[k], dtype=np.int64)
        perm = rng.permutation(members)
        start = int(rng.integers(n_subsets))
        subset[perm] = (start + np.arange(len(perm))) % n_subsets
    return subset


def paper_folds(
    utts: Sequence[Utterance],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
    rotate_all: bool = False,
) -> list[Fold]:
    """The paper's split: 2*n_folds stratified subsets; fold k: dev 2k, test 2k+1, train the rest.

    As in the authors' runs, a repeat tests only the odd subsets (half of the
    data; the even subsets serve as dev sets). With ``rotate_all=True`` there
    are 2*n_folds folds, fold k: dev subset k, test subset k+1 (mod 2*n_folds),
    so every utterance is tested exactly once per repeat; the authors' folds
    are the even k of this rotation. One repeat per seed; ``Fold.repeat`` is
    the seed's position in ``seeds``.
    """
    _check_input(utts, n_folds, seeds, minimum=2)
    n_subsets = 2 * n_folds
    pairs = (
        [(k, (k + 1) % n_subsets) for k in range(n_subsets)]
        if rotate_all
        else [(2 * k, 2 * k + 1) for k in range(n_folds)]
    )
    folds = []
    for r, seed in enumerate(seeds):
        subset = paper_subsets(utts, n_subsets, seed)
        for k, (d, t) in enumerate(pairs):
            dev = np.flatnonzero(subset == d).tolist()
            test = np.flatnonzero(subset == t).tolist()
            train = np.flatnonzero((subset != d) & (subset != t)).tolist()
            folds.append(Fold(train, dev, test, r, k, seed, "paper"))
    return folds


# --------------------------------------------------------------------------- speaker folds


def _default_group(u: Utterance) -> Hashable:
    return (u.corpus, u.speaker)


def speaker_groups(
    utts: Sequence[Utterance],
    n_groups: int,
    seed: int = 0,
    group: Callable[[Utterance], Hashable] = _default_group,
    n_candidates: int = 64,
) -> list[list[Hashable]]:
    """Deal speakers into ``n_groups`` groups with nearly equal utterance counts.

    Draws ``n_candidates`` randomised orders (speakers sorted by utterance count
    times a random factor in [0.5, 1.5), so big speakers tend to come first);
    each is dealt greedily (next speaker to the group with the fewest
    utterances so far); the candidate with the smallest spread (max - min group
    size) wins, the first one on ties. Different seeds give different groupings,
    as balanced as the search finds.
    """
    counts = Counter(group(u) for u in utts)
    speakers = sorted(counts, key=repr)
    if n_groups > len(speakers):
        raise ValueError(f"cannot make {n_groups} groups from {len(speakers)} speakers")
    rng = np.random.default_rng(seed)
    best: list[list[Hashable]] | None = None
    best_spread = None
    for _ in range(max(1, n_candidates)):
        order = [speakers[i] for i in rng.permutation(len(speakers))]
        sizes = np.array([counts[s] for s in order], dtype=float)
        jitter = rng.uniform(0.5, 1.5, size=len(order))
        order = [order[i] for i in np.argsort(-sizes * jitter, kind="stable")]
        groups: list[list[Hashable]] = [[] for _ in range(n_groups)]
        totals = np.zeros(n_groups, dtype=np.int64)
        for s in order:  # every speaker has >= 1 utterance, so the first n_groups fill all groups
            g = int(np.argmin(totals))
            groups[g].append(s)
            totals[g] += counts[s]
        spread = int(totals.max() - totals.min())
        if best_spread is None or spread < best_spread:
            best, best_spread = groups, spread
    if best is None:  # unreachable: n_candidates >= 1
        raise RuntimeError("no speaker grouping was drawn")
    return [sorted(g, key=repr) for g in best]


def speaker_folds(
    utts: Sequence[Utterance],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
    group: Callable[[Utterance], Hashable] = _default_group,
) -> list[Fold]:
    """Speaker-independent folds: test group k, dev group k+1 (mod n_folds), train the rest.

    ``group`` maps an utterance to its speaker group (default ``(corpus,
    speaker)``; e.g. ``lambda u: u.meta["session"]`` gives IEMOCAP
    leave-one-session-out with 5 folds).

    Raises:
        ValueError: fewer than 3 speakers, ``n_folds < 3``, or utterances with
            unknown speakers (a manifest without a speaker column).
    """
    _check_input(utts, n_folds, seeds, minimum=3)
    unknown = sum(1 for u in utts if u.speaker == UNKNOWN_SPEAKER)
    if unknown:
        raise ValueError(
            f"{unknown} of {len(utts)} utterances have no speaker information "
            f"(speaker {UNKNOWN_SPEAKER!r}); a speaker-independent split is impossible. "
            "Add a 'speaker' column to the manifest, or use paper_folds (not speaker-independent)."
        )
    n_speakers = len({group(u) for u in utts})
    if n_speakers < 3:
        raise ValueError(
            f"speaker-independent train/dev/test folds need at least 3 speakers, got "
            f"{n_speakers}; use paper_folds (speaker-dependent) or this corpus as a test set only"
        )
    if n_folds > n_speakers:
        log.warning(
            "only %d speakers: reducing speaker folds from %d to %d", n_speakers, n_folds,
            n_speakers,
        )
        n_folds = n_speakers
    keys = [group(u) for u in utts]
    folds = []
    for r, seed in enumerate(seeds):
        groups = speaker_groups(utts, n_folds, seed, group)
        where = {s: g for g, members in enumerate(groups) for s in members}
        gid = np.array([where[k] for k in keys], dtype=np.int64)
        for k in range(n_folds):
            d = (k + 1) % n_folds
            test = np.flatnonzero(gid == k).tolist()
            dev = np.flatnonzero(gid == d).tolist()
            train = np.flatnonzero((gid != k) & (gid != d)).tolist()
            folds.append(Fold(train, dev, test, r, k, seed, "speaker"))
    return folds


#: The split kinds :func:`make_folds` builds.
SPLIT_KINDS = ("paper", "speaker")


def default_split(corpus_name: str) -> str:
    """``"paper"`` for IEMOCAP (to reproduce the paper), ``"speaker"`` for other corpora."""
    return "paper" if corpus_name.lower() == "iemocap" else "speaker"


def make_folds(
    kind: str,
    utts: Sequence[Utterance],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
) -> list[Fold]:
    """The folds of split ``kind``: :func:`paper_folds` or :func:`speaker_folds`."""
    if kind not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {SPLIT_KINDS}, got {kind!r}")
    make = paper_folds if kind == "paper" else speaker_folds
    return make(utts, n_folds, seeds)


def default_folds(
    utts: Sequence[Utterance],
    corpus_name: str,
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
) -> list[Fold]:
    """The folds of ``corpus_name``'s default split (:func:`default_split`)."""
    return make_folds(default_split(corpus_name), utts, n_folds, seeds)


# --------------------------------------------------------------------------- checks


def validate_folds(
    utts: Sequence[Utterance],
    folds: Sequence[Fold],
    speaker_independent: bool = False,
    group: Callable[[Utterance], Hashable] = _default_group,
    full_coverage: bool = True,
) -> None:
    """Check folds; raise ``ValueError`` on the first violation.

    Every fold must partition the utterances into disjoint train/dev/test; no
    utterance may be tested twice in a repeat, and with ``full_coverage`` every
    utterance must be tested exactly once per repeat (false for the authors'
    paper split, which tests half of the data per repeat). With
    ``speaker_independent`` no speaker group may be in two of train/dev/test.
    """
    n = len(utts)
    tested: dict[int, Counter] = defaultdict(Counter)
    for f in folds:
        parts = {"train": set(f.train), "dev": set(f.dev), "test": set(f.test)}
        sizes = {k: len(v) for k, v in parts.items()}
        if sum(sizes.values()) != n or set().union(*parts.values()) != set(range(n)):
            raise ValueError(f"{f!r} does not partition the {n} utterances ({sizes})")
        if speaker_independent:
            spk = {k: {group(utts[i]) for i in v} for k, v in parts.items()}
            for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
                both = spk[a] & spk[b]
                if both:
                    raise ValueError(f"{f!r}: speakers {sorted(both, key=repr)} in {a} and {b}")
        tested[f.repeat].update(f.test)
    for r, c in tested.items():
        if any(v != 1 for v in c.values()):
            raise ValueError(f"repeat {r}: some utterances are tested more than once")
        if full_coverage and len(c) != n:
            raise ValueError(f"repeat {r}: not every utterance is tested exactly once")


def _check_input(utts: Sequence[Utterance], n_folds: int, seeds: Sequence[int], minimum: int):
    if len(utts) == 0:
        raise ValueError("no utterances to split")
    if n_folds < minimum:
        raise ValueError(f"n_folds must be at least {minimum}, got {n_folds}")
    if len(seeds) == 0:
        raise ValueError("give at least one seed")
