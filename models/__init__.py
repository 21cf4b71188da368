"""Kairos online models: pure Python on numpy (not River yet: an open issue), no Kafka, no Redis, no asyncio.

Start reading at :mod:`models.base`, the contract every model honours
(``learn_one`` / ``predict_one`` on plain dicts, ``state_dict`` / ``from_state``
checkpoints with a version tag, ``clone``, ``metrics``). Each family lives in
its own package, one estimator per file:

- :mod:`models.segmentation` — customer features and the live segmenter.
- :mod:`models.baskets` — frequent itemsets, rules and recommendations.
- :mod:`models.risk` — payment risk features, scorer, analyst rules.
- :mod:`models.forecasting` — sales windows, forecasters, surge detection.

Every family package exports ``CONTRACT_CASES``; ``tests/models/test_contract.py``
runs the shared contract over all of them.
"""
