"""The request-body budget: derived from the cgroup memory limit, fair, bounded in waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mlpack.server.budget import ByteBudget, budget_for
from mlpack.server.cgroup import memory_limit


def test_budget_follows_the_memory_limit_and_never_drops_below_one_body() -> None:
    mib = 1024 * 1024
    assert budget_for(512 * mib, 8 * mib) == 32 * mib  # 16 bodies of 7.9 MB no longer fit at once
    assert budget_for(512 * mib, 8 * mib, workers=4) == 8 * mib
    assert budget_for(64 * mib, 8 * mib) == 8 * mib
    assert budget_for(None, 8 * mib) == 256 * mib


def test_memory_limit_of_v1_and_v2_cgroups(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    (v2 / "box").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("memory\n")
    (v2 / "memory.max").write_text("max\n")
    (v2 / "box" / "memory.max").write_text("536870912\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/box\n")
    assert memory_limit(v2, proc) == 536870912
    v1 = tmp_path / "v1"
    (v1 / "memory" / "box").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    proc.write_text("4:memory:/box\n")
    assert memory_limit(v1, proc) is None
    (v1 / "memory" / "box" / "memory.limit_in_bytes").write_text("268435456\n")
    assert memory_limit(v1, proc) == 268435456


def test_waiters_are_served_in_order_and_time_out() -> None:
    async def scenario() -> list:
        budget = ByteBudget(100, wait_s=0.05)
        first = await budget.acquire(80)
        waiting = asyncio.ensure_future(budget.acquire(50))
        small = asyncio.ensure_future(budget.acquire(10))  # fits, but must not overtake the one before it
        await asyncio.sleep(0)
        assert not waiting.done() and not small.done()
        assert await waiting is None  # 0.05 s passed without room: refused
        got_small = await small  # woken when the one ahead gave up
        budget.release(first)
        budget.release(got_small)
        again = await budget.acquire(500)  # capped at the capacity: one huge body can still run alone
        return [first, got_small, again, budget.rejected, budget.used]

    assert asyncio.run(scenario()) == [80, 10, 100, 1, 100]
