"""Operators for the reference steps: thin wrappers over :mod:`headwater.steps`.

Each builds the step from ``step_params`` (templated, validated by the step's own parameter
class, so a bad value fails the task with the parameter named), runs it on the resolved input
table, and logs what it returns: the main output, the records it set aside (spam, dead letters)
so nothing is lost, and for training the model artifact. The code fingerprint is the step's own
(its modules' source + version), so editing a step invalidates exactly the tasks that run it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute

from headwater import RunContext
from headwater.steps import Step, StepResult, get_step
from headwater_airflow.operators.versioned import Output, VersionedStepOperator


def build_step(name: str, params: Mapping[str, Any], **inputs: Any) -> Step:
    """The registered step ``name`` with parameters from a (rendered) dict."""
    cls = get_step(name)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return cls(cls.PARAMS(**fields), **inputs)  # type: ignore[call-arg,unused-ignore]


def _count(table: pa.Table, columns: list[str]) -> pa.Table:
    """Rows per distinct value of ``columns`` (most frequent first)."""
    present = [c for c in columns if c in table.column_names]
    if not present or table.num_rows == 0:
        return pa.table({**{c: pa.array([], pa.string()) for c in columns or ["value"]},
                         "rows": pa.array([], pa.int64())})
    counted = table.group_by(present).aggregate([([], "count_all")])  # keys, then count_all
    return counted.rename_columns([*present, "rows"]).sort_by([("rows", "descending")])


def _log_table(run: RunContext, table: pa.Table | None, name: str | None, *,
               stats: Mapping[str, Any] | None = None, key: list[str] | None = None,
               type: str = "table") -> None:
    if name is not None and table is not None:
        run.log_output(table, name=name, type=type, stats=stats, key=key)


class HeadwaterStepOperator(VersionedStepOperator):
    """Base of the reference-step operators: one input table, one main output, side outputs."""

    step_name: ClassVar[str]
    ui_color = "#d7f2e3"

    def __init__(self, *, input: str, output: str, step_params: Mapping[str, Any] | None = None,
                 extra_inputs: Mapping[str, str] | None = None,
                 outputs: list[Output] | None = None, **kwargs: Any) -> None:
        self.main_output = output
        inputs = {"table": input, **dict(extra_inputs or {})}
        super().__init__(python_callable=self._run_step, inputs=inputs,
                         outputs=outputs or [Output(output)], step_params=step_params or {},
                         **kwargs)

    def code_fingerprint(self) -> str:
        fp = get_step(self.step_name).class_fingerprint()
        return f"{fp}:{self.code_version}" if self.code_version else fp

    def make_step(self, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Step:
        return build_step(self.step_name, params)

    def log_result(self, run: RunContext, result: StepResult) -> None:
        _log_table(run, result.output, self.main_output, stats=result.stats)

    def _run_step(self, run: RunContext, table: pa.Table, **kwargs: Any) -> None:
        params = {k: v for k, v in kwargs.items() if k in self.step_params}
        inputs = {k: v for k, v in kwargs.items() if k not in self.step_params}
        step = self.make_step(params, inputs)
        result = step.run_table(table)
        self.log.info("%s: %s", self.step_name, json.dumps(
            {k: v for k, v in result.stats.items() if isinstance(v, int | float)}, sort_keys=True))
        for warning in result.stats.get("warnings") or []:  # also kept in the version's stats
            self.log.warning("%s: %s", self.step_name, warning)
        self.log_result(run, result)


class CleanOperator(HeadwaterStepOperator):
    """Validate + normalise; invalid rows (column + reason) go to ``dead_letter``."""

    step_name = "clean"

    def __init__(self, *, dead_letter: str | None = None, **kwargs: Any) -> None:
        self.dead_letter = dead_letter
        outputs = [Output(kwargs["output"], type="table")]
        if dead_letter:
            outputs.append(Output(dead_letter, type="table"))
        super().__init__(outputs=outputs, **kwargs)

    def log_result(self, run: RunContext, result: StepResult) -> None:
        _log_table(run, result.output, self.main_output, stats=result.stats)
        _log_table(run, result.dead_letter, self.dead_letter,
                   stats={"rows": result.dead_letter.num_rows})
        reasons = _count(result.dead_letter, ["column", "reason"])
        run.report(self.main_output, "dead_letter_reasons", "table", reasons)
        run.report(self.main_output, "rows_dead_lettered", "scalar", result.dead_letter.num_rows)


class SplitOperator(HeadwaterStepOperator):
    """Deterministic stratified train/dev/test split; per-part class histograms in the stats."""

    step_name = "split"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(outputs=[Output(kwargs["output"], type="split")], **kwargs)

    def log_result(self, run: RunContext, result: StepResult) -> None:
        _log_table(run, result.output, self.main_output, stats=result.stats, type="split")
        hist = result.stats.get("class_histograms") or {}
        for part, counts in hist.items():
            run.report(self.main_output, f"class_balance_{part}", "histogram",
                       counts=counts, x_title="class", y_title="rows")
        rows = [{"part": part, "class": cls, "rows": n}
                for part, counts in hist.items() for cls, n in counts.items()]
        if rows:
            run.report(self.main_output, "class_counts", "table", rows)


class TrainSpamModelOperator(HeadwaterStepOperator):
    """Train the spam classifier on a labelled corpus version; the output is a ``model``
    version (``model.pkl`` + ``model.json``) whose stats hold held-out precision/recall/F1."""

    step_name = "train_spam_model"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(outputs=[Output(kwargs["output"], type="model")], **kwargs)

    def log_result(self, run: RunContext, result: StepResult) -> None:
        with tempfile.TemporaryDirectory(prefix="headwater-model-") as tmp:
            for name, blob in result.artifacts.items():
                (Path(tmp) / name).write_bytes(blob)
            run.log_output(tmp, name=self.main_output, type="model", stats=result.stats)
        held = result.stats.get("heldout") or {}
        if held:
            tp, fp = held["true_positives"], held["false_positives"]
            fn, tn = held["n_spam"] - tp, held["n"] - held["n_spam"] - fp
            run.report(self.main_output, "confusion_matrix_heldout", "table", [
                {"actual": "spam", "predicted_spam": tp, "predicted_ham": fn},
                {"actual": "ham", "predicted_spam": fp, "predicted_ham": tn}])
        for metric in ("precision", "recall", "f1"):
            if metric in result.stats:
                run.report(self.main_output, metric, "scalar", result.stats[metric])


class DespamOperator(HeadwaterStepOperator):
    """Drop records whose spam score is at or above the threshold; they go, with their score,
    to ``spam_output`` (nothing is lost)."""

    step_name = "despam"

    def __init__(self, *, model: str, spam_output: str | None = None, **kwargs: Any) -> None:
        self.spam_output = spam_output
        outputs = [Output(kwargs["output"], type="table")]
        if spam_output:
            outputs.append(Output(spam_output, type="table"))
        super().__init__(extra_inputs={"model": model}, outputs=outputs, **kwargs)

    def make_step(self, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Step:
        from headwater.steps.spam_model import SpamModel

        return build_step(self.step_name, params, model=SpamModel.load(inputs["model"]))

    def log_result(self, run: RunContext, result: StepResult) -> None:
        _log_table(run, result.output, self.main_output, stats=result.stats)
        spam = result.side_outputs.get("spam")
        _log_table(run, spam, self.spam_output, stats={"rows": result.stats.get("rows_spam")})
        score = self.step_params.get("score_column", "spam_score")
        text = self.step_params.get("text_column", "signup_text")
        scores = result.output.column(score).to_pylist() if score in \
            result.output.column_names else []
        if spam is not None and score in spam.column_names:
            scores += spam.column(score).to_pylist()
        if scores:
            run.report(self.main_output, "spam_score", "histogram", scores, bins=20,
                       x_title="spam score", y_title="records")
        samples = [{"text": r.get(text), "caption": f"spam, score {r.get(score)}"}
                   for r in (spam.slice(0, 3).to_pylist() if spam is not None else [])]
        samples += [{"text": r.get(text), "caption": f"kept, score {r.get(score)}"}
                    for r in result.output.slice(0, 3).to_pylist()]
        if samples:
            run.report(self.main_output, "samples", "samples", samples)
        run.report(self.main_output, "rows_spam", "scalar", result.stats.get("rows_spam", 0))


class IdMergeOperator(HeadwaterStepOperator):
    """Entity resolution: one stable ``user_id`` per person. The previous version of
    ``mapping_output`` is read as state, so a person keeps their ID when new records arrive."""

    step_name = "id_merge"

    def __init__(self, *, mapping_output: str, **kwargs: Any) -> None:
        self.mapping_output = mapping_output
        super().__init__(outputs=[Output(kwargs["output"], type="table"),
                                  Output(mapping_output, type="table")],
                         state_inputs={"previous": f"{mapping_output}@latest"}, **kwargs)

    def make_step(self, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Step:
        previous = inputs.get("previous")
        return build_step(self.step_name, params, previous=previous)

    def log_result(self, run: RunContext, result: StepResult) -> None:
        _log_table(run, result.output, self.main_output, stats=result.stats)
        _log_table(run, result.side_outputs.get("mapping"), self.mapping_output)
        sizes = result.stats.get("cluster_size_histogram") or {}
        if sizes:
            run.report(self.main_output, "cluster_sizes", "histogram", counts=sizes,
                       x_title="records per person", y_title="people")
        uid = self.step_params.get("user_id_column", "user_id")
        if uid in result.output.column_names and result.output.num_rows:
            counts = _count(result.output, [uid])
            multi = counts.filter(pa.compute.greater(counts["rows"], 1)).slice(0, 5)
            keep = set(multi.column(uid).to_pylist())
            rows = [r for r in result.output.to_pylist() if r[uid] in keep]
            if rows:
                run.report(self.main_output, "merged_clusters", "samples",
                           [{"record": r, "caption": f"person {r[uid]}"} for r in rows[:20]])
        run.report(self.main_output, "persons", "scalar", result.stats.get("persons", 0))
