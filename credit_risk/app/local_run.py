"""Run the training pipeline on this machine with the KFP local runner, and summarise the result.

kfp 2.13's SubprocessRunner executes each component in a subprocess of the current interpreter
(``use_venv=False``: the pipeline environment already has everything). Artifacts land under
``<pipeline_root>/<pipeline-name>-<timestamp>/<task>/<output>``.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credit_risk.errors import ConfigError
from credit_risk.evidence.gate import Decision
from credit_risk.release.deploy import DeployRecord

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# (task, output) of the artifacts the summary points at; task names are the component names.
ARTIFACTS = {
    "features": ("history-features", "features"),
    "snapshot": ("ingest", "snapshot"),
    "statistics": ("validate", "statistics"),
    "schema": ("validate", "schema"),
    "anomalies": ("validate", "anomalies"),
    "stats_report": ("validate", "stats_report"),
    "anomalies_table": ("validate", "anomalies_table"),
    "drift": ("validate", "drift"),
    "train_data": ("split", "train_data"),
    "eval_data": ("split", "eval_data"),
    "model": ("train", "model"),
    "approval": ("evaluate", "approval"),
    "evaluation_report": ("evaluate", "report"),
    "model_card": ("evaluate", "model_card"),
    "deployment": ("deploy", "deployment"),
    "inference_service": ("deploy", "inference_service"),
}


@dataclass
class RunSummary:
    succeeded: bool
    run_dir: str
    seconds: float
    error: str = ""
    failed_task: str = ""
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    decision: Decision | None = None
    deployment: DeployRecord | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if not self.succeeded:
            return "failed"
        return self.decision.decision if self.decision else "unknown"

    @property
    def model_dir(self) -> str | None:
        return self.artifacts.get("model")

    def to_dict(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "verdict": self.verdict,
            "run_dir": self.run_dir,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "failed_task": self.failed_task,
            "anomalies": self.anomalies,
            "decision": json.loads(self.decision.to_json()) if self.decision else None,
            "deployment": json.loads(self.deployment.to_json()) if self.deployment else None,
            "artifacts": self.artifacts,
        }


# what a key figure of a finished step is read from: its output artifacts' metadata, in this order
KEY_FIGURES = ("source", "rows", "num_rows", "anomalies", "train_rows", "eval_rows", "val_auc", "auc",
               "decision", "state", "reason")  # fmt: skip


class Progress:
    """One line per task - name, status, seconds, key figures from its outputs' metadata - from
    the KFP local runner's own log lines (``Executing task 'x'`` ... ``Task 'x' finished with
    status SUCCESS``), written to ``out`` (the terminal) while the full output goes to a log."""

    _START = re.compile(r"Executing task '([\w-]+)'")
    _END = re.compile(r"Task '([\w-]+)' finished with status (\w+)")

    def __init__(self, out: Any, root: Path, pipeline_name: str, before: set[Path]) -> None:
        self.out, self.root, self.pipeline_name, self.before = out, root, pipeline_name, before
        self.started: dict[str, float] = {}
        self.done = 0

    def feed(self, line: str) -> None:
        if match := self._START.search(line):
            self.started[match.group(1)] = time.perf_counter()
        elif match := self._END.search(line):
            task, status = match.groups()
            seconds = time.perf_counter() - self.started.get(task, time.perf_counter())
            self.done += 1
            figures = "  ".join(f"{k} {v}" for k, v in self.figures(task).items())
            self.out.write(
                f"  [{self.done}] {task:<18} {status:<8} {seconds:6.1f} s  {figures}".rstrip() + "\n"
            )
            self.out.flush()

    def figures(self, task: str) -> dict[str, Any]:
        """Up to three KEY_FIGURES of the task's output artifacts (``executor_output.json``)."""
        runs = [p for p in self.root.glob(f"{self.pipeline_name}-*") if p.is_dir() and p not in self.before]
        if not runs:
            return {}
        path = max(runs, key=lambda p: p.stat().st_mtime) / task / "executor_output.json"
        try:
            outputs = json.loads(path.read_text()).get("artifacts", {})
        except (OSError, ValueError):
            return {}
        found = []  # (output, key, value), outputs in order, keys in KEY_FIGURES order
        for output, produced in outputs.items():
            for artifact in produced.get("artifacts", []):
                metadata = artifact.get("metadata") or {}
                found += [(output, k, metadata[k]) for k in KEY_FIGURES if metadata.get(k) not in ("", None)]
        values = collections.defaultdict(set)
        for _, k, v in found:
            values[k].add(str(v))
        # a figure every output agrees on is shown once; differing ones name their output
        shown = {(k if len(values[k]) == 1 else f"{output} {k}"): v for output, k, v in found}
        return {k: _short(v) for k, v in list(shown.items())[:3]}


def _short(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 4)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Tail(io.TextIOBase):
    """Passes output through (to the terminal, or a log file), keeps the last lines to name a
    failed task's exception, and feeds each line to a ``Progress`` view when there is one."""

    _ERROR = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")

    def __init__(self, target: Any, keep: int = 400, progress: Progress | None = None) -> None:
        self.target, self.partial, self.progress = target, "", progress
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)

    def write(self, text: str) -> int:
        self.target.write(text if self.progress is None else _ANSI.sub("", text))  # a log file: no colours
        *complete, self.partial = (self.partial + text).split("\n")
        for line in complete:
            clean = _ANSI.sub("", line)
            self.lines.append(clean)
            if self.progress is not None:
                self.progress.feed(clean)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def last_error(self) -> str:
        """``Kind: message`` of the last exception line printed, or ""."""
        for line in reversed(self.lines):
            match = self._ERROR.match(line.strip())
            if match:
                return f"{match.group(1)}: {match.group(2)}"
        return ""


@dataclass
class _LocalRun:
    run_dir: Path | None
    seconds: float
    error: str  # "" when every task succeeded
    artifacts: dict[str, str]  # label -> path, for those that exist


def _run_locally(
    pipeline: Any,
    pipeline_name: str,
    pipeline_root: str | Path,
    artifacts: dict[str, tuple[str, str]],
    log_path: str | Path | None = None,
    **arguments: Any,
) -> _LocalRun:
    """Run ``pipeline`` with the KFP local runner under ``pipeline_root``; never raises for a failed
    task (the error names the task and, from its output, its exception). With ``log_path`` the
    terminal shows one progress line per task and the full KFP output goes to that file."""
    import kfp.local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.glob(f"{pipeline_name}-*"))
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    # kfp warns that our custom base image is not used locally: intended - the pipeline
    # environment is built from the same lock file as that image.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
    start, error = time.perf_counter(), ""
    with contextlib.ExitStack() as stack:
        if log_path is None:
            tail = _Tail(sys.stdout)
        else:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(open(log_path, "w"))  # closed by the stack
            tail = _Tail(log_file, progress=Progress(sys.stdout, root, pipeline_name, before))
            print(f"running {pipeline_name} locally (full output: {log_path})", flush=True)
        try:
            with contextlib.redirect_stdout(tail):  # kfp.local prints each task's output here
                pipeline(**arguments)
        except RuntimeError as e:  # kfp.local's way of saying a task failed
            error = f"{_ANSI.sub('', str(e))} {tail.last_error()}".strip()
    seconds = time.perf_counter() - start
    runs = [p for p in root.glob(f"{pipeline_name}-*") if p.is_dir() and p not in before]
    run_dir = max(runs, key=lambda p: p.stat().st_mtime) if runs else None
    return _LocalRun(run_dir, seconds, error, _artifacts_in(run_dir, artifacts) if run_dir else {})


def _artifacts_in(run_dir: Path, artifacts: dict[str, tuple[str, str]]) -> dict[str, str]:
    """label -> path of the artifacts that exist under a run directory (``<task>/<output>``)."""
    return {
        label: str(run_dir / task / output)
        for label, (task, output) in artifacts.items()
        if (run_dir / task / output).exists()
    }


def run_local(
    data_uri: str,
    feature_spec_uri: str,
    pipeline_root: str | Path,
    log_path: str | Path | None = None,
    **params: Any,
) -> RunSummary:
    """Run the whole pipeline locally; never raises for a failed run (the summary says why).
    ``log_path``: a progress line per step on the terminal, the full output in that file."""
    from credit_risk.pipelines.training_pipeline import PIPELINE_NAME, training_pipeline

    run = _run_locally(
        training_pipeline,
        PIPELINE_NAME,
        pipeline_root,
        ARTIFACTS,
        log_path,
        data_uri=data_uri,
        feature_spec_uri=feature_spec_uri,
        **params,
    )
    return _summary(run)


def summarize_run(run_dir: str | Path) -> RunSummary:
    """The summary of a training run that already finished on this machine, read back from its
    directory (``<pipeline_root>/credit-risk-training-<timestamp>``): what the notebook shows
    when it is given a run instead of running one."""
    path = Path(run_dir)
    found = _artifacts_in(path, ARTIFACTS) if path.is_dir() else {}
    if "approval" not in found:
        raise ConfigError(
            f"{run_dir} is not a finished training run: expected {path / 'evaluate' / 'approval'} "
            "(pass the run directory under the pipeline root, or run the pipeline)"
        )
    return _summary(_LocalRun(path, 0.0, "", found))


def _summary(run: _LocalRun) -> RunSummary:
    artifacts = run.artifacts
    summary = RunSummary(
        succeeded=not run.error,
        run_dir=str(run.run_dir or ""),
        seconds=run.seconds,
        error=run.error,
        artifacts=artifacts,
    )
    if run.error:
        summary.failed_task = next((task for task, _ in ARTIFACTS.values() if f"'{task}'" in run.error), "")
    if "anomalies" in artifacts:
        summary.anomalies = json.loads(Path(artifacts["anomalies"]).read_text()).get("anomalies", [])
    if "approval" in artifacts:
        summary.decision = Decision.from_json(Path(artifacts["approval"]).read_text())
    if "deployment" in artifacts:
        summary.deployment = DeployRecord(**json.loads(Path(artifacts["deployment"]).read_text()))
    return summary


def format_summary(summary: RunSummary) -> str:
    lines = [
        "",
        "=" * 72,
        f"credit-risk pipeline run: {summary.verdict.upper()} in {summary.seconds:.0f}s",
        f"run directory: {summary.run_dir}",
    ]
    if not summary.succeeded:
        lines.append(f"FAILED at step '{summary.failed_task or '?'}': {summary.error}")
    if summary.anomalies:
        lines.append(f"validation: FAILED with {len(summary.anomalies)} anomalies - no model was trained")
        lines += [f"  - column {a['column']!r}: {a['description']}" for a in summary.anomalies]
    elif "statistics" in summary.artifacts:
        lines.append("validation: passed (no anomalies)")
    d = summary.decision
    if d:
        m = d.metrics
        ci = d.intervals.get("auc", [float("nan")] * 2)
        lines.append(
            f"held-out metrics: AUC {m.get('auc', float('nan')):.4f} (95% CI {ci[0]:.3f}-{ci[1]:.3f})  "
            f"KS {m.get('ks', float('nan')):.4f}  Brier {m.get('brier', float('nan')):.4f}  "
            f"ECE {m.get('ece', float('nan')):.4f}  (rows {int(m.get('rows', 0))})"
        )
        lines.append(f"verdict: {d.decision.upper()}")
        lines += [f"  - {c.describe()}" for c in d.checks]
        lines += [f"  reason: {r}" for r in d.reasons]
    if summary.deployment:
        lines.append(f"deploy: {summary.deployment.reason}")
    if summary.artifacts:
        lines.append("artifacts:")
        width = max(len(k) for k in summary.artifacts)
        lines += [f"  {k:<{width}}  {v}" for k, v in summary.artifacts.items()]
    lines.append("=" * 72)
    return "\n".join(lines)


MONITORING_ARTIFACTS = {
    "scores": ("batch-score", "scores"),
    "report": ("monitor", "report"),
    "verdict": ("monitor", "verdict"),
    "result": ("monitor", "result"),
}


@dataclass
class MonitoringSummary:
    succeeded: bool
    run_dir: str
    seconds: float
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return str(self.result.get("verdict", "failed" if not self.succeeded else "unknown"))


def run_monitoring_local(
    model_uri: str, baseline_data_uri: str, current_data_uri: str, pipeline_root: str | Path, **params: Any
) -> MonitoringSummary:
    """Run the monitoring pipeline locally; never raises for a failed run (the summary says why)."""
    from credit_risk.pipelines.monitoring_pipeline import MONITORING_PIPELINE_NAME, monitoring_pipeline

    run = _run_locally(
        monitoring_pipeline,
        MONITORING_PIPELINE_NAME,
        pipeline_root,
        MONITORING_ARTIFACTS,
        model_uri=model_uri,
        baseline_data_uri=baseline_data_uri,
        current_data_uri=current_data_uri,
        **params,
    )
    result = json.loads(Path(run.artifacts["result"]).read_text()) if "result" in run.artifacts else {}
    return MonitoringSummary(
        not run.error, str(run.run_dir or ""), run.seconds, run.error, result, run.artifacts
    )


def format_monitoring_summary(summary: MonitoringSummary) -> str:
    lines = ["", "=" * 72, f"credit-risk monitoring run: {summary.verdict.upper()} in {summary.seconds:.0f}s"]
    lines.append(f"run directory: {summary.run_dir}")
    if summary.error:
        lines.append(f"FAILED: {summary.error}")
    r = summary.result
    if r:
        lines.append(
            f"score PSI {r['score_psi']:.4f} ({r['bands']['score']}), {r['current_rows']} current rows"
        )
        for name, value in sorted(r["feature_psi"].items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {name:<40} PSI {value:.4f} ({r['bands'][name]})")
    lines += [f"  {k:<8} {v}" for k, v in summary.artifacts.items()]
    lines.append("=" * 72)
    return "\n".join(lines)
