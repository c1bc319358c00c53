"""The warm pool `newsflow serve` keeps: two runs in a row use the same worker processes, and work and errors
cross both process hops intact (real processes, real spaCy).

Covers: flows.run.workers, flows.run.documents
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write_config

from flows.core.settings import load_settings
from flows.run import workers
from flows.run.documents import tag_texts


def test_a_warm_pool_serves_two_runs_with_the_same_workers(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "", workers=2), env={})
    warm = workers.WarmPool(settings)
    try:
        started = warm.pids()
        assert len(started) == 2 and os.getpid() not in started
        seen = []
        for _run in range(2):  # what two flow runs started by serve do, each with the address from the env
            env = warm.env()
            pool = workers.make_pool(settings, warm=env[workers.WARM_POOL_ENV], key=env[workers.WARM_POOL_KEY_ENV])
            assert isinstance(pool, workers.RemoteExecutor)
            seen += [f.result() for f in [pool.submit(os.getpid) for _ in range(8)]]
            [(mentions, version, reason)] = pool.submit(
                tag_texts, [("Angela Merkel visited Paris with Emmanuel Macron.", settings.entities.pipeline)],
                settings).result()
            assert reason is None and version and {m["name"] for m in mentions} >= {"Angela Merkel", "Paris"}
            with pytest.raises(ValueError, match="invalid literal"):
                pool.submit(int, "not a number").result()
            pool.shutdown()  # a run's end leaves the workers warm
        assert set(seen) <= set(started)
        assert warm.pids() == started  # no worker was replaced between the runs
    finally:
        warm.close()


def test_no_warm_pool_address_means_a_pool_of_the_run(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "", workers=1), env={})
    assert isinstance(workers.make_pool(settings, warm=None, key=None), workers.InlineExecutor)
