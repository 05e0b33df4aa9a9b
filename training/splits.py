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

**Several corpora** (:func:`stratified_speaker_folds`, chosen by :func:`make_folds` for
``"speaker"`` whenever the utterances come from more than one corpus): speakers are dealt
into the ``n_folds`` groups *corpus by corpus*, each corpus balanced by utterance count on
its own, so every fold trains (and nearly always tests) on every corpus. A corpus with
fewer speakers than folds (TESS: 2) gets its speakers placed in groups that no fold's
test + dev pair covers (with 5 groups and 2 speakers: non-adjacent groups), so every
fold's training part still holds it; when that is impossible (1 speaker, or 2 with 3
folds) the split is refused with a message naming the corpus.

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
    "stratified_speaker_folds",
    "stratified_speaker_groups",
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
    n_folds = _check_speakers(utts, n_folds, seeds, group)
    keys = [group(u) for u in utts]
    folds = []
    for r, seed in enumerate(seeds):
        groups = speaker_groups(utts, n_folds, seed, group)
        where = {s: g for g, members in enumerate(groups) for s in members}
        gid = np.array([where[k] for k in keys], dtype=np.int64)
        folds += _rotate_groups(gid, n_folds, r, seed)
    return folds


def _check_speakers(
    utts: Sequence[Utterance],
    n_folds: int,
    seeds: Sequence[int],
    group: Callable[[Utterance], Hashable],
) -> int:
    """Check the input of a speaker-independent split; returns the number of folds to make
    (``n_folds``, reduced to the number of speakers when there are fewer, with a warning)."""
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
    return n_folds


def _rotate_groups(gid: np.ndarray, n_folds: int, repeat: int, seed: int) -> list[Fold]:
    """Fold k: test group k, dev group k+1 (mod n_folds), train the rest."""
    folds = []
    for k in range(n_folds):
        d = (k + 1) % n_folds
        test = np.flatnonzero(gid == k).tolist()
        dev = np.flatnonzero(gid == d).tolist()
        train = np.flatnonzero((gid != k) & (gid != d)).tolist()
        folds.append(Fold(train, dev, test, repeat, k, seed, "speaker"))
    return folds


# --------------------------------------------------------------------------- several corpora


def _corpus_utts(utts: Sequence[Utterance]) -> dict[str, list[Utterance]]:
    """The utterances of each corpus, corpora in sorted order."""
    by: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by[u.corpus].append(u)
    return {c: by[c] for c in sorted(by)}


def _keeps_corpus_in_train(groups: Sequence[int], n_groups: int) -> bool:
    """True when no fold (test k, dev k+1) holds every one of ``groups``."""
    return all(not set(groups) <= {k, (k + 1) % n_groups} for k in range(n_groups))


def _place_few_speakers(
    corpus: str,
    counts: Counter,
    totals: np.ndarray,
    rng: np.random.Generator,
) -> dict[Hashable, int]:
    """Groups for the speakers of a corpus with fewer speakers than groups.

    Tries every set of ``len(counts)`` distinct groups that leaves at least one speaker in
    every fold's training part, deals the speakers (largest first) to the emptiest chosen
    groups, and keeps the choice with the smallest spread of group totals (random order
    among equals). Raises ValueError when no such set exists (one speaker, or two with
    three groups).
    """
    from itertools import combinations

    n_groups = len(totals)
    speakers = sorted(counts, key=lambda s: (-counts[s], repr(s)))
    choices = [
        c for c in combinations(range(n_groups), len(speakers))
        if _keeps_corpus_in_train(c, n_groups)
    ]
    if not choices:
        raise ValueError(
            f"corpus {corpus!r} has {len(speakers)} speaker(s): with {n_groups} folds some fold "
            "would have all of them in test and dev and none in training; use at least 4 "
            "folds (2 speakers) or leave the corpus out of the pooled run"
        )
    best, best_spread = None, None
    for i in rng.permutation(len(choices)):
        t = totals.copy()
        where = {}
        for s in speakers:
            g = min(choices[i], key=lambda g: (t[g], g))
            where[s] = g
            t[g] += counts[s]
        spread = int(t.max() - t.min())
        if best_spread is None or spread < best_spread:
            best, best_spread = where, spread
    assert best is not None
    return best


def _place_corpus_groups(
    groups: list[list[Hashable]], counts: Counter, totals: np.ndarray
) -> dict[Hashable, int]:
    """Match a corpus's balanced speaker groups to the pooled groups: the largest corpus
    group goes to the pooled group with the fewest utterances so far, and so on."""
    sizes = [sum(counts[s] for s in g) for g in groups]
    free = list(range(len(totals)))
    where = {}
    for gi in sorted(range(len(groups)), key=lambda i: (-sizes[i], i)):
        target = min(free, key=lambda g: (totals[g], g))
        free.remove(target)
        totals[target] += sizes[gi]
        where.update({s: target for s in groups[gi]})
    return where


def stratified_speaker_groups(
    utts: Sequence[Utterance],
    n_groups: int,
    seed: int = 0,
    group: Callable[[Utterance], Hashable] = _default_group,
) -> dict[Hashable, int]:
    """The group (0 .. n_groups-1) of every speaker, dealt corpus by corpus.

    Corpora with fewer speakers than groups are placed first
    (:func:`_place_few_speakers`: in groups such that every fold trains on some of them);
    then each other corpus's speakers are dealt into ``n_groups`` groups balanced by
    utterance count (:func:`speaker_groups`), matched to the pooled groups so that the
    pooled totals stay balanced too.
    """
    rng = np.random.default_rng(seed)
    per_corpus = _corpus_utts(utts)
    counts = {c: Counter(group(u) for u in us) for c, us in per_corpus.items()}
    totals = np.zeros(n_groups, dtype=np.int64)
    where: dict[Hashable, int] = {}
    few = [c for c in per_corpus if len(counts[c]) < n_groups]
    many = [c for c in per_corpus if len(counts[c]) >= n_groups]
    for c in sorted(few, key=lambda c: (-sum(counts[c].values()), c)):
        placed = _place_few_speakers(c, counts[c], totals, rng)
        for s, g in placed.items():
            totals[g] += counts[c][s]
        where.update(placed)
    for c in sorted(many, key=lambda c: (-sum(counts[c].values()), c)):
        groups = speaker_groups(per_corpus[c], n_groups, int(rng.integers(2**31)), group)
        where.update(_place_corpus_groups(groups, counts[c], totals))
    return where


def stratified_speaker_folds(
    utts: Sequence[Utterance],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
    group: Callable[[Utterance], Hashable] = _default_group,
) -> list[Fold]:
    """Speaker-independent folds over several corpora, every fold training on every corpus.

    Speakers are dealt into ``n_folds`` groups corpus by corpus
    (:func:`stratified_speaker_groups`); fold ``k`` tests group ``k``, uses group ``k + 1``
    (mod ``n_folds``) as dev and the rest as train, as :func:`speaker_folds` does.

    Raises:
        ValueError: as :func:`speaker_folds`; also when a corpus has too few speakers to
            be in every fold's training part, or a group would be empty.
    """
    n_folds = _check_speakers(utts, n_folds, seeds, group)
    keys = [group(u) for u in utts]
    folds = []
    for r, seed in enumerate(seeds):
        where = stratified_speaker_groups(utts, n_folds, seed, group)
        gid = np.array([where[k] for k in keys], dtype=np.int64)
        empty = sorted(set(range(n_folds)) - set(gid.tolist()))
        if empty:
            raise ValueError(
                f"speaker groups {empty} of {n_folds} are empty: too few speakers for "
                f"{n_folds} folds; lower n_folds"
            )
        folds += _rotate_groups(gid, n_folds, r, seed)
    return folds


#: The split kinds :func:`make_folds` builds.
SPLIT_KINDS = ("paper", "speaker", "all")


def default_split(corpus_name: str | Sequence[str]) -> str:
    """``"paper"`` for IEMOCAP alone (to reproduce the paper), ``"speaker"`` otherwise,
    including every list of several corpora (IEMOCAP among them)."""
    names = [corpus_name] if isinstance(corpus_name, str) else list(corpus_name)
    return "paper" if len(names) == 1 and names[0].lower() == "iemocap" else "speaker"


def make_folds(
    kind: str,
    utts: Sequence[Utterance],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
) -> list[Fold]:
    """The folds of split ``kind``: :func:`paper_folds`, or for ``"speaker"``
    :func:`speaker_folds` when the utterances come from one corpus and
    :func:`stratified_speaker_folds` when they come from several; ``"all"`` is one fold that
    trains on every utterance, with no dev or test part (a final model, whose recipe and
    step count the cross-validation chose)."""
    if kind not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {SPLIT_KINDS}, got {kind!r}")
    if kind == "all":
        if not utts:
            raise ValueError("split 'all': no utterances")
        return [Fold(list(range(len(utts))), [], [], repeat=0, fold=0, kind="all")]
    if kind == "paper":
        return paper_folds(utts, n_folds, seeds)
    if len({u.corpus for u in utts}) > 1:
        return stratified_speaker_folds(utts, n_folds, seeds)
    return speaker_folds(utts, n_folds, seeds)


def default_folds(
    utts: Sequence[Utterance],
    corpus_name: str | Sequence[str],
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
