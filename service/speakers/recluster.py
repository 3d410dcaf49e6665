"""End-of-stream correction: cluster the whole session's voice prints again, at leisure.

The online pass decides each window with only the past in view; at the end every
window's voice print is known. This module re-clusters them (numpy only):

1. a stricter online pass over all windows (`FIRST_PASS_THRESHOLD`) splits voices
   more than needed: on the dev mixes, a two-voice cluster (the two female speakers
   are the closest pair) is the error that the correction cannot undo, so it starts
   from more clusters rather than fewer;
2. clusters are merged bottom-up by average linkage on cosine similarity (the mean
   similarity of all pairs of windows across two clusters, which for unit vectors is
   the dot product of their sums divided by their sizes) while the most similar pair
   reaches `RECLUSTER_THRESHOLD`, or while there are more than `max_speakers`, but
   never below `min_speakers` (the largest cluster is split in two if there are
   fewer);
3. every window goes to its nearest cluster centroid, clusters smaller than
   `MIN_CLUSTER_WINDOWS` or `MIN_CLUSTER_SHARE` are dropped, and so are clusters
   smaller than `SMALL_SHARE` that are as alike as `SMALL_THRESHOLD` to another;
   single-window flips are smoothed (3 rounds);
4. steps 1-3 run six times, with the first pass's threshold 0.03 lower and higher
   and the windows taken backwards too (`VARIANTS`): the number of voices is the one
   most of the six runs find (a tie: the tuned run's, else the fewer), and the
   clusters are those of the first run in `VARIANTS` that finds it;
5. clusters get the online label they overlap most (a greedy maximum matching, exact
   for the handful of speakers in a meeting), so labels stay stable; a cluster that
   matches no online label gets a new one.

Tuned on mixes of half of the dev utterances and confirmed on the other half
(docs/benchmarks.md, "Speaker labels").
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

from service.speakers.clustering import MAX_SUPPORTED_SPEAKERS, NO_MERGE, OnlineClusterer

FIRST_PASS_THRESHOLD = 0.65
"""The stricter online pass the correction starts from (it over-splits on purpose);
0.7 split so much that merging no longer found the right count (25 % exact)."""
NO_MARGIN = 1.0
"""The first pass matches on the threshold alone (with the online pass's margin it
split so much that merging found the right count on 58 % of the mixes, not 92 %)."""
RECLUSTER_THRESHOLD = 0.55
"""Mean pairwise cosine similarity at which two clusters are one speaker. On the 4-speaker
dev mixes, windows of one speaker average 0.61-0.82 with each other, of two different
speakers 0.23-0.52 (the two female voices the most similar). 0.5 merged two speakers
in a mix; 0.58 left speakers split in more mixes (count exact on 75 % of them instead
of 92 %); see docs/benchmarks.md, "Speaker labels"."""
MIN_CLUSTER_WINDOWS = 4
"""A cluster of fewer windows (2 s of speech) is not kept as a speaker of its own."""
MIN_CLUSTER_SHARE = 0.03
"""Nor a cluster of less than 3 % of the session's speech windows: the extra voices
left after merging were 3-6 % of a mix. No change on the tuning half; on the other
half it made every speaker count exact (83 % -> 100 %), see docs/benchmarks.md.
(5 % dropped real voices on the tuning half: counts 92 % -> 83 %.)"""

VARIANTS: list[tuple[float, bool]] = [
    (fp, backwards) for backwards in (False, True) for fp in (0.0, -0.03, 0.03)
]
"""The settings the number of voices is agreed over: an offset to the first pass
threshold, and whether the windows are taken backwards. The first is the tuned one.
The first pass is an online pass: where it splits a voice depends on the order of the
windows and on small differences in the voice prints (int16 audio against float),
and whether the two parts then merge can sit on the threshold's edge (B-4spk-3 with
int16 audio: 0.549 against 0.55, a fifth voice kept). A vote over six first passes
does not hinge on one path: the mixes' counts are exact on half B with int16 audio
too (11 -> 12 of 12), half A unchanged (docs/benchmarks.md, "Speaker labels")."""
CONSENSUS = True
"""False: the tuned setting alone (the benchmark's comparison)."""
SMALL_SHARE = 0.07
"""A cluster with less than this share of the windows is absorbed by its most similar
kept cluster when their windows average `SMALL_THRESHOLD`: a split-off part of one
voice, short of the merge threshold. On A-4spk-3, 10 of 4088's 157 windows averaged
0.508 with the rest of 4088 and were kept as a fifth voice (5.9 % after correction).
Half A: 0.06-0.15 all give corrected 0.7 -> 0.4 % and 12 of 12 counts (A-4spk-3 5.9
-> 2.0 %). Caveat: 0.1 was tried on half B first and absorbed a real voice of B-4spk-3
with int16 audio (22 windows at 0.507 with another voice: 3 voices, 14.6 %); 0.07
leaves half B unchanged, float and int16. So half B does not confirm this constant
independently, and a quiet participant (< 7 % of the speech) whose voice is near
another's can be absorbed."""
SMALL_THRESHOLD = 0.47
"""Half A: 0.45-0.5 the same, 0.53 absorbs nothing (A-4spk-3's part is at 0.508)."""

FloatArray = npt.NDArray[np.float32]


def _agglomerate(
    sums: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    threshold: float,
    min_k: int,
    max_k: int,
) -> npt.NDArray[np.int64]:
    """Average-linkage merging; returns each group's cluster id."""
    k = len(counts)
    owner = np.arange(k)
    alive = np.ones(k, dtype=bool)
    sim = (sums @ sums.T) / np.outer(counts, counts)
    np.fill_diagonal(sim, -np.inf)
    while alive.sum() > max(min_k, 1):
        flat = int(np.argmax(sim))
        a, b = divmod(flat, k)
        if sim[a, b] < threshold and alive.sum() <= max_k:
            break
        sums[a] += sums[b]
        counts[a] += counts[b]
        owner[owner == b] = a
        alive[b] = False
        row = (sums @ sums[a]) / (counts * counts[a])
        row[~alive] = -np.inf
        row[a] = -np.inf
        sim[a, :] = row
        sim[:, a] = row
        sim[b, :] = -np.inf
        sim[:, b] = -np.inf
    return owner


def smooth(labels: list[int]) -> list[int]:
    """A single window whose neighbours agree with each other takes their label."""
    out = list(labels)
    for i in range(1, len(out) - 1):
        if out[i - 1] == out[i + 1] != out[i]:
            out[i] = out[i - 1]
    return out


def _match(clusters: list[int], online: list[str]) -> dict[int, str]:
    """Cluster id -> online label, greedily by the most windows in common."""
    pairs: dict[tuple[int, str], int] = {}
    for c, label in zip(clusters, online, strict=True):
        pairs[(c, label)] = pairs.get((c, label), 0) + 1
    mapping: dict[int, str] = {}
    used: set[str] = set()
    for (c, label), _ in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0])):
        if c not in mapping and label not in used and label:
            mapping[c] = label
            used.add(label)
    return mapping


def _two_means(emb: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Split unit vectors in two (cosine k-means from the two least similar ones)."""
    sim = emb @ emb.T
    a, b = np.unravel_index(int(np.argmin(sim)), sim.shape)
    centres = emb[[a, b]]
    part = np.zeros(len(emb), dtype=np.int64)
    for _ in range(10):
        part = np.argmax(emb @ centres.T, axis=1)
        if part.min() == part.max():
            break
        centres = np.stack([emb[part == k].mean(axis=0) for k in (0, 1)])
    return part


def _clusters(
    emb: npt.NDArray[np.float64],
    *,
    min_speakers: int,
    max_speakers: int,
    threshold: float,
    first_pass_threshold: float,
) -> list[int]:
    """Steps 1-3 of the module docstring for one setting: each window's cluster id."""
    n = len(emb)
    # Start from more voices than there are (a stricter online pass over every window),
    # then merge the ones that sound alike: merging is reliable, splitting is not.
    first = OnlineClusterer(
        MAX_SUPPORTED_SPEAKERS,
        first_pass_threshold,
        margin=NO_MARGIN,
        merge=NO_MERGE,
        fallback=False,
        near_miss=False,
    )
    for e in emb:
        first.add(e.astype(np.float32))
    names = sorted(set(first.labels))
    cluster = np.array([names.index(label) for label in first.labels], dtype=np.int64)
    # The online speakers, merged where two turn out to be one voice.
    sums = np.stack([emb[cluster == c].sum(axis=0) for c in range(len(names))])
    counts = np.bincount(cluster, minlength=len(names)).astype(np.float64)
    owner = _agglomerate(sums, counts, threshold, min_speakers, max_speakers)
    cluster = owner[cluster]
    # Too few voices for the stated minimum: split the largest cluster until there are.
    while len(set(cluster.tolist())) < min(min_speakers, n):
        big = int(np.bincount(cluster).argmax())
        members = np.flatnonzero(cluster == big)
        part = _two_means(emb[members])
        if part.min() == part.max():
            break
        cluster[members[part == 1]] = cluster.max() + 1
    # Every window to its nearest voice, a few rounds, dropping voices too small to keep.
    for _ in range(3):
        ids = sorted(set(cluster.tolist()))
        sizes = {c: int((cluster == c).sum()) for c in ids}
        smallest = max(MIN_CLUSTER_WINDOWS, MIN_CLUSTER_SHARE * n)
        keep = [c for c in ids if sizes[c] >= smallest]
        keep = [c for c in keep if not _absorbed(emb, cluster, c, keep, n)]
        for c in sorted(ids, key=lambda c: -sizes[c]):
            if len(keep) >= min(min_speakers, len(ids)):
                break
            if c not in keep:
                keep.append(c)
        keep = keep or [max(ids, key=lambda c: sizes[c])]
        centres = np.stack([emb[cluster == c].mean(axis=0) for c in keep])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
        nearest = np.argmax(emb @ centres.T, axis=1)
        cluster = np.array(smooth([keep[int(i)] for i in nearest]), dtype=np.int64)
    result: list[int] = cluster.tolist()
    return result


def _absorbed(
    emb: npt.NDArray[np.float64], cluster: npt.NDArray[np.int64], c: int, keep: list[int], n: int
) -> bool:
    """Whether cluster `c` is too small to stand (`SMALL_SHARE`) and as alike as
    `SMALL_THRESHOLD` to another cluster in `keep`: its windows go to the nearest."""
    members = cluster == c
    if members.sum() >= SMALL_SHARE * n:
        return False
    s = emb[members].sum(axis=0)
    sims = [
        float(emb[cluster == o].sum(axis=0) @ s) / ((cluster == o).sum() * members.sum())
        for o in keep
        if o != c
    ]
    return bool(sims) and max(sims) >= SMALL_THRESHOLD


def consensus(
    emb: npt.NDArray[np.float64],
    *,
    min_speakers: int,
    max_speakers: int,
    threshold: float,
    first_pass_threshold: float,
) -> list[int]:
    """Each window's cluster id, with the number of voices the one most of the
    `VARIANTS` settings agree on (step 4 of the module docstring); the clusters are
    those of the first setting in `VARIANTS` order that finds that number."""
    results: list[list[int]] = []
    for fp, backwards in VARIANTS if CONSENSUS else VARIANTS[:1]:
        order = slice(None, None, -1) if backwards else slice(None)
        ids = _clusters(
            emb[order],
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            threshold=threshold,
            first_pass_threshold=first_pass_threshold + fp,
        )
        results.append(ids[order])
    counts = [len(set(ids)) for ids in results]
    votes = Counter(counts)
    top = max(votes.values())
    # A tie goes to the setting listed first (the tuned one), else to fewer voices.
    agreed = counts[0] if votes[counts[0]] == top else min(k for k in votes if votes[k] == top)
    return results[counts.index(agreed)]


def recluster(
    embeddings: FloatArray,
    online: list[str],
    *,
    min_speakers: int,
    max_speakers: int,
    next_number: int,
    threshold: float = RECLUSTER_THRESHOLD,
    first_pass_threshold: float = FIRST_PASS_THRESHOLD,
) -> tuple[list[str], int]:
    """Corrected labels for every window, and the next free label number.

    `embeddings` are the windows' unit voice prints (N, D) in order, `online` their
    labels from the online pass. Labels keep their online names wherever a corrected
    cluster mostly agrees with one.
    """
    if not online:
        return [], next_number
    final = consensus(
        np.asarray(embeddings, dtype=np.float64),
        min_speakers=min_speakers,
        max_speakers=max_speakers,
        threshold=threshold,
        first_pass_threshold=first_pass_threshold,
    )
    mapping = _match(final, online)
    labels: list[str] = []
    for c in final:
        if c not in mapping:
            mapping[c] = f"S{next_number}"
            next_number += 1
        labels.append(mapping[c])
    return labels, next_number
