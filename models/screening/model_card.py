"""The model card of a trained screening model (Mitchell et al. 2019): JSON and Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Final

from models.screening.labels import TaskName
from models.screening.metrics import BinaryMetrics, CalibrationBin, SubgroupMetrics

INTENDED_USE: Final = (
    "Prioritising review: ranks students so that a school doctor or counsellor looks at those "
    "most likely to screen positive next time first. It is not a diagnosis, must not be shown to "
    "students or parents as a result, and must not decide anything about a student on its own."
)

MODEL_CARD_SECTIONS: Final[tuple[str, ...]] = (
    "Intended use",
    "Label",
    "Data",
    "Features",
    "Model",
    "Metrics",
    "Comparison with the true risk",
    "Calibration",
    "Subgroups",
    "Limitations",
)


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCard:
    """What a trained model is for, what it was trained on and how well it did (Mitchell et al. 2019)."""

    name: TaskName
    version: str
    title: str
    label: str
    created_at: str
    algorithm: str
    calibration_method: str
    features: tuple[str, ...]
    train_years: tuple[int, ...]
    test_year: int
    train: BinaryMetrics
    test: BinaryMetrics
    calibration: tuple[CalibrationBin, ...]
    subgroups: tuple[SubgroupMetrics, ...]
    true_risk: BinaryMetrics | None = None
    """The generator's true probabilities on the test rows that have one (synthetic data only)."""
    model_on_true_risk_rows: BinaryMetrics | None = None
    """This model on exactly the rows of `true_risk`, so the two AUCs compare like with like."""
    sha256: str = ""
    intended_use: str = INTENDED_USE
    limitations: tuple[str, ...] = field(default_factory=tuple)
    label_sources: Mapping[str, int] = field(default_factory=dict)
    """Training and test samples by where their label came from (screening, counselling outcome)."""

    @property
    def auc_gap(self) -> float | None:
        """True-risk AUC minus model AUC: how much ranking the model leaves on the table."""
        model = self.model_on_true_risk_rows
        if self.true_risk is None or self.true_risk.roc_auc is None or model is None or model.roc_auc is None:
            return None
        return self.true_risk.roc_auc - model.roc_auc

    def as_dict(self) -> dict[str, object]:
        """The card as JSON-ready values."""
        result = asdict(self)
        result["auc_gap"] = self.auc_gap
        return result

    def to_json(self) -> str:
        """The card as indented JSON (NaN written as null)."""
        return json.dumps(_no_nan(self.as_dict()), indent=2, ensure_ascii=False, sort_keys=True)

    def _label_sources_line(self) -> str:
        counts = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in sorted(self.label_sources.items()))
        return f"Label sources (train and test samples): {counts}."

    def to_markdown(self) -> str:
        """The card as a Markdown document with every section in `MODEL_CARD_SECTIONS`."""
        t = self.test
        lines = [
            f"# Model card: {self.title}",
            "",
            f"Model `{self.name}`, version `{self.version}`, trained {self.created_at}.",
            f"Artifact sha256: `{self.sha256 or 'not yet written'}`.",
            "",
            "## Intended use",
            "",
            self.intended_use,
            "",
            "## Label",
            "",
            self.label,
            "",
            *([self._label_sources_line(), ""] if self.label_sources else []),
            "## Data",
            "",
            "Samples are students at the end of a school year, with features from the archive up to then.",
            f"Time-based split: trained on origin years {', '.join(map(str, self.train_years))} "
            f"({self.train.n} samples, {self.train.positives} positive); tested on {self.test_year} "
            f"({t.n} samples, {t.positives} positive, prevalence {_number(t.prevalence)}).",
            "",
            "## Features",
            "",
            ", ".join(f"`{f}`" for f in self.features),
            "",
            "## Model",
            "",
            f"{self.algorithm}; probabilities calibrated with {self.calibration_method}.",
            "",
            "## Metrics",
            "",
            "| set | n | positives | ROC AUC | PR AUC | Brier |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {m.n} | {m.positives} | {_number(m.roc_auc)} | {_number(m.pr_auc)} | {_number(m.brier)} |"
                for name, m in (("train", self.train), (f"test {self.test_year}", t))
            ),
            "",
            f"PR AUC at chance is the prevalence ({_number(t.prevalence)}).",
            "",
            "## Comparison with the true risk",
            "",
        ]
        if self.true_risk is None or self.model_on_true_risk_rows is None:
            lines.append("No true risk is known for this archive (it is not the synthetic province).")
        else:
            r, m = self.true_risk, self.model_on_true_risk_rows
            lines += [
                "On the synthetic province the generator's true probabilities are known: the best ranking any "
                f"model could achieve. On the same test rows ({r.n} of {t.n} have a true risk):",
                "",
                "| scorer | ROC AUC | PR AUC | Brier |",
                "|---|---|---|---|",
                f"| true risk | {_number(r.roc_auc)} | {_number(r.pr_auc)} | {_number(r.brier)} |",
                f"| this model | {_number(m.roc_auc)} | {_number(m.pr_auc)} | {_number(m.brier)} |",
                "",
                f"AUC gap (true risk minus model): **{_number(self.auc_gap)}**.",
                "",
                "The true risk is computed from latent quantities no archive holds (near work and outdoor "
                "time, the underlying mood state, the shocks of the year), so part of the gap is out of "
                "reach of any model trained on screenings.",
            ]
        lines += [
            "",
            "## Calibration",
            "",
            "Test set, quantile bins of the predicted probability.",
            "",
            "| predicted range | n | mean predicted | observed rate |",
            "|---|---|---|---|",
            *(
                f"| {b.lower:.3f}-{b.upper:.3f} | {b.n} | {b.mean_predicted:.3f} | {b.observed_rate:.3f} |"
                for b in self.calibration
            ),
            "",
            "## Subgroups",
            "",
            "Test set. AUC is n/a where a group has only one outcome.",
            "",
            "| group | value | n | positives | ROC AUC | PR AUC | Brier |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {s.group} | {s.value} | {s.metrics.n} | {s.metrics.positives} | {_number(s.metrics.roc_auc)} "
                f"| {_number(s.metrics.pr_auc)} | {_number(s.metrics.brier)} |"
                for s in self.subgroups
            ),
            "",
            "## Limitations",
            "",
            *(f"- {item}" for item in self.limitations),
            "",
        ]
        return "\n".join(lines)


def _no_nan(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value
