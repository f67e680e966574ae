"""The learning loop, simulated end to end on synthetic data through the real services.

Each round (``run_simulation``):

1. **Parents sign up** (a verified e-mail address; a share of them turn training consent on
   through ``accounts.services.user_training_consent_update``), add a baby
   (``babies.services.baby_create``) and upload its generated scans with their gestational weeks
   (``babies.services.scan_create``, the upload path: decode, normalise, hash, markers).
2. **Predictions** with the active model (``predictions.services.prediction_create``), when one
   is active.
3. **Outcomes**: a share of parents never answer; the others answer the outcome e-mail's link
   (``_answer_outcome_link``, the one call of that service) or, when no prediction was made
   (no active model yet, or only early scans), confirm the born baby on the dashboard
   (``babies.services.baby_confirm_sex``). A share of the answers is **wrong**: the parent states
   the other sex than the true one.
4. **Curation**: the active model scores every label (``curation.services.label_quality_score``);
   a simulated reviewer works down the review queue in its real order
   (``curation.selectors.review_queue``, likely label errors first; filtered to consenting
   parents as the admin's consent filter does, since no other scan can train a model),
   re-reading the queue's head after each decision as "save and review next" does. A label
   belongs to a baby, so the reviewer decides for the head scan's **baby**, looking at all its
   scans: a wrong label is corrected (``baby_confirm_sex`` with ``source="staff"``), a right
   one is marked checked (``baby_label_mark_checked``, every scan of the baby); the baby's
   scans are accepted. One entry is one baby, so a baby's three scans are not three chances.

   The budget ``k`` is ``review_share`` of the **queue**: the consenting parents' labelled
   babies whose label no reviewer has decided on yet (the entries a staff member would work
   through, old rounds' labels included). Recall at ``k`` is the share of the wrong labels in
   that queue the ``k`` decisions corrected, precision at ``k`` the share of the ``k`` babies
   that were wrong, both counted in babies. Every other pending scan is then accepted without a
   label check (``scans_review_bulk``): the routine quality review, and synthetic scans have no
   quality problems.
5. **Freeze** a training set (``curation.services.training_set_create``: consent, review state,
   label, near-duplicates kept in one split), **train** on it with ``manage.py train_model
   --training-set`` (the real pipeline, measured on the fixed evaluation set), and **activate**
   it only through the gate (``predictions.services.model_version_activate``).

The simulation knows each baby's true sex (the generator's), and only it: the rows hold what
parents and staff said. From that it counts wrong labels before and after review, the review's
recall and precision at ``k``, and checks that no parent without consent is in any frozen set.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from django.db.models import Q
from django.utils import timezone

SIMULATION_EMAIL_DOMAIN = "simulation.instagender.local"
REVIEWER_EMAIL = f"reviewer@{SIMULATION_EMAIL_DOMAIN}"
# The generator's stream for the simulation's babies (never the evaluation set's "eval" stream).
BABY_STREAM = "loop"


@dataclass
class SimulationSettings:
    """Everything a run depends on; stored with its results."""

    # New babies (one per parent) arriving in each round; the number of rounds is its length.
    # Round 0's 154 leave about 100 consenting, answered babies: the first model's training set.
    new_babies: list[int] = field(default_factory=lambda: [154, 140, 280, 560, 1120, 1120])
    wrong_share: float = 0.10
    no_answer_share: float = 0.10
    consent_share: float = 0.80
    # Babies the reviewer decides on per round, as a share of the label queue's babies.
    review_share: float = 0.10
    # 0-based index of a round whose answers are wrong at ``flood_wrong_share`` (None: no flood).
    flood_round: int | None = None
    flood_wrong_share: float = 0.40
    seed: int = 15
    scans_per_baby: int = 3
    # Babies whose scans' dHashes are this close share a split when a set is frozen. The
    # product's default (2) chains nearly every synthetic baby into one unit at a few hundred
    # babies (the generator's fans on black differ by 0-2 bits), so the loop uses exact matches.
    split_duplicate_distance: int = 0
    # Passed to ``manage.py train_model`` (the demo recipe by default).
    epochs: int = 10
    batch_size: int = 64
    image_size: int | None = None
    learning_rate: float = 2e-3
    patience: int = 4
    max_minutes: float | None = 8.0

    def wrong_share_in(self, round_index: int) -> float:
        return self.flood_wrong_share if round_index == self.flood_round else self.wrong_share


@dataclass
class RoundResult:
    round: int
    new_babies: int
    wrong_share: float
    answers: int
    answers_by_email: int
    answers_on_dashboard: int
    predictions: int
    training_set: int | None = None
    training_babies: int = 0
    training_scans: int = 0
    wrong_in_set_without_review: int = 0
    wrong_in_set: int = 0
    # The frozen set's own estimate of the share of wrong answers among its parents' labels new to
    # the scoring model (data card ``label_errors``; what the gate's rule 4 reads), if made.
    estimated_wrong_answers: float | None = None
    estimated_wrong_answers_lower: float | None = None
    estimated_on_babies: int = 0
    items_without_consent: int = 0
    # Babies in the label queue when the review starts (consenting, labelled, not yet decided).
    queue_babies: int = 0
    review_budget: int = 0
    reviewed: int = 0
    wrong_before_review: int = 0
    wrong_found: int = 0
    recall_at_k: float | None = None
    precision_at_k: float | None = None
    model_version: int | None = None
    accuracy: float | None = None
    accuracy_ci95: list | None = None
    ece: float | None = None
    ece_ci95: list | None = None
    evaluation_babies: int | None = None
    activated: bool = False
    gate_reason: str = ""
    active_version: int | None = None
    seconds: float = 0.0


@dataclass
class SimulationResult:
    settings: SimulationSettings
    rounds: list[RoundResult]
    bayes_ceiling_per_baby: float | None
    evaluation_set: dict
    seconds: float
    # baby pk -> true sex, for tests and the curious.
    truth: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "settings": asdict(self.settings),
                "rounds": [asdict(row) for row in self.rounds],
                "bayes_ceiling_per_baby": self.bayes_ceiling_per_baby,
                "evaluation_set": self.evaluation_set,
                "seconds": round(self.seconds, 1),
            },
            indent=2,
        )


def live_data_description() -> str | None:
    """What in the configured database is not the simulation's own (``None``: nothing).

    The simulation creates parents, babies, reviews and model versions and switches models on:
    against live data that would be a disaster, so the command refuses unless told otherwise.
    """
    from django.contrib.auth import get_user_model

    from babies.models import Baby
    from predictions.models import ModelVersion

    found = []
    babies = Baby.all_objects.filter(is_synthetic=False).count()
    if babies:
        found.append(f"{babies} babies that are not synthetic")
    users = get_user_model().objects.exclude(email__iendswith=f"@{SIMULATION_EMAIL_DOMAIN}").count()
    if users:
        found.append(f"{users} users outside @{SIMULATION_EMAIL_DOMAIN}")
    versions = ModelVersion.objects.filter(is_synthetic=False).count()
    if versions:
        found.append(f"{versions} model versions trained on real scans")
    return "; ".join(found) or None


class _Loop:
    def __init__(self, settings: SimulationSettings, *, log: Callable[[str], None], training_log):
        from django.contrib.auth import get_user_model

        self.settings = settings
        self.log = log
        self.training_log = training_log
        self.truth: dict[int, str] = {}  # baby pk -> the generator's sex
        self.told: dict[int, str] = {}  # baby pk -> what the parent said
        self.decided: set[int] = set()  # babies whose label the reviewer corrected or checked
        self.next_index = 0
        User = get_user_model()
        self.reviewer = User.objects.filter(email=REVIEWER_EMAIL).first() or User.objects.create_user(
            email=REVIEWER_EMAIL, password=None, is_staff=True
        )

    def rng(self, round_index: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.settings.seed, round_index, purpose]))

    # --- 1. parents, babies, scans
    def parent_signs_up(self, round_index: int, number: int, *, consents: bool):
        from allauth.account.models import EmailAddress
        from django.contrib.auth import get_user_model

        from accounts.services import user_training_consent_update

        email = f"parent-{round_index}-{number}@{SIMULATION_EMAIL_DOMAIN}"
        user = get_user_model().objects.create_user(email=email, password=None)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        if consents:
            user_training_consent_update(user=user, allows_training_use=True)
        return user

    def baby_arrives(self, parent, *, born: bool):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from babies.services import baby_create, scan_create
        from ml.synthetic import SyntheticConfig, generate_baby

        scans = generate_baby(
            seed=self.settings.seed,
            split=BABY_STREAM,
            index=self.next_index,
            scans_per_baby=self.settings.scans_per_baby,
            config=SyntheticConfig(),
        )
        self.next_index += 1
        today = timezone.localdate()
        week = scans[0].gestational_week
        baby = baby_create(
            owner=parent,
            due_date=today + datetime.timedelta(weeks=40 - week),
            birth_date=today - datetime.timedelta(days=10) if born else None,
            is_synthetic=True,
        )
        for scan in scans:
            upload = SimpleUploadedFile(f"{scan.baby_key}_{scan.scan_index}.jpg", scan.jpeg, "image/jpeg")
            scan_create(baby=baby, uploaded_file=upload, gestational_week=scan.gestational_week)
        self.truth[baby.pk] = scans[0].sex
        return baby

    # --- 3. outcomes
    def answer(self, baby, prediction, *, told_sex: str) -> str:
        from babies.models import LabelSource
        from babies.services import baby_confirm_sex, baby_update

        self.told[baby.pk] = told_sex
        if prediction is not None:
            _answer_outcome_link(baby=baby, prediction=prediction, sex=told_sex)
            return "email"
        if not baby.is_born:
            baby_update(baby=baby, birth_date=timezone.localdate() - datetime.timedelta(days=3))
        baby_confirm_sex(baby=baby, sex=told_sex, source=LabelSource.DASHBOARD)
        return "dashboard"

    # --- 4. curation
    def wrong_labelled_babies(self) -> set[int]:
        """Consenting parents' babies whose label now differs from the truth."""
        from babies.models import Baby

        rows = Baby.objects.filter(owner__allows_training_use=True).exclude(confirmed_sex="")
        return {pk for pk, sex in rows.values_list("pk", "confirmed_sex") if sex != self.truth.get(pk, sex)}

    def label_queue(self) -> set[int]:
        """The babies whose label waits for a reviewer: consenting, labelled, not yet decided on."""
        from babies.models import Baby

        labelled = Baby.objects.filter(owner__allows_training_use=True).exclude(confirmed_sex="")
        return set(labelled.values_list("pk", flat=True)) - self.decided

    def review(self, budget: int) -> tuple[int, int]:
        """The reviewer decides on ``budget`` babies, head first; returns (decided, corrected)."""
        from babies.models import LabelSource, Scan
        from babies.services import baby_confirm_sex
        from curation.models import ReviewState
        from curation.selectors import review_queue
        from curation.services import baby_label_mark_checked, scan_review_update

        checked = corrected = 0
        for _ in range(budget):
            head = (
                review_queue()
                .filter(queue_rank__lt=2, baby__owner__allows_training_use=True)
                .exclude(baby__confirmed_sex="")
                .exclude(baby_id__in=self.decided)
                .first()
            )
            if head is None:
                break
            baby = head.baby
            scans = list(Scan.objects.filter(baby=baby).order_by("id"))
            truth = self.truth.get(baby.pk)
            if truth is not None and baby.confirmed_sex != truth:
                baby_confirm_sex(baby=baby, sex=truth, source=LabelSource.STAFF, actor=self.reviewer)
                corrected += 1
            else:
                baby_label_mark_checked(baby=baby, actor=self.reviewer)
            for scan in scans:
                scan_review_update(scan=scan, reviewer=self.reviewer, state=ReviewState.ACCEPTED)
            self.decided.add(baby.pk)
            checked += 1
        return checked, corrected

    def accept_the_rest(self) -> None:
        from babies.models import Scan
        from curation.models import ReviewState
        from curation.services import scans_review_bulk

        pending = Scan.objects.filter(Q(review__isnull=True) | Q(review__state=ReviewState.PENDING))
        scans_review_bulk(scans=pending.order_by("id"), reviewer=self.reviewer, state=ReviewState.ACCEPTED)

    # --- 5. training and the gate
    def train(self, training_set, round_index: int):
        from django.core.management import call_command

        from predictions.models import ModelVersion

        options = {
            "training_set": training_set.pk,
            "name": f"Learning loop round {round_index}",
            "epochs": self.settings.epochs,
            "batch_size": self.settings.batch_size,
            "learning_rate": self.settings.learning_rate,
            "patience": self.settings.patience,
            "seed": self.settings.seed + round_index,
        }
        if self.settings.image_size:
            options["image_size"] = self.settings.image_size
        if self.settings.max_minutes:
            options["max_minutes"] = self.settings.max_minutes
        call_command("train_model", stdout=self.training_log, **options)
        return ModelVersion.objects.filter(training_set=training_set).latest("pk")

    def gate_and_activate(self, version) -> tuple[bool, str]:
        """Activate ``version`` only through the gate; the verdict's reason either way."""
        from predictions.services import ModelGateError, model_version_activate, model_version_gate

        verdict = model_version_gate(version)
        try:
            model_version_activate(model_version=version, reason="simulate_learning_loop: passed the gate")
        except ModelGateError as refused:
            return False, refused.verdict.message
        return True, _passed_reason(verdict.details)

    # --- one round
    def run_round(self, round_index: int, new_babies: int) -> RoundResult:
        from curation.models import TrainingSetItem
        from curation.services import label_quality_score, training_set_create
        from predictions.selectors import model_version_get_active
        from predictions.services import PredictionError, prediction_create

        started = time.monotonic()
        settings = self.settings
        wrong_share = settings.wrong_share_in(round_index)
        active = model_version_get_active()
        arrivals, answers = self.rng(round_index, 1), self.rng(round_index, 2)
        row = RoundResult(
            round=round_index,
            new_babies=new_babies,
            wrong_share=wrong_share,
            answers=0,
            answers_by_email=0,
            answers_on_dashboard=0,
            predictions=0,
        )
        for number in range(new_babies):
            consents = bool(arrivals.random() < settings.consent_share)
            parent = self.parent_signs_up(round_index, number, consents=consents)
            # Without a model there is nothing to predict: those babies are confirmed once born.
            baby = self.baby_arrives(parent, born=active is None)
            prediction = None
            if active is not None:
                try:
                    prediction = prediction_create(baby=baby)
                    row.predictions += 1
                except PredictionError:
                    prediction = None  # only early scans: no e-mail, the dashboard later
            never_answers, is_wrong = (
                answers.random() < settings.no_answer_share,
                answers.random() < wrong_share,
            )
            if never_answers:
                continue
            truth = self.truth[baby.pk]
            told = _other_sex(truth) if is_wrong else truth
            path = self.answer(baby, prediction, told_sex=told)
            row.answers += 1
            row.answers_by_email += path == "email"
            row.answers_on_dashboard += path == "dashboard"
        self.log(
            f"round {round_index}: {new_babies} babies arrived, {row.predictions} predictions, "
            f"{row.answers} answers ({row.answers_by_email} by e-mail link, {row.answers_on_dashboard} on "
            f"the dashboard), wrong share {wrong_share:.0%} ({time.monotonic() - started:.0f} s)"
        )

        if active is not None:
            label_quality_score()
        queue = self.label_queue()
        wrong_before = self.wrong_labelled_babies() & queue
        row.queue_babies = len(queue)
        row.wrong_before_review = len(wrong_before)
        row.review_budget = math.ceil(settings.review_share * len(queue))
        row.reviewed, _ = self.review(row.review_budget)
        row.wrong_found = len(wrong_before - self.wrong_labelled_babies())
        if row.wrong_before_review:
            row.recall_at_k = row.wrong_found / row.wrong_before_review
        if row.reviewed:
            row.precision_at_k = row.wrong_found / row.reviewed
        self.accept_the_rest()

        training_set = training_set_create(
            created_by=self.reviewer,
            note=f"simulate_learning_loop round {round_index}",
            split_seed=settings.seed + round_index,
            split_duplicate_distance=settings.split_duplicate_distance,
        )
        items = TrainingSetItem.objects.filter(training_set=training_set)
        row.training_set = training_set.pk
        row.training_babies, row.training_scans = training_set.baby_count, training_set.item_count
        row.items_without_consent = items.filter(
            Q(owner__allows_training_use=False) | Q(owner__isnull=True)
        ).count()
        labels = {int(key.removeprefix("baby-")): sex for key, sex in items.values_list("baby_key", "sex")}
        row.wrong_in_set = sum(sex != self.truth.get(pk, sex) for pk, sex in labels.items())
        row.wrong_in_set_without_review = sum(
            self.told.get(pk, self.truth.get(pk)) != self.truth.get(pk) for pk in labels
        )
        estimate = training_set.data_card.get("label_errors") or {}
        if estimate.get("estimated"):
            row.estimated_wrong_answers = estimate["rate"]
            row.estimated_wrong_answers_lower = estimate["lower_bound"]
            row.estimated_on_babies = estimate["babies"]
        self.log(
            f"round {round_index}: review decided on {row.reviewed} babies, a budget of {row.review_budget} "
            f"of {row.queue_babies} in the queue, "
            f"corrected {row.wrong_found} of {row.wrong_before_review} wrong labels; training set "
            f"{training_set.pk}: {row.training_babies} babies, {row.training_scans} scans, "
            f"{row.wrong_in_set} wrong labels ({row.wrong_in_set_without_review} without review)"
        )

        version = self.train(training_set, round_index)
        row.model_version = version.pk
        baby = version.measured.headline
        row.accuracy, row.accuracy_ci95 = baby.get("accuracy"), baby.get("accuracy_ci95")
        row.ece, row.ece_ci95 = baby.get("ece"), baby.get("ece_ci95")
        row.evaluation_babies = baby.get("count")
        row.activated, row.gate_reason = self.gate_and_activate(version)
        current = model_version_get_active()
        row.active_version = current.pk if current else None
        row.seconds = round(time.monotonic() - started, 1)
        self.log(
            f"round {round_index}: version #{version.pk} per-baby accuracy {_percent(row.accuracy)} "
            f"{'ACTIVATED' if row.activated else 'REFUSED'}: {row.gate_reason} ({row.seconds:.0f} s)"
        )
        return row


def _answer_outcome_link(*, baby, prediction, sex: str) -> None:
    """A parent answers the outcome e-mail's "was it right?" link, stating ``sex``.

    The one place the simulation calls the outcome service, so a change of its signature is
    adapted here alone.
    """
    from predictions.services import outcome_answer_record

    outcome_answer_record(
        baby=baby, prediction=prediction, prediction_was_right=prediction.predicted_sex == sex
    )


def _other_sex(sex: str) -> str:
    return "female" if sex == "male" else "male"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _passed_reason(details: dict) -> str:
    """Why the gate let a version through, in the figures it judged."""
    reason = f"lower 95% bound {details.get('accuracy_lower_bound', 0):.1%} > 60%"
    paired = details.get("paired")
    if paired:
        reason += (
            f"; vs live: only it right on {paired['candidate_only_right']}, only the live one on "
            f"{paired['live_only_right']} (McNemar p(worse) = {paired['p_value_worse']:.3g})"
        )
    labels = details.get("training_labels")
    if labels:
        reason += (
            f"; wrong answers in its set estimated {labels['estimated_wrong_share']:.0%} "
            f"(lower bound {labels['lower_bound']:.0%} ≤ {labels['max_wrong_share']:.0%})"
        )
    calibration = details.get("calibration") or {}
    if calibration.get("compared"):
        reason += (
            f"; per-baby ECE {calibration['candidate_ece']:.3f} vs live {calibration['live_ece']:.3f} "
            f"(increase lower bound {calibration['ece_increase_lower_bound']:+.3f} ≤ "
            f"{calibration['max_ece_increase']:.2f})"
        )
    return reason


def run_simulation(
    settings: SimulationSettings,
    *,
    output_dir: Path,
    log: Callable[[str], None] = print,
    training_log=None,
) -> SimulationResult:
    """Run every round; write ``table.md``, ``results.json`` and ``learning_curve.png``."""
    import io

    from curation.learning_curve import evaluation_bayes_ceiling
    from predictions.evaluation_set import evaluation_set_identity

    started = time.monotonic()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    loop = _Loop(settings, log=log, training_log=training_log or io.StringIO())
    rows = []
    identity = evaluation_set_identity()
    ceiling = evaluation_bayes_ceiling({"set": identity})
    for round_index, new_babies in enumerate(settings.new_babies):
        rows.append(loop.run_round(round_index, new_babies))
        result = SimulationResult(
            settings=settings,
            rounds=rows,
            bayes_ceiling_per_baby=ceiling,
            evaluation_set={key: identity[key] for key in ("name", "seed", "babies", "digest")},
            seconds=time.monotonic() - started,
            truth=loop.truth,
        )
        # Written after every round, so a long run can be read while it goes on.
        (output_dir / "results.json").write_text(result.to_json())
        (output_dir / "table.md").write_text(result_table(result))
    write_learning_curve_png(result, output_dir / "learning_curve.png")
    return result


def _interval(values, *, percent: bool) -> str:
    if not values or None in values:
        return ""
    if percent:
        return f" ({values[0]:.1%}–{values[1]:.1%})"
    return f" ({values[0]:.3f}–{values[1]:.3f})"


def _estimate(row: RoundResult) -> str:
    if row.estimated_wrong_answers is None:
        return ""
    return f" (set's estimate {row.estimated_wrong_answers:.0%} of {row.estimated_on_babies} new)"


def result_table(result: SimulationResult) -> str:
    """The per-round table (Markdown)."""
    lines = [
        "| round | new babies | wrong answers (the set's own estimate) | training set (babies / scans) | "
        "wrong labels in set: without review → after | review: k babies of the queue | "
        "wrong labels found | recall@k | precision@k | per-baby accuracy (95% CI) | "
        "per-baby ECE (95% CI) | gate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result.rounds:
        gate = ("activated" if row.activated else "refused") + f": {row.gate_reason}"
        lines.append(
            f"| {row.round} | {row.new_babies} | {row.wrong_share:.0%}{_estimate(row)} | "
            f"{row.training_babies} / {row.training_scans} | "
            f"{row.wrong_in_set_without_review} → {row.wrong_in_set} | "
            f"{row.reviewed} of {row.queue_babies} | {row.wrong_found} of {row.wrong_before_review} | "
            f"{_percent(row.recall_at_k)} | {_percent(row.precision_at_k)} | {_percent(row.accuracy)}"
            f"{_interval(row.accuracy_ci95, percent=True)} | "
            f"{'n/a' if row.ece is None else f'{row.ece:.3f}'}{_interval(row.ece_ci95, percent=False)} | "
            f"{gate.replace('|', '/')} |"
        )
    ceiling = result.bayes_ceiling_per_baby
    identity = result.evaluation_set
    lines.append("")
    lines.append(
        f"Evaluated on the {identity['name']} (seed {identity['seed']}, {identity['babies']} babies); "
        f"per-baby Bayes ceiling {_percent(ceiling)}. {result.seconds:.0f} s in all."
    )
    return "\n".join(lines) + "\n"


def write_learning_curve_png(result: SimulationResult, path: Path) -> Path:
    """Per-baby accuracy (with its interval) against the training set's babies, and the ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in result.rounds if row.accuracy is not None]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for activated, marker, label in ((True, "o", "activated"), (False, "x", "refused by the gate")):
        chosen = [row for row in rows if row.activated == activated]
        if not chosen:
            continue
        sizes = [row.training_babies for row in chosen]
        accuracy = [row.accuracy for row in chosen]
        low = [row.accuracy - (row.accuracy_ci95 or [row.accuracy] * 2)[0] for row in chosen]
        high = [(row.accuracy_ci95 or [row.accuracy] * 2)[1] - row.accuracy for row in chosen]
        axes.errorbar(sizes, accuracy, yerr=[low, high], fmt=marker, capsize=3, label=label)
    for row in rows:
        axes.annotate(
            f"r{row.round}", (row.training_babies, row.accuracy), textcoords="offset points", xytext=(5, -12)
        )
    if result.bayes_ceiling_per_baby:
        axes.axhline(
            result.bayes_ceiling_per_baby, linestyle="--", color="grey", label="per-baby Bayes ceiling"
        )
    axes.set_xscale("log")
    axes.set_xlabel("training set (babies, consenting and labelled; train + val + test)")
    axes.set_ylabel("per-baby accuracy on the evaluation set")
    axes.set_title("Learning loop on synthetic data")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
