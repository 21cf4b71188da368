"""One contract over every Kairos model, as River's ``checks`` do for its estimators."""

from __future__ import annotations

import copy
import importlib
import json
import pickle

import pytest

from models.base import ContractCase, OnlineModel, StateVersionError

FAMILIES = ["segmentation", "baskets", "risk", "forecasting"]


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


def _learned(case: ContractCase) -> OnlineModel:
    model = case.factory()
    for x, y in case.samples:
        model.learn_one(copy.deepcopy(x), y)
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
        model.learn_one(x, y)
        assert x == before


def test_pickles_after_learning(case: ContractCase) -> None:
    model = _learned(case)
    restored = pickle.loads(pickle.dumps(model))
    assert _same(case, _predictions(model, case), _predictions(restored, case))


def test_state_round_trips_exactly(case: ContractCase) -> None:
    model = _learned(case)
    state = model.state_dict()
    assert {"model", "version"} <= state.keys()
    wire = json.loads(json.dumps(state))
    restored = type(model).from_state(wire)
    assert restored.state_dict() == wire
    assert _same(case, _predictions(model, case), _predictions(restored, case))
    # Both keep learning identically after the restore.
    for x, y in case.samples[: max(1, len(case.samples) // 4)]:
        model.learn_one(copy.deepcopy(x), y)
        restored.learn_one(copy.deepcopy(x), y)
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
        clone.learn_one(copy.deepcopy(x), y)
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
