"""A workload folder (``kairos simulate --out``) read back as the events ``kairos bench --peer`` loads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from streams.tools.peers.workload import read_workload
from streams.tools.simulate import write_jsonl
from streams.tools.simulation import ShopSimulator, SimulatorConfig


def test_a_shop_with_more_orders_per_click_written_to_files_is_read_back_keyed_in_event_time_order(
        tmp_path: Path) -> None:
    config = SimulatorConfig(customers=60, days=2, seed=5, browsing=0.1)  # the usual shop is ~95 % clicks
    browsing_less = [(e.topic, e.key, e.value) for e in ShopSimulator(config).events()]
    assert sum(t == "clicks" for t, _, _ in browsing_less) / len(browsing_less) < 0.9
    counts = write_jsonl(iter(browsing_less), tmp_path)
    with (tmp_path / "clicks.jsonl").open("ab") as clicks:
        clicks.write(b"not json\n")  # a bad message is kept, with no key

    events = read_workload(tmp_path)

    assert {t: sum(1 for e in events if e[0] == t) for t in counts} == {**counts, "clicks": counts["clicks"] + 1}
    assert ("clicks", "", b"not json") in events
    good = [(t, k, v) for t, k, v in events if v != b"not json"]
    assert sorted((t, k) for t, k, _ in good) == sorted((t, k) for t, k, _ in browsing_less)
    stamps = [datetime.fromisoformat(v.split(b'"ts": "')[1].split(b'"')[0].decode().replace("Z", "+00:00"))
              for _, _, v in good]
    assert stamps == sorted(stamps)
