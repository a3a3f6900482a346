"""Questionnaire instruments: answer validation and scoring.

Each `Instrument` is an immutable description (item scales, bands, cut-off, safety rules,
dimensions); `Instrument.score` turns a validated answer vector into a `SurveyResult`.
Answers are item scores in questionnaire order, item 1 first.

* ``phq-9`` — PHQ-9 (Kroenke, Spitzer & Williams 2001; free to use, © Pfizer): 9 items 0..3,
  total 0..27, bands minimal 0-4, mild 5-9, moderate 10-14, moderately severe 15-19, severe
  20-27. Positive screen at total >= 10 by default; Richardson et al. 2010 found >= 11 optimal
  in 13-17-year-olds, so the cut-off is a parameter. Any answer above 0 on item 9 raises
  ``self_harm_item9`` whatever the total: it needs same-day clinician assessment.
* ``phq-a`` — PHQ-A (Johnson et al. 2002): the same 9 scored items, optionally followed by the
  4 supplementary items (10: depressed most days in the past year, yes=1/no=0; 11: how
  difficult the problems made things, 0..3; 12: serious thoughts of ending your life in the
  past month, yes/no; 13: ever tried to kill yourself, yes/no). 9 or 13 answers. Item 12 yes
  raises ``suicidal_ideation_past_month``, item 13 yes ``suicide_attempt_lifetime``. The
  supplementary items never enter the total.
* ``gad-7`` — GAD-7 (Spitzer et al. 2006): 7 items 0..3, total 0..21, bands minimal 0-4,
  mild 5-9, moderate 10-14, severe 15-21, positive at >= 10.
* ``hl-student`` — the platform's own student health-literacy questionnaire. No national
  student instrument exists, so this one is provincially defined. It follows the three
  aspects of the national residents' monitoring (基本知识和理念, 健康生活方式与行为, 基本技能)
  and reuses its rule that a respondent is literate at >= 80 % of the full score, overall
  and per aspect. 25 items, full score 40:

  ===========  ========================  =====  ==========================================
  items        aspect                    score  content
  ===========  ========================  =====  ==========================================
  1-10         knowledge (知识和理念)     0..1   one correct answer each: health concepts,
                                                 infectious and chronic disease prevention,
                                                 myopia, nutrition, mental health, medicines
  11-20        lifestyle (生活方式与行为)  0..2   frequency of a healthy behaviour (never /
                                                 sometimes / usually): handwashing, tooth
                                                 brushing, breakfast, sugary drinks, outdoor
                                                 time, screen time, sleep, exercise, eye
                                                 breaks, road safety
  21-25        skills (基本技能)          0..2   wrong / partly / fully right: reading a food
                                                 label, taking a temperature, calling 120 and
                                                 first aid, judging health information,
                                                 reading a medicine leaflet
  ===========  ========================  =====  ==========================================

  Literate overall at total >= 32; per aspect at 8/10, 16/20 and 8/10.

The questionnaires' wording lives with the survey front end; this module scores item values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

RULE_VERSION = "survey-1"


class InvalidAnswers(ValueError):
    """Answers that do not fit the instrument: wrong count, or an item outside its scale."""


class UnknownInstrument(ValueError):
    """No instrument is registered under that id and version."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    """A named severity band, inclusive at both ends."""

    name: str
    low: int
    high: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyRule:
    """An answer of at least `minimum` on `item` (1-based) raises `flag`, whatever the total."""

    item: int
    minimum: int
    flag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dimension:
    """A scored part of an instrument (a health-literacy aspect); items are 1-based."""

    id: str
    title: str
    items: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyResult:
    """The scored questionnaire. Fields that an instrument does not define are None/empty."""

    instrument: str
    version: str
    total: int
    max_total: int
    band: str | None
    positive_screen: bool | None
    positive_cutoff: int | None
    safety_flags: tuple[str, ...]
    dimension_scores: tuple[tuple[str, int], ...] = ()
    dimension_literate: tuple[tuple[str, bool], ...] = ()
    literate: bool | None = None
    reference: str
    rule_version: str = RULE_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """A questionnaire: its items' score ranges and how a total is read."""

    id: str
    version: str
    title: str
    item_scales: tuple[tuple[int, int], ...]
    """(min, max) of every item, in questionnaire order, supplementary items included."""
    scored_items: int
    """The first `scored_items` items make the total; any further ones are supplementary."""
    accepted_counts: tuple[int, ...]
    dimensions: tuple[Dimension, ...] = ()
    bands: tuple[Band, ...] = ()
    positive_cutoff: int | None = None
    safety_rules: tuple[SafetyRule, ...] = ()
    literacy_percent: int | None = None
    """Literate when score * 100 >= full score * literacy_percent (integer arithmetic)."""
    reference: str

    @property
    def max_total(self) -> int:
        """The full score: the sum of the scored items' maxima."""
        return sum(high for _, high in self.item_scales[: self.scored_items])

    def check_answers(self, answers: Sequence[int]) -> None:
        """Raise `InvalidAnswers` naming the first problem: count, type or range of an item."""
        if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
            raise InvalidAnswers(f"{self.id}: answers must be a list of integers, got {type(answers).__name__}")
        if len(answers) not in self.accepted_counts:
            expected = " or ".join(str(count) for count in self.accepted_counts)
            raise InvalidAnswers(f"{self.id}: expected {expected} answers, got {len(answers)}")
        for number, (answer, (low, high)) in enumerate(zip(answers, self.item_scales, strict=False), start=1):
            # bool is an int subclass; a True in an answer list is a form bug, not a 1.
            if isinstance(answer, bool) or not isinstance(answer, int):
                raise InvalidAnswers(f"item {number}: answer {answer!r} is not an integer")
            if not low <= answer <= high:
                raise InvalidAnswers(f"item {number}: answer {answer} outside {low}..{high}")

    def score(self, answers: Sequence[int], *, positive_cutoff: int | None = None) -> SurveyResult:
        """Validate and score `answers`; `positive_cutoff` overrides the instrument's default."""
        self.check_answers(answers)
        cutoff = self.positive_cutoff if positive_cutoff is None else positive_cutoff
        if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0):
            raise ValueError(f"positive_cutoff must be a non-negative integer, got {cutoff!r}")
        if positive_cutoff is not None and self.positive_cutoff is None:
            raise ValueError(f"{self.id} has no positive screen, so no cut-off applies")
        if cutoff is not None and cutoff > self.max_total:
            raise ValueError(f"positive_cutoff {cutoff} is above {self.id}'s full score {self.max_total}")

        total = sum(answers[: self.scored_items])
        band = next((b.name for b in self.bands if b.low <= total <= b.high), None)
        flags = tuple(
            rule.flag
            for rule in self.safety_rules
            if rule.item <= len(answers) and answers[rule.item - 1] >= rule.minimum
        )

        dimension_scores: tuple[tuple[str, int], ...] = ()
        dimension_literate: tuple[tuple[str, bool], ...] = ()
        literate: bool | None = None
        if self.literacy_percent is not None:
            scores = []
            literate_by_dimension = []
            for dimension in self.dimensions:
                score = sum(answers[item - 1] for item in dimension.items)
                full = sum(self.item_scales[item - 1][1] for item in dimension.items)
                scores.append((dimension.id, score))
                literate_by_dimension.append((dimension.id, self._is_literate(score, full)))
            dimension_scores = tuple(scores)
            dimension_literate = tuple(literate_by_dimension)
            literate = self._is_literate(total, self.max_total)

        return SurveyResult(
            instrument=self.id,
            version=self.version,
            total=total,
            max_total=self.max_total,
            band=band,
            positive_screen=None if cutoff is None else total >= cutoff,
            positive_cutoff=cutoff,
            safety_flags=flags,
            dimension_scores=dimension_scores,
            dimension_literate=dimension_literate,
            literate=literate,
            reference=self.reference,
        )

    def _is_literate(self, score: int, full: int) -> bool:
        assert self.literacy_percent is not None  # only called for literacy instruments
        return score * 100 >= full * self.literacy_percent


_PHQ_BANDS = (
    Band(name="minimal", low=0, high=4),
    Band(name="mild", low=5, high=9),
    Band(name="moderate", low=10, high=14),
    Band(name="moderately_severe", low=15, high=19),
    Band(name="severe", low=20, high=27),
)
_GAD_BANDS = (
    Band(name="minimal", low=0, high=4),
    Band(name="mild", low=5, high=9),
    Band(name="moderate", low=10, high=14),
    Band(name="severe", low=15, high=21),
)
_ITEM9 = SafetyRule(item=9, minimum=1, flag="self_harm_item9")

PHQ_9 = Instrument(
    id="phq-9",
    version="1",
    title="Patient Health Questionnaire-9",
    item_scales=((0, 3),) * 9,
    scored_items=9,
    accepted_counts=(9,),
    bands=_PHQ_BANDS,
    positive_cutoff=10,
    safety_rules=(_ITEM9,),
    reference="PHQ-9 (Kroenke, Spitzer & Williams 2001)",
)

PHQ_A = Instrument(
    id="phq-a",
    version="1",
    title="PHQ-9 modified for adolescents (PHQ-A)",
    item_scales=((0, 3),) * 9 + ((0, 1), (0, 3), (0, 1), (0, 1)),
    scored_items=9,
    accepted_counts=(9, 13),
    bands=_PHQ_BANDS,
    positive_cutoff=10,
    safety_rules=(
        _ITEM9,
        SafetyRule(item=12, minimum=1, flag="suicidal_ideation_past_month"),
        SafetyRule(item=13, minimum=1, flag="suicide_attempt_lifetime"),
    ),
    reference="PHQ-A (Johnson et al. 2002)",
)

GAD_7 = Instrument(
    id="gad-7",
    version="1",
    title="Generalized Anxiety Disorder-7",
    item_scales=((0, 3),) * 7,
    scored_items=7,
    accepted_counts=(7,),
    bands=_GAD_BANDS,
    positive_cutoff=10,
    reference="GAD-7 (Spitzer et al. 2006)",
)

HL_STUDENT = Instrument(
    id="hl-student",
    version="1",
    title="Student health literacy questionnaire (schoolhealth, provincial)",
    item_scales=((0, 1),) * 10 + ((0, 2),) * 15,
    scored_items=25,
    accepted_counts=(25,),
    dimensions=(
        Dimension(id="knowledge", title="基本知识和理念", items=tuple(range(1, 11))),
        Dimension(id="lifestyle", title="健康生活方式与行为", items=tuple(range(11, 21))),
        Dimension(id="skills", title="基本技能", items=tuple(range(21, 26))),
    ),
    literacy_percent=80,
    reference="schoolhealth hl-student v1; 80% rule of the national health literacy monitoring",
)

INSTRUMENTS: Mapping[tuple[str, str], Instrument] = MappingProxyType(
    {(instrument.id, instrument.version): instrument for instrument in (PHQ_9, PHQ_A, GAD_7, HL_STUDENT)}
)


def get_instrument(instrument_id: str, version: str = "1") -> Instrument:
    """The registered instrument; `UnknownInstrument` names the ones that exist."""
    try:
        return INSTRUMENTS[instrument_id, version]
    except (KeyError, TypeError):
        known = ", ".join(f"{id_}@{ver}" for id_, ver in INSTRUMENTS)
        raise UnknownInstrument(f"unknown instrument {instrument_id!r} version {version!r} (known: {known})") from None
