"""Train the spam classifier the de-spam step applies, on a real labelled corpus.

Why: de-spam must rest on a model whose quality is measured honestly on data it never saw. The
corpus is the SMS Spam Collection (shipped with its licence in ``steps/data/``; see
``SMS_SPAM_COLLECTION.md``); its counts are checked on load. Exact-duplicate texts (after
lower-casing and collapsing whitespace) always fall on the same side of the train/test split —
the collection repeats many spam messages, and letting copies straddle the split inflates the
scores. The model is scikit-learn's TF-IDF (word 1-2-grams + character 2-5-grams) feeding a
class-balanced logistic regression, whose probabilities are usable as scores with a threshold.

Training is a step (``train_spam_model``): its artifact is the serialised model plus a JSON
metadata file whose stats hold precision, recall and F1 on the held-out split, and the
``profile`` of the training text (length quantiles, vocabulary size, the held-out rate of words
the model never saw). A model knows its domain: :meth:`SpamModel.domain_counts` measures how far
a batch of text lies from that profile (additive counts, so Beam can sum them across workers)
and :func:`judge_domain` turns the counts into the ``domain`` stats de-spam records.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support
from sklearn.pipeline import FeatureUnion, Pipeline

from headwater.steps.base import (
    Record,
    Step,
    StepParams,
    StepResult,
    records_to_table,
    register_step,
    require_columns,
)

__all__ = [
    "CorpusCountMismatch",
    "DomainCounts",
    "SpamModel",
    "TrainSpamModelStep",
    "TrainSpamParams",
    "judge_domain",
    "load_sms_spam",
    "normalise_text",
    "train_spam_model",
]

#: Published totals: (messages, spam) of each known distribution of the collection.
SHIPPED_TOTALS = (4837, 638)
UCI_TOTALS = (5574, 747)
SHIPPED_SHA256 = "250e576270ce09877dff9e56f7221e708e0dbb47ce44aebace92991fd6b435de"
MODEL_FILE = "model.pkl"
META_FILE = "model.json"
_WS = re.compile(r"\s+")


class CorpusCountMismatch(ValueError):
    """The corpus loaded does not have the published number of messages or spam."""


def normalise_text(text: str) -> str:
    """The key that decides 'exact duplicate' for the group split."""
    return _WS.sub(" ", text.lower()).strip()


def load_sms_spam(path: str | Path | None = None) -> pa.Table:
    """Load the SMS Spam Collection as a table ``(text: string, label: int8 1=spam)``.

    With no ``path``, loads the copy shipped in the package (4,837 / 638 spam). With ``path``
    to the UCI original ``SMSSpamCollection`` (``label<TAB>text`` lines), expects 5,574 / 747.

    Raises:
        CorpusCountMismatch: the counts differ from the published totals.
    """
    if path is None:
        raw = resources.files("headwater.steps").joinpath(
            "data/sms_spam_collection.jsonl.gz").read_bytes()
        data = gzip.decompress(raw)
        if hashlib.sha256(data).hexdigest() != SHIPPED_SHA256:
            raise CorpusCountMismatch("the shipped SMS spam corpus does not match its recorded "
                                      "SHA-256; reinstall headwater")
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
        labels = [r["label"] for r in rows]
        texts = [r["text"] for r in rows]
        expected = SHIPPED_TOTALS
    else:
        labels, texts = [], []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                lab, _, txt = line.partition("\t")
                labels.append(lab)
                texts.append(txt)
        expected = UCI_TOTALS
    y = [1 if lab == "spam" else 0 for lab in labels]
    bad = {lab for lab in labels if lab not in ("ham", "spam")}
    got = (len(y), sum(y))
    if bad or got != expected:
        raise CorpusCountMismatch(
            f"SMS spam corpus: loaded {got[0]} messages / {got[1]} spam, published totals are "
            f"{expected[0]} / {expected[1]}" + (f"; unknown labels {sorted(bad)}" if bad else ""))
    return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(y, pa.int8())})


def group_split(texts: Sequence[str], test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of test rows; every copy of a normalised text lands on the same side."""
    bound = int(test_fraction * 2**64)
    out = np.empty(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        h = hashlib.blake2b(normalise_text(t).encode(), digest_size=8, key=str(seed).encode())
        out[i] = int.from_bytes(h.digest(), "big") < bound
    return out


def _pipeline(c: float, seed: int) -> Pipeline:
    features = FeatureUnion([
        ("word", TfidfVectorizer(lowercase=True, ngram_range=(1, 2), min_df=1, sublinear_tf=True)),
        ("char", TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(2, 5),
                                 min_df=2, sublinear_tf=True)),
    ])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("clf", clf)])


@dataclass(frozen=True)
class TrainSpamParams(StepParams):
    """``test_fraction`` held out (grouped by normalised text); ``threshold`` on P(spam) that
    the stats are measured at and that de-spam uses by default; ``c``: inverse regularisation."""

    STEP = "train_spam_model"

    test_fraction: float = 0.25
    seed: int = 0
    threshold: float = 0.5
    c: float = 20.0
    text_column: str = "text"
    label_column: str = "label"

    def validate(self) -> None:
        if not 0.05 <= self.test_fraction <= 0.5:
            raise self.bad("test_fraction", f"must be in [0.05, 0.5], got {self.test_fraction!r}")
        if not 0.0 < self.threshold < 1.0:
            raise self.bad("threshold", f"must be in (0, 1), got {self.threshold!r}")
        if not self.c > 0:
            raise self.bad("c", f"must be > 0, got {self.c!r}")


#: Length band of the training profile: texts outside these quantiles count as out of profile.
PROFILE_BAND = (0.01, 0.99)
PROFILE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class DomainCounts:
    """Additive counts of how a batch of texts sits against a model's training profile:
    non-empty ``texts``, those whose length is outside the profile's band, word ``tokens`` and
    tokens not in the model's vocabulary (``oov``). Sum them across batches with ``+``."""

    texts: int = 0
    outside_length: int = 0
    tokens: int = 0
    oov: int = 0

    def __add__(self, other: DomainCounts) -> DomainCounts:
        return DomainCounts(self.texts + other.texts, self.outside_length + other.outside_length,
                            self.tokens + other.tokens, self.oov + other.oov)


def _word_vectorizer(pipeline: Pipeline) -> TfidfVectorizer | None:
    features = pipeline.named_steps.get("features")
    for _, part in getattr(features, "transformer_list", []):
        if isinstance(part, TfidfVectorizer) and part.analyzer == "word":
            return part
    return None


def _lengths_and_oov(texts: Sequence[str], vectorizer: TfidfVectorizer, vocabulary: set[str],
                     ) -> tuple[np.ndarray, int, int]:
    pre, tok = vectorizer.build_preprocessor(), vectorizer.build_tokenizer()
    tokens = oov = 0
    for t in texts:
        words = tok(pre(t))
        tokens += len(words)
        oov += sum(w not in vocabulary for w in words)
    return np.array([len(t) for t in texts], dtype=np.int64), tokens, oov


def _unigrams(vectorizer: TfidfVectorizer) -> set[str]:
    return {w for w in vectorizer.vocabulary_ if " " not in w}


def text_profile(pipeline: Pipeline, train: Sequence[str], heldout: Sequence[str],
                 ) -> dict[str, Any]:
    """The training-text profile stored in the model's stats (JSON)."""
    vec = _word_vectorizer(pipeline)
    if vec is None:
        raise ValueError("the spam pipeline has no word vectoriser to profile its vocabulary")
    vocab = _unigrams(vec)
    lengths = np.array([len(t) for t in train if t], dtype=np.int64)
    _, tokens, oov = _lengths_and_oov([t for t in heldout if t], vec, vocab)
    q = np.quantile(lengths, PROFILE_QUANTILES)
    return {
        "format": 1, "texts": int(lengths.size),
        "length_quantiles": {f"p{round(k * 100):02d}": float(v)
                             for k, v in zip(PROFILE_QUANTILES, q, strict=True)},
        "length_band": [float(np.quantile(lengths, PROFILE_BAND[0])),
                        float(np.quantile(lengths, PROFILE_BAND[1]))],
        "vocabulary_words": len(vocab),
        "heldout_tokens": tokens,
        "heldout_oov_rate": round(oov / tokens, 6) if tokens else 0.0,
    }


def _wilson_lower(k: int, n: int, z: float = 1.96) -> float:
    """Lower end of the Wilson 95 % interval of a proportion k/n (0 when n is 0)."""
    if n == 0:
        return 0.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def judge_domain(counts: DomainCounts, profile: Mapping[str, Any] | None, *, warn: float,
                 limit: float | None) -> dict[str, Any]:
    """The ``domain`` stats of a de-spam run: how far the input lies from the training profile.

    ``shift`` is the larger of (a) the share of texts whose length is outside the training
    band (the middle 98 % of training lengths: about 0.02 on text like the training text) and
    (b) the share of words the model never saw, beyond the held-out rate of its own corpus.
    Decisions use the lower end of a 95 % Wilson interval (``shift_lower``), so a handful of
    texts cannot fail a run by chance. ``warning`` is set when ``shift_lower`` exceeds
    ``warn``; ``over_limit`` when it exceeds ``limit`` (None: never).
    """
    if profile is None:
        return {"checked": False, "texts": counts.texts,
                "warning": "the model has no training-text profile (trained by an older "
                           "headwater); retrain it to check the input's domain"}
    ref = float(profile["heldout_oov_rate"])
    length_share = counts.outside_length / counts.texts if counts.texts else 0.0
    oov_rate = counts.oov / counts.tokens if counts.tokens else 0.0
    oov_excess = max(0.0, (oov_rate - ref) / (1 - ref)) if ref < 1 else 0.0
    excess_tokens = max(0, counts.oov - round(ref * counts.tokens))
    lower = max(_wilson_lower(counts.outside_length, counts.texts),
                _wilson_lower(excess_tokens, counts.tokens - round(ref * counts.tokens)))
    out: dict[str, Any] = {
        "checked": True, "texts": counts.texts,
        "length_band": list(profile["length_band"]),
        "outside_length_share": round(length_share, 6),
        "oov_rate": round(oov_rate, 6), "training_oov_rate": ref,
        "oov_excess": round(oov_excess, 6),
        "shift": round(max(length_share, oov_excess), 6), "shift_lower": round(lower, 6),
        "warn_at": warn, "limit": limit, "over_limit": limit is not None and lower > limit,
    }
    if lower > warn:
        out["warning"] = (
            f"input text is unlike the spam model's training text: {length_share:.1%} of "
            f"{counts.texts} texts have a length outside the training band "
            f"{profile['length_band']} characters, {oov_rate:.1%} of words are unknown to the "
            f"model (training held-out: {ref:.1%}); scores may be unreliable")
    return out


class SpamModel:
    """A fitted text classifier plus the threshold and stats it was trained with."""

    def __init__(self, pipeline: Pipeline, *, threshold: float, stats: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.threshold = threshold
        self.stats = stats
        self._vocabulary: set[str] | None = None

    @property
    def profile(self) -> dict[str, Any] | None:
        """The training-text profile (None for a model trained before profiles existed)."""
        profile = self.stats.get("profile")
        return profile if isinstance(profile, dict) else None

    def domain_counts(self, texts: Sequence[str | None]) -> DomainCounts:
        """How ``texts`` sit against the training profile (empty texts are not counted)."""
        profile, vec = self.profile, _word_vectorizer(self.pipeline)
        present = [t for t in texts if t]
        if profile is None or vec is None or not present:
            return DomainCounts(texts=len(present))
        if self._vocabulary is None:
            self._vocabulary = _unigrams(vec)
        lengths, tokens, oov = _lengths_and_oov(present, vec, self._vocabulary)
        lo, hi = profile["length_band"]
        outside = int(((lengths < lo) | (lengths > hi)).sum())
        return DomainCounts(len(present), outside, tokens, oov)

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        """P(spam) per text; a missing text scores 0."""
        scores = np.zeros(len(texts), dtype=np.float64)
        idx = [i for i, t in enumerate(texts) if t]
        if idx:
            scores[idx] = self.pipeline.predict_proba([texts[i] for i in idx])[:, 1]
        return scores

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        pickle.dump(self.pipeline, buf, protocol=5)
        return buf.getvalue()

    def metadata(self) -> dict[str, Any]:
        return {"format": "headwater-spam-model/1", "sklearn": sklearn.__version__,
                "threshold": self.threshold, "stats": self.stats,
                "model_sha256": hashlib.sha256(self.to_bytes()).hexdigest()}

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pkl`` and ``model.json`` into ``directory`` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / MODEL_FILE).write_bytes(self.to_bytes())
        (d / META_FILE).write_text(json.dumps(self.metadata(), indent=2, sort_keys=True) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> SpamModel:
        """Load a model saved by :meth:`save`; checks its digest before unpickling.

        Only load models from a trusted store (pickle runs code): Headwater verifies object
        digests on read, and this checks the file against the digest in ``model.json``.

        Raises:
            ValueError: the files are missing, or the model does not match its recorded digest.
        """
        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text())
            blob = (d / MODEL_FILE).read_bytes()
        except FileNotFoundError as e:
            raise ValueError(f"no spam model in {d}: {e.filename} is missing") from None
        if hashlib.sha256(blob).hexdigest() != meta.get("model_sha256"):
            raise ValueError(f"spam model in {d} does not match the digest in {META_FILE}")
        pipeline = pickle.loads(blob)
        return cls(pipeline, threshold=float(meta["threshold"]), stats=dict(meta["stats"]))


def _metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    pred = (scores >= threshold).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {"precision": round(float(p), 4), "recall": round(float(r), 4),
            "f1": round(float(f), 4), "n": len(y), "n_spam": int(y.sum()),
            "true_positives": int(((pred == 1) & (y == 1)).sum()),
            "false_positives": int(((pred == 1) & (y == 0)).sum())}


def train_spam_model(
    texts: Sequence[str], labels: Sequence[int], params: TrainSpamParams | None = None
) -> SpamModel:
    """Fit on the grouped train split, measure on the held-out split, return the model."""
    p = params or TrainSpamParams()
    y = np.asarray(labels, dtype=int)
    test = group_split(texts, p.test_fraction, p.seed)
    tr = [t for t, m in zip(texts, test, strict=True) if not m]
    te = [t for t, m in zip(texts, test, strict=True) if m]
    train_keys = {normalise_text(t) for t in tr}
    overlap = sum(normalise_text(t) in train_keys for t in te)
    pipe = _pipeline(p.c, p.seed).fit(tr, y[~test])
    model = SpamModel(pipe, threshold=p.threshold, stats={})
    heldout = _metrics(y[test], model.score(te), p.threshold)
    model.stats = {
        "corpus_rows": len(texts), "corpus_spam": int(y.sum()),
        "train_rows": len(tr), "test_rows": len(te),
        "duplicate_texts_across_split": overlap, "threshold": p.threshold,
        "heldout": heldout, **{k: heldout[k] for k in ("precision", "recall", "f1")},
        "profile": text_profile(pipe, tr, te),
    }
    return model


@register_step
class TrainSpamModelStep(Step):
    """Input: a labelled corpus table (``text``, ``label`` 1=spam). Output: the model artifact
    (``model.pkl``, ``model.json`` in ``artifacts``) and held-out quality in stats."""

    NAME: ClassVar[str] = "train_spam_model"
    VERSION: ClassVar[str] = "1"
    PARAMS: ClassVar[type[StepParams]] = TrainSpamParams
    params: TrainSpamParams

    @property
    def input_schema(self) -> pa.Schema:
        return pa.schema([(self.params.text_column, pa.string()),
                          (self.params.label_column, pa.int8())])

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([("metric", pa.string()), ("value", pa.float64())])

    def train(self, table: pa.Table) -> SpamModel:
        require_columns(self.NAME, table.schema, [self.params.text_column,
                                                  self.params.label_column])
        texts = table.column(self.params.text_column).to_pylist()
        labels = table.column(self.params.label_column).to_pylist()
        return train_spam_model(texts, labels, self.params)

    def run_table(self, table: pa.Table) -> StepResult:
        model = self.train(table)
        rows = [{"metric": k, "value": float(model.stats[k])}
                for k in ("precision", "recall", "f1", "threshold")]
        return StepResult(
            output=records_to_table(rows, self.output_schema),
            dead_letter=records_to_table([], self.output_schema),
            stats=model.stats,
            artifacts={MODEL_FILE: model.to_bytes(),
                       META_FILE: json.dumps(model.metadata(), sort_keys=True).encode()},
        )

    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """Training needs the whole corpus: the batch is the corpus."""
        result = self.run_table(pa.Table.from_pylist(list(records)))
        return result.output.to_pylist(), []
