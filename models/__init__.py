"""Kairos online models: River estimators on River parts (and numpy), no Kafka, no Redis, no asyncio.

Start reading at :mod:`models.base`, the contract every model honours (a
``river.base`` estimator: ``learn_one`` / ``predict_one`` on plain dicts,
River's ``clone`` and parameters; ``state_dict`` / ``from_state`` checkpoints
with a version tag; ``metrics``). Each module's docstring says which River
parts it uses and why any part is hand-written. Each family lives in its own
package, one estimator per file:

- :mod:`models.segmentation` — customer features and the live segmenter.
- :mod:`models.baskets` — frequent itemsets, rules and recommendations.
- :mod:`models.risk` — payment risk features, scorer, analyst rules.
- :mod:`models.forecasting` — sales windows, forecasters, surge detection.

Every family package exports ``CONTRACT_CASES``; ``tests/models/test_contract.py``
runs the shared contract and River's estimator checks (``river.checks``) over all of them.
"""
