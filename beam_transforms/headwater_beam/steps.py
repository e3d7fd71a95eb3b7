"""``Clean``, ``Despam`` and ``Split``: Beam composites over the framework-free steps.

Why thin: the processing lives in :mod:`headwater.steps` (``clean_record``, ``split_spam``,
``stratum_of``/``record_hash``/``allocate``), the same functions the Airflow path runs through
``step.run_table``; these composites only decide how records meet (per record, per batch, per
hash bucket), count them, and route failures. Each returns a dict of tagged PCollections:
``"output"``, ``"dead_letter"`` (the original record plus ``reason`` and ``column``, writable
with ``WriteVersion`` like any other records) and, for ``Despam``, ``"spam"``. A record that
makes a step raise is dead-lettered with reason ``error: <Type>: <message>`` instead of failing
the bundle forever — except an input the step cannot handle at all (a required column absent, a
column the step adds already there, a text column that is not text: ``InputSchemaError``),
which fails the pipeline as it fails the table path, instead of dead-lettering every record.
``Despam`` also returns ``"domain"``: one dict, the input's distance from the model's training
text (as the table path's ``stats["domain"]``); its outputs wait for that judgement, so input past
``domain_limit`` fails the pipeline before anything is written unless ``force=True``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.display import DisplayDataItem

from headwater import Catalog, Settings
from headwater.canonical import canonical_json
from headwater.errors import InvalidArgument
from headwater.steps import InvalidStepParameter, Step
from headwater.steps.base import InputSchemaError, claim_columns
from headwater.steps.clean import CleanParams, CleanStep, check_input, clean_record
from headwater.steps.despam import DespamParams, DespamStep, check_domain, check_record, split_spam
from headwater.steps.spam_model import DomainCounts, SpamModel
from headwater.steps.split import SplitParams, SplitStep, allocate, record_hash, stratum_of
from headwater_beam.metrics import counter, report_lineage, version_uri
from headwater_beam.options import pinned_ref, settings_from_options, with_option_pins

__all__ = ["DEAD_LETTER", "DOMAIN", "OUTPUT", "SPAM", "Clean", "Despam", "Split", "error_record"]

OUTPUT = "output"
DEAD_LETTER = "dead_letter"
SPAM = "spam"
DOMAIN = "domain"
_log = logging.getLogger(__name__)


def error_record(record: dict[str, Any], exc: BaseException, column: str | None = None,
                 ) -> dict[str, Any]:
    """The dead letter of a record that made a step raise."""
    return {**record, "reason": f"error: {type(exc).__name__}: {exc}"[:500], "column": column}


def _check_keys(checked: set[frozenset[str]], record: dict[str, Any],
                check: Callable[[frozenset[str]], None]) -> None:
    """Run a step's input check (e.g. :func:`headwater.steps.base.claim_columns`, through the
    step's own check) once per distinct set of record keys: a schema problem fails the pipeline
    with the table path's error, instead of dead-lettering or overwriting every record."""
    keys = frozenset(record)
    if keys not in checked:
        check(keys)
        checked.add(keys)


def step_fingerprint(cls: type[Step]) -> str:
    """A step class's code fingerprint (it depends on the class and its modules only)."""
    return cls.code_fingerprint(object.__new__(cls))


class _StepComposite(beam.PTransform):  # type: ignore[misc]
    """Shared ``display_data`` and provenance attributes of the step composites."""

    STEP: type[Step]

    def __init__(self, params: Any, label: str | None) -> None:
        super().__init__(label)
        self.params = params
        self.headwater_params: dict[str, Any] = {"step": self.STEP.NAME, **params.to_dict()}
        self.headwater_code: str = step_fingerprint(self.STEP)

    def display_data(self) -> dict[str, Any]:
        return {
            "step": DisplayDataItem(self.STEP.NAME, label="Headwater step"),
            "step_version": DisplayDataItem(self.STEP.VERSION, label="Step version"),
            "params": DisplayDataItem(self.params.canonical_json(), label="Parameters"),
            "code": DisplayDataItem(self.headwater_code, label="Code fingerprint"),
        }


# --- clean ---------------------------------------------------------------------------------
class _CleanFn(beam.DoFn):
    def __init__(self, params: CleanParams) -> None:
        self._params = params

    def setup(self) -> None:
        self._in = counter("clean", "records_in")
        self._out = counter("clean", "records_out")
        self._dead = counter("clean", "dead_lettered")
        self._checked: set[frozenset[str]] = set()

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        self._in.inc()
        _check_keys(self._checked, record, lambda keys: check_input(keys, self._params))
        try:
            ok, bad = clean_record(record, self._params)
        except Exception as exc:
            ok, bad = None, error_record(record, exc)
        if ok is not None:
            self._out.inc()
            yield ok
        else:
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, bad)


class Clean(_StepComposite):
    """Validate and normalise records (:func:`headwater.steps.clean.clean_record`)."""

    STEP = CleanStep

    def __init__(self, params: CleanParams | None = None, *, label: str | None = None) -> None:
        params = params if params is not None else CleanParams()
        if not isinstance(params, CleanParams):
            raise InvalidArgument(f"Clean takes CleanParams, not {type(params).__name__}")
        super().__init__(params, label)

    def expand(self, pcoll: beam.PCollection) -> dict[str, beam.PCollection]:
        res = pcoll | "Clean" >> beam.ParDo(_CleanFn(self.params)).with_outputs(
            DEAD_LETTER, main=OUTPUT)
        return {OUTPUT: res[OUTPUT], DEAD_LETTER: res[DEAD_LETTER]}


# --- despam --------------------------------------------------------------------------------
class _ModelFn(beam.DoFn):
    """A DoFn holding the spam model, or the ref it loads the model from once per worker."""

    LINEAGE = True  # report the model version as a lineage source (once per pipeline is enough)

    def __init__(self, params: DespamParams, model: SpamModel | None, model_ref: str | None,
                 settings: Settings | None) -> None:
        self._params = params
        self._model = model
        self._model_ref = model_ref
        self._settings = settings

    def setup(self) -> None:
        if self._model is None:
            self._model = _load_model(self._settings, self._model_ref, lineage=self.LINEAGE)


class _DespamFn(_ModelFn):
    def setup(self) -> None:
        super().setup()
        self._in = counter("despam", "records_in")
        self._out = counter("despam", "records_out")
        self._spam = counter("despam", "spam_dropped")
        self._dead = counter("despam", "dead_lettered")

    def process(self, batch: Sequence[dict[str, Any]]) -> Iterator[Any]:
        model = self._model
        if model is None:  # setup() always sets it; kept for type checkers
            raise RuntimeError("despam: the model was not loaded")
        self._in.inc(len(batch))
        for r in batch:  # a schema problem fails the pipeline, as in the table path
            check_record(r, self._params)
        yield pvalue.TaggedOutput(DOMAIN, model.domain_counts(
            [r.get(self._params.text_column) for r in batch]))
        try:
            kept, spam = split_spam(batch, model, self._params)
            dead: list[dict[str, Any]] = []
        except InputSchemaError:
            raise
        except Exception:  # isolate the records that fail, keep the rest
            kept, spam, dead = [], [], []
            for r in batch:
                try:
                    k, s = split_spam([r], model, self._params)
                except Exception as exc:
                    dead.append(error_record(r, exc, self._params.text_column))
                    continue
                kept += k
                spam += s
        self._out.inc(len(kept))
        self._spam.inc(len(spam))
        self._dead.inc(len(dead))
        yield from kept
        for r in spam:
            yield pvalue.TaggedOutput(SPAM, r)
        for r in dead:
            yield pvalue.TaggedOutput(DEAD_LETTER, r)


class _DomainFn(_ModelFn):
    """Summed :class:`DomainCounts` → the ``domain`` dict; raises past the limit unless forced."""

    LINEAGE = False

    def process(self, counts: DomainCounts) -> Iterator[dict[str, Any]]:
        if self._model is None:
            raise RuntimeError("despam: the model was not loaded")
        domain = check_domain(counts, self._model, self._params)
        if "warning" in domain:
            counter("despam", "domain_warnings").inc()
            _log.warning("despam: %s", domain["warning"])
        yield domain


def _sum_counts(parts: Iterable[DomainCounts]) -> DomainCounts:
    return functools.reduce(operator.add, parts, DomainCounts())


def _after(record: dict[str, Any], domain: dict[str, Any]) -> dict[str, Any]:
    """Pass a record on once the domain judgement (a side input) exists."""
    return record


def _load_model(settings: Settings | None, ref: str | None, *, lineage: bool = True,
                ) -> SpamModel:
    if settings is None or ref is None:
        raise InvalidArgument("Despam needs a model or a model version reference")
    with Catalog(settings) as cat, tempfile.TemporaryDirectory(prefix="hw-model-") as tmp:
        version = cat.get(ref)
        version.checkout(tmp)
        if lineage:
            report_lineage("source", version_uri(version))
        return SpamModel.load(tmp)


class Despam(_StepComposite):
    """Score each record's text with a spam model; spam goes to the ``"spam"`` output.

    Give either ``model`` (a :class:`SpamModel`, pickled to the workers) or ``model_ref`` (a
    model version, e.g. ``spam_model@production``: resolved to an exact version in the launcher
    — a pin for its dataset (``--headwater_pins``, ``HEADWATER_PINS``) replaces it, as for
    ``ReadVersion`` — loaded once per worker in ``setup``, and recorded as an input of every
    version written downstream).
    Records are scored in batches of up to ``batch_size`` (the vectoriser is much faster on
    batches).
    """

    STEP = DespamStep

    def __init__(self, params: DespamParams | None = None, *, model: SpamModel | None = None,
                 model_ref: str | None = None, settings: Settings | None = None,
                 batch_size: int = 500, label: str | None = None) -> None:
        params = params if params is not None else DespamParams()
        if not isinstance(params, DespamParams):
            raise InvalidArgument(f"Despam takes DespamParams, not {type(params).__name__}")
        if (model is None) == (model_ref is None):
            raise InvalidStepParameter("despam", "model",
                                       "give exactly one of model= or model_ref=")
        if model is not None and not isinstance(model, SpamModel):
            raise InvalidStepParameter("despam", "model", "must be a SpamModel")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive int, not {batch_size!r}")
        super().__init__(params, label)
        self.model = model
        self.model_ref = model_ref
        self.settings = settings
        self.batch_size = batch_size
        self.headwater_inputs: tuple[str, ...] = ()
        if model is not None:
            self.headwater_params["threshold_used"] = (
                model.threshold if params.threshold is None else params.threshold)

    def expand(self, pcoll: beam.PCollection) -> dict[str, beam.PCollection]:
        settings = None
        ref = None
        if self.model_ref is not None:
            options = pcoll.pipeline.options
            settings = (with_option_pins(self.settings, options) if self.settings is not None
                        else settings_from_options(options))
            with Catalog(settings) as cat:
                # resolved now, in the launcher; a pin for the model's dataset (--headwater_pins,
                # HEADWATER_PINS, Settings.pins) substitutes its exact version, as ReadVersion's
                ref = cat.get(pinned_ref(settings, self.model_ref)).ref
            self.headwater_inputs = (ref,)
            self.headwater_params["model"] = ref
        res = (
            pcoll
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
            | "Score" >> beam.ParDo(_DespamFn(self.params, self.model, ref, settings))
            .with_outputs(SPAM, DEAD_LETTER, DOMAIN, main=OUTPUT)
        )
        domain = (
            res[DOMAIN]
            | "SumDomain" >> beam.CombineGlobally(_sum_counts)
            | "JudgeDomain" >> beam.ParDo(_DomainFn(self.params, self.model, ref, settings))
        )
        judged = beam.pvalue.AsSingleton(domain)
        return {OUTPUT: res[OUTPUT] | "AfterDomain" >> beam.Map(_after, judged),
                SPAM: res[SPAM] | "SpamAfterDomain" >> beam.Map(_after, judged),
                DEAD_LETTER: res[DEAD_LETTER], DOMAIN: domain}

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        data["model"] = DisplayDataItem(
            self.headwater_inputs[0] if self.headwater_inputs else (self.model_ref or "in-line"),
            label="Spam model")
        data["batch_size"] = DisplayDataItem(self.batch_size, label="Batch size (max)")
        return data


# --- split ---------------------------------------------------------------------------------
def split_key(record: dict[str, Any], params: SplitParams) -> str | None:
    """The key that orders a record in its stratum (as :mod:`headwater.steps.split` has it);
    None when the key column is missing or null."""
    if params.key_column is not None:
        value = record.get(params.key_column)
        return None if value is None else str(value)
    return canonical_json(record)


class _SplitKeyFn(beam.DoFn):
    """Record → ``((stratum, bucket), (hash, key, record))``; a record without a key → dead."""

    def __init__(self, params: SplitParams, buckets: int) -> None:
        self._params = params
        self._buckets = buckets

    def setup(self) -> None:
        self._in = counter("split", "records_in")
        self._dead = counter("split", "dead_lettered")
        self._checked: set[frozenset[str]] = set()

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        self._in.inc()
        p = self._params
        # the split column (and a dead letter's reason/column) never clobber an input column:
        # the table path's rule and error (SplitStep.run_table)
        _check_keys(self._checked, record,
                    lambda keys: claim_columns(SplitParams.STEP, keys, p.added_columns()))
        key = split_key(record, p)
        if key is None:
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, {**record, "reason": "missing_key",
                                                    "column": p.key_column})
            return
        h = record_hash(key, p.seed)
        bucket = (int.from_bytes(h[:4], "big") * self._buckets) >> 32  # monotone in the hash
        yield (stratum_of(record, p), bucket), (h, key, record)


def _plan(counts: Iterable[tuple[tuple[str, int], int]], ratios: Sequence[float],
          ) -> dict[tuple[str, int], tuple[int, list[int]]]:
    """(stratum, bucket) → (rank of its first record in the stratum, cumulative part ends)."""
    by_stratum: dict[str, list[tuple[int, int]]] = {}
    for (stratum, bucket), n in counts:
        by_stratum.setdefault(stratum, []).append((bucket, n))
    plan: dict[tuple[str, int], tuple[int, list[int]]] = {}
    for stratum, buckets in by_stratum.items():
        total = sum(n for _, n in buckets)
        ends: list[int] = []
        acc = 0
        for c in allocate(total, ratios):
            acc += c
            ends.append(acc)
        offset = 0
        for bucket, n in sorted(buckets):
            plan[(stratum, bucket)] = (offset, ends)
            offset += n
    return plan


class _AssignFn(beam.DoFn):
    """Ranks one (stratum, hash bucket) group and gives each record its part."""

    def __init__(self, params: SplitParams) -> None:
        self._params = params
        self._plan: dict[tuple[str, int], tuple[int, list[int]]] | None = None
        self._plan_of: int | None = None

    def setup(self) -> None:
        self._out = counter("split", "records_out")
        self._parts = {part: counter("split", f"part_{part}") for part in self._params.parts}

    def process(self, group: tuple[tuple[str, int], Iterable[tuple[bytes, str, dict[str, Any]]]],
                counts: list[tuple[tuple[str, int], int]]) -> Iterator[dict[str, Any]]:
        if self._plan is None or self._plan_of != id(counts):
            self._plan, self._plan_of = _plan(counts, self._params.ratios), id(counts)
        p = self._params
        where, members = group
        ordered = sorted(members, key=lambda t: (t[0], t[1]))
        for a, b in itertools.pairwise(ordered):
            if a[1] == b[1]:
                raise InvalidStepParameter("split", "key_column",
                                           f"{p.key_column!r} has duplicate value {a[1]!r}; "
                                           "the split needs a unique key per record")
        offset, ends = self._plan[where]
        part_no = 0
        for i, (_, _, record) in enumerate(ordered):
            rank = offset + i
            while rank >= ends[part_no]:
                part_no += 1
            part = p.parts[part_no]
            self._parts[part].inc()
            self._out.inc()
            yield {**record, p.split_column: part}


class Split(_StepComposite):
    """Deterministic stratified split, exactly as :class:`~headwater.steps.split.SplitStep`.

    Distributed without a global sort: records are grouped by (stratum, hash bucket), where the
    bucket is a prefix of the keyed hash that orders records in their stratum; bucket sizes
    (a side input of ``strata x buckets`` counts) give each group the rank of its first record,
    so every record's rank — and part — is exact. A stratum never has to fit in one worker.
    """

    STEP = SplitStep

    def __init__(self, params: SplitParams | None = None, *, buckets: int = 1024,
                 label: str | None = None) -> None:
        params = params if params is not None else SplitParams()
        if not isinstance(params, SplitParams):
            raise InvalidArgument(f"Split takes SplitParams, not {type(params).__name__}")
        if not isinstance(buckets, int) or not 1 <= buckets <= 1 << 20:
            raise InvalidArgument(f"buckets must be an int in [1, 2**20], not {buckets!r}")
        super().__init__(params, label)
        self.buckets = buckets

    def expand(self, pcoll: beam.PCollection) -> dict[str, beam.PCollection]:
        keyed = pcoll | "Key" >> beam.ParDo(_SplitKeyFn(self.params, self.buckets)).with_outputs(
            DEAD_LETTER, main="keyed")
        counts = (
            keyed["keyed"]
            | "BucketOf" >> beam.Map(lambda kv: kv[0])
            | "Count" >> beam.combiners.Count.PerElement()
        )
        out = (
            keyed["keyed"]
            | "Group" >> beam.GroupByKey()
            | "Assign" >> beam.ParDo(_AssignFn(self.params), counts=beam.pvalue.AsList(counts))
        )
        return {OUTPUT: out, DEAD_LETTER: keyed[DEAD_LETTER]}

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        data["buckets"] = DisplayDataItem(self.buckets, label="Hash buckets per stratum")
        return data
