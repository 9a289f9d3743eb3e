"""WordNet supersenses as a text CISSL benchmark: each synset's gloss (its definition and example sentences) is a
text labeled with the synset's lexicographer file, its supersense (noun.person, verb.motion, adj.all, ...).

Source: WordNet 3.0 (Princeton University, a BSD-style licence), installed offline from Debian:
`apt-get install -y wordnet-base` puts `data.noun`, `data.verb`, `data.adj`, `data.adv` under
/usr/share/wordnet/. The 45 supersense names are WordNet's `lexnames` list (fixed by the WordNet documentation,
lexnames(5WN)); the data files give each synset's number into it.

The features file (`python benchmarks/wordnet_features.py` writes benchmarks/data/wordnet-supersenses.npz):
- classes: the supersenses with at least MIN_PER_CLASS glosses, ordered from the most frequent (class 0, the
  natural head) to the least, so the long-tailed protocol's head is the data's own head;
- texts: the gloss alone (the synset's words are left out: they would make many labels a lookup);
- features: TF-IDF of word unigrams and bigrams (sublinear tf, terms in at least 2 glosses) reduced by truncated
  SVD to DIM dimensions (latent semantic analysis), fitted on the training rows only;
- test set: TEST_PER_CLASS glosses per class (balanced), drawn with a fixed seed; the rest, shuffled with the same
  seed, is the training part from which the protocol samples its labeled and unlabeled sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl").split()
WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).resolve().parent / "data" / "wordnet-supersenses.npz"
MIN_PER_CLASS = 1300
TEST_PER_CLASS = 100
DIM = 256
SEED = 0


def read_glosses(folder: Path = WORDNET) -> tuple[list[str], list[str]]:
    """(gloss, supersense) of every synset in WordNet's four data files (license header lines skipped)."""
    texts, labels = [], []
    for pos in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{pos}"
        if not path.is_file():
            raise SystemExit(f"{path} not found: apt-get install -y wordnet-base")
        with open(path, encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue
                head, _, gloss = line.partition(" | ")
                texts.append(gloss.strip())
                labels.append(LEXNAMES[int(head.split()[1])])
    return texts, labels


def build(texts: list[str], labels: list[str], min_per_class: int = MIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS,
          dim: int = DIM, seed: int = SEED) -> dict[str, np.ndarray]:
    """The features file's arrays: x, y, x_test, y_test, class_names (classes by descending frequency)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    names, counts = np.unique(np.array(labels), return_counts=True)
    order = np.lexsort((names, -counts))  # most frequent first; ties by name
    kept = [str(names[i]) for i in order if counts[i] >= min_per_class]
    index = {n: k for k, n in enumerate(kept)}
    rows = np.array([i for i, lab in enumerate(labels) if lab in index])
    y_all = np.array([index[labels[i]] for i in rows], dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(rows))
    rows, y_all = rows[perm], y_all[perm]
    test = np.zeros(len(rows), dtype=bool)
    for k in range(len(kept)):
        test[np.flatnonzero(y_all == k)[:test_per_class]] = True
    docs = [texts[i] for i in rows]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_docs = [d for d, t in zip(docs, test) if not t]
    svd = TruncatedSVD(dim, random_state=seed)
    x_train = svd.fit_transform(vectorizer.fit_transform(train_docs)).astype(np.float32)
    x_test = svd.transform(vectorizer.transform([d for d, t in zip(docs, test) if t])).astype(np.float32)
    return {"x": x_train, "y": y_all[~test], "x_test": x_test, "y_test": y_all[test], "class_names": np.array(kept)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--wordnet", type=Path, default=WORDNET)
    args = ap.parse_args()
    t0 = time.time()
    arrays = build(*read_glosses(args.wordnet))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    counts = np.bincount(arrays["y"])
    print(f"{args.out}: {len(arrays['y'])} training and {len(arrays['y_test'])} test glosses, "
          f"{len(counts)} classes ({counts.max()} .. {counts.min()} training glosses per class), "
          f"{arrays['x'].shape[1]} dimensions, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
