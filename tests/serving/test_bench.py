"""The serving bench runs end to end at a small scale (the real figures come from ``kairos bench --suite serving``)."""

from __future__ import annotations

from streams.serving.bench import run_serving_bench


def test_the_serving_bench_measures_http_lookups_next_to_a_raw_redis_ceiling(tmp_path) -> None:
    figures = run_serving_bench(rate=200.0, duration=1.0, warmup=0.2, customers=300, skus=60, connections=4,
                                workdir=tmp_path)
    assert figures["http"]["requests"] == 200 and figures["http"]["errors"] == 0
    assert set(figures["http_by_endpoint"]) == {"customer", "item_recommendations", "cart_recommendations"}
    assert figures["redis_hgetall_ceiling"]["requests"] == 200 and figures["redis_hgetall_ceiling"]["errors"] == 0
    assert 0 < figures["http"]["p50_ms"] <= figures["http"]["p99_ms"] <= figures["http"]["max_ms"]
    assert figures["api_cpu_share_of_one_core"] > 0
