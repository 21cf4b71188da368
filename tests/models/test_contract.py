"""One contract over every Kairos model, as River's ``checks`` do for its estimators.

The Kairos contract (checkpoints, clones, determinism, metrics) runs on every
case of every family; then River's own estimator checks (``river.checks``):
the general ones River yields for the model, and River's dataset checks fed
the case's own samples (River's stock datasets are not orders, sales windows
or customer vectors).
"""

from __future__ import annotations

import copy
import importlib
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from river import base as river_base
from river import checks
from river.checks import clf, common

from models.base import ContractCase, OnlineModel, StateVersionError

FAMILIES = ["segmentation", "baskets", "risk", "forecasting", "anomaly", "propensity"]



def _cases() -> list[ContractCase]:
    cases: list[ContractCase] = []
    for family in FAMILIES:
        module = importlib.import_module(f"models.{family}")
        cases.extend(module.CONTRACT_CASES)
    return cases


CASES = _cases()


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> ContractCase:
    return request.param


def _learn(model: Any, x: Any, y: Any) -> None:
    """``learn_one`` as River calls it: with the target for supervised models, without for the others."""
    if getattr(model, "_supervised", True):
        model.learn_one(x, y)
    else:
        model.learn_one(x)


def _learned(case: ContractCase) -> OnlineModel:
    model = case.factory()
    for x, y in case.samples:
        _learn(model, copy.deepcopy(x), y)
    return model


def _predictions(model: OnlineModel, case: ContractCase) -> list:
    return [model.predict_one(copy.deepcopy(x)) for x in case.predict_inputs]


def _same(case: ContractCase, a: list, b: list) -> bool:
    return len(a) == len(b) and all(case.equal(p, q) for p, q in zip(a, b))


def test_every_family_has_cases() -> None:
    names = {c.name for c in CASES}
    assert len(names) == len(CASES), "contract case names must be unique"
    assert len(CASES) >= len(FAMILIES)


def test_is_an_online_model(case: ContractCase) -> None:
    assert isinstance(case.factory(), OnlineModel)


def test_predicts_before_learning(case: ContractCase) -> None:
    model = case.factory()
    for x in case.predict_inputs:
        model.predict_one(copy.deepcopy(x))


def test_learning_does_not_mutate_inputs(case: ContractCase) -> None:
    model = case.factory()
    for x, y in case.samples:
        before = copy.deepcopy(x)
        _learn(model, x, y)
        assert x == before


def test_pickles_after_learning(case: ContractCase) -> None:
    model = _learned(case)
    restored = pickle.loads(pickle.dumps(model))
    assert _same(case, _predictions(model, case), _predictions(restored, case))


def test_state_round_trips_exactly(case: ContractCase) -> None:
    model = _learned(case)
    state = model.state_dict()
    assert {"model", "version"} <= state.keys()
    wire = json.loads(json.dumps(state, allow_nan=False))  # strict JSON, as orjson writes snapshots
    restored = type(model).from_state(wire)
    assert restored.state_dict() == wire
    assert _same(case, _predictions(model, case), _predictions(restored, case))
    # Both keep learning identically after the restore.
    for x, y in case.samples[: max(1, len(case.samples) // 4)]:
        _learn(model, copy.deepcopy(x), y)
        _learn(restored, copy.deepcopy(x), y)
    assert json.loads(json.dumps(model.state_dict())) == json.loads(json.dumps(restored.state_dict()))


def test_refuses_foreign_state(case: ContractCase) -> None:
    model = _learned(case)
    state = model.state_dict()
    state["version"] = -1
    with pytest.raises(StateVersionError):
        type(model).from_state(state)


def test_clone_is_independent(case: ContractCase) -> None:
    model = _learned(case)
    fresh = case.factory()
    clone = model.clone()
    assert _same(case, _predictions(fresh, case), _predictions(clone, case))
    for x, y in case.samples:
        _learn(clone, copy.deepcopy(x), y)
    # Learning in the clone leaves the original untouched.
    assert json.dumps(model.state_dict(), sort_keys=True) == json.dumps(
        _learned(case).state_dict(), sort_keys=True
    )


def test_deterministic(case: ContractCase) -> None:
    a, b = _learned(case), _learned(case)
    assert json.dumps(a.state_dict(), sort_keys=True) == json.dumps(b.state_dict(), sort_keys=True)


def test_metrics_are_numbers(case: ContractCase) -> None:
    for value in _learned(case).metrics().values():
        assert isinstance(value, (int, float))


# -- River's estimator checks ------------------------------------------------

#: River's dataset checks that apply to Kairos models, run on each case's own samples.
SAMPLE_CHECKS: list[Callable[..., None]] = [
    common.check_learn_one,
    common.check_pickling,
    common.check_predict_one_pure,
    common.check_predict_one_before_any_learn,
    common.check_no_state_aliasing_with_input,
    common.check_clone_is_independent,
    common.check_shuffle_features_no_impact,
    common.check_bounded_memory_growth,
    clf.check_predict_proba_one,
    clf.check_predict_proba_one_binary,
    clf.check_classifier_tracks_seen_labels,
]
#: Of those, the ones River gives classifiers only.
CLASSIFIER_CHECKS = {clf.check_predict_proba_one, clf.check_predict_proba_one_binary,
                     clf.check_classifier_tracks_seen_labels}

#: River's checks that do not apply to Kairos models, and why.
NOT_APPLICABLE = {
    "check_emerging_features": "drops random input fields; a Kairos input is a validated record whose required "
    "fields (window_start, lines, customer_id, ts) never go missing (a record without them is a dead letter)",
    "check_disappearing_features": "same reason as check_emerging_features",
    "check_radically_disappearing_features": "same reason as check_emerging_features",
    "check_roc_auc": "scores an anomaly detector on River's credit-card transactions; TrafficAnomalyDetector scores "
    "per-minute traffic counts, and its detection is measured on planted incidents (kairos bench --suite anomaly)",
}


def _river_model(case: ContractCase) -> river_base.Estimator:
    model = case.factory()
    assert isinstance(model, river_base.Estimator), f"{case.name} is not a River estimator"
    return model


def test_is_a_river_estimator(case: ContractCase) -> None:
    model = case.factory()
    assert isinstance(model, river_base.Estimator)
    # The fitting River base class, not just Estimator, where River has one for the model's kind.
    fitting = (river_base.Clusterer, river_base.Regressor, river_base.Classifier, river_base.AnomalyDetector)
    plain = {"BasketCounter", "SegmentBestSellers", "RisingPairs"}  # River has no base class for these kinds
    assert isinstance(model, fitting) or type(model).__name__ in plain


def test_passes_rivers_general_checks(case: ContractCase) -> None:
    """Every check ``river.checks.yield_checks`` gives for the model that does not read River's stock datasets."""
    model = _river_model(case)
    ran = []
    for check in checks.yield_checks(model):
        if "dataset" in getattr(check, "keywords", {}):
            continue  # River's stock datasets: the same checks run on the case's samples below
        check(model.clone())
        ran.append(check.__name__)
    assert "check_clone_is_idempotent" in ran and "check_repr_roundtrips_clone" in ran


def _sample_checks_of(case: ContractCase) -> list[Callable[..., None]]:
    """The sample checks that apply to the case's model (River's classifier checks to classifiers only)."""
    classifier = isinstance(case.factory(), river_base.Classifier)
    return [check for check in SAMPLE_CHECKS if classifier or check not in CLASSIFIER_CHECKS]


@pytest.mark.parametrize(("case", "check"), [
    pytest.param(case, check, id=f"{case.name}-{check.__name__}") for case in CASES for check in _sample_checks_of(case)
])
def test_passes_rivers_dataset_checks_on_its_samples(case: ContractCase, check: Callable[..., None]) -> None:
    check(_river_model(case), dataset=[(copy.deepcopy(x), y) for x, y in case.samples])


def test_the_classifier_checks_run_on_every_classifier() -> None:
    classifiers = [case for case in CASES if isinstance(case.factory(), river_base.Classifier)]
    assert classifiers, "the risk scorer at least is a River classifier"
    assert all(CLASSIFIER_CHECKS <= set(_sample_checks_of(case)) for case in classifiers)


def test_every_river_dataset_check_runs_on_its_samples_or_says_why_not(case: ContractCase) -> None:
    """If River adds a dataset check for this kind of model, it must join SAMPLE_CHECKS or NOT_APPLICABLE."""
    model = _river_model(case)
    yielded = {check.__name__ for check in checks.yield_checks(model) if "dataset" in getattr(check, "keywords", {})}
    assert yielded <= {check.__name__ for check in SAMPLE_CHECKS} | NOT_APPLICABLE.keys()
