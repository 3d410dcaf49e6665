"""End-of-stream correction: cluster the whole session's voice prints again, at leisure.

The online pass decides each window with only the past in view; at the end every
window's voice print is known. This module re-clusters them (numpy only):

1. windows are grouped into short runs of one online label (a few seconds each);
2. the groups are merged bottom-up by average linkage on cosine similarity (the mean
   similarity of all pairs of windows across two clusters, which for unit vectors is
   the dot product of their sums divided by their sizes) while the most similar pair
   reaches `RECLUSTER_THRESHOLD`, or while there are more than `max_speakers`, but
   never below `min_speakers`;
3. clusters smaller than `MIN_CLUSTER_WINDOWS` join their nearest neighbour;
4. every window is assigned to its nearest cluster centroid, and single-window flips
   are smoothed, as online;
5. clusters get the online label they overlap most (a greedy maximum matching, exact
   for the handful of speakers in a meeting), so labels stay stable; a cluster that
   matches no online label gets a new one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RECLUSTER_THRESHOLD = 0.5
"""Mean pairwise cosine similarity at which two clusters are one speaker. Pairs of
windows of the same dev speaker average about 0.7, of two different speakers 0.2-0.47
(docs/benchmarks.md, diarization)."""
MIN_CLUSTER_WINDOWS = 4
"""A cluster of fewer windows (2 s of speech) is not kept as a speaker of its own."""
MAX_GROUPS = 400
"""Initial groups at most, so that a long meeting re-clusters in well under a second."""

FloatArray = npt.NDArray[np.float32]


def _groups(labels: list[str]) -> list[list[int]]:
    """Consecutive windows of one online label, cut into pieces of a few windows."""
    size = max(4, -(-len(labels) // MAX_GROUPS))
    groups: list[list[int]] = []
    for i, label in enumerate(labels):
        if groups and labels[groups[-1][-1]] == label and len(groups[-1]) < size:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


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


def recluster(
    embeddings: FloatArray,
    online: list[str],
    *,
    min_speakers: int,
    max_speakers: int,
    next_number: int,
    threshold: float = RECLUSTER_THRESHOLD,
) -> tuple[list[str], int]:
    """Corrected labels for every window, and the next free label number.

    `embeddings` are the windows' unit voice prints (N, D) in order, `online` their
    labels from the online pass. Labels keep their online names wherever a corrected
    cluster mostly agrees with one.
    """
    n = len(online)
    if n == 0:
        return [], next_number
    groups = _groups(online)
    emb = np.asarray(embeddings, dtype=np.float64)
    sums = np.stack([emb[g].sum(axis=0) for g in groups])
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    owner = _agglomerate(sums.copy(), counts.copy(), threshold, min_speakers, max_speakers)
    ids = sorted(set(owner.tolist()))
    window_cluster = np.empty(n, dtype=np.int64)
    for g, o in zip(groups, owner, strict=True):
        window_cluster[g] = ids.index(int(o))
    centroids = np.stack([emb[window_cluster == c].mean(axis=0) for c in range(len(ids))])
    sizes = np.bincount(window_cluster, minlength=len(ids))
    keep = [c for c in range(len(ids)) if sizes[c] >= MIN_CLUSTER_WINDOWS]
    while len(keep) < min(min_speakers, len(ids)):  # honour the minimum before size
        keep.append(max((c for c in range(len(ids)) if c not in keep), key=lambda c: sizes[c]))
    if not keep:
        keep = [int(np.argmax(sizes))]
    kept = centroids[keep]
    kept /= np.linalg.norm(kept, axis=1, keepdims=True) + 1e-12
    nearest = np.argmax(emb @ kept.T, axis=1)
    final = smooth([keep[int(i)] for i in nearest])
    mapping = _match(final, online)
    labels: list[str] = []
    for c in final:
        if c not in mapping:
            mapping[c] = f"S{next_number}"
            next_number += 1
        labels.append(mapping[c])
    return labels, next_number
