"""The spending ledger: idempotent, counted in the policy's timezone, never over a cap."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.core.policy import SpendingCaps
from agent.core.spending import SpendingError
from agent.store.ledger import Ledger, LedgerError, PurchaseStatus

TZ = ZoneInfo("Asia/Shanghai")  # UTC+8
CAPS = SpendingCaps("CNY", per_transaction=5000, per_day=8000, per_month=20000, ask_above=5000)
T0 = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)  # 11:00 local


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.db", pending_ttl=timedelta(hours=1))


def buy(ledger: Ledger, amount: int, key: str, now: datetime = T0, *, app: str = "org.shop",
        caps: SpendingCaps = CAPS, currency: str = "CNY") -> PurchaseStatus:
    return ledger.authorize(caps=caps, tz=TZ, app_id=app, amount=amount, currency=currency,
                            item="gems", idempotency_key=key, now=now).status


def test_day_cap_exact_then_one_unit_over(ledger: Ledger) -> None:
    assert buy(ledger, 5000, "a") is PurchaseStatus.APPROVED
    assert buy(ledger, 3001, "b") is PurchaseStatus.DENIED
    assert buy(ledger, 3000, "c") is PurchaseStatus.APPROVED  # exactly 8000 today
    assert buy(ledger, 1, "d") is PurchaseStatus.DENIED
    assert ledger.totals(CAPS, TZ, T0) == (8000, 8000)


def test_day_boundary_is_local_midnight(ledger: Ledger) -> None:
    before = datetime(2026, 4, 10, 15, 59, tzinfo=UTC)  # 23:59 local
    after = datetime(2026, 4, 10, 16, 0, tzinfo=UTC)  # 00:00 local, next day
    assert buy(ledger, 5000, "a", before) is PurchaseStatus.APPROVED
    assert buy(ledger, 3001, "b", before) is PurchaseStatus.DENIED
    assert buy(ledger, 5000, "c", after) is PurchaseStatus.APPROVED
    assert ledger.totals(CAPS, TZ, after) == (5000, 10000)


def test_month_boundary_is_local(ledger: Ledger) -> None:
    days = [datetime(2026, 4, d, 3, tzinfo=UTC) for d in range(1, 5)]
    for i, day in enumerate(days):
        assert buy(ledger, 5000, f"k{i}", day) is PurchaseStatus.APPROVED  # 20000 in April
    assert buy(ledger, 1, "over", datetime(2026, 4, 30, 15, 59, tzinfo=UTC)) is (
        PurchaseStatus.DENIED)
    # 16:00 UTC on Apr 30 is already May 1 in Shanghai: a new month.
    assert buy(ledger, 1, "may", datetime(2026, 4, 30, 16, 0, tzinfo=UTC)) is (
        PurchaseStatus.APPROVED)


def test_idempotent_retry_gets_the_same_answer(ledger: Ledger) -> None:
    first = ledger.authorize(caps=CAPS, tz=TZ, app_id="org.shop", amount=4000, currency="CNY",
                             item="gems", idempotency_key="same", now=T0)
    again = ledger.authorize(caps=CAPS, tz=TZ, app_id="org.shop", amount=4000, currency="CNY",
                             item="gems", idempotency_key="same", now=T0 + timedelta(minutes=1))
    assert again == first
    assert ledger.totals(CAPS, TZ, T0) == (4000, 4000)  # counted once
    assert buy(ledger, 4001, "other") is PurchaseStatus.DENIED  # 8001 would be over
    with pytest.raises(LedgerError, match="different purchase"):
        buy(ledger, 10, "same")
    # Another app may use the same key for its own purchase.
    assert buy(ledger, 10, "same", app="org.other") is PurchaseStatus.APPROVED


def test_a_denial_is_also_idempotent(ledger: Ledger) -> None:
    assert buy(ledger, 6000, "x") is PurchaseStatus.DENIED
    assert buy(ledger, 6000, "x") is PurchaseStatus.DENIED
    assert ledger.count() == 1


def test_refund_gives_the_amount_back(ledger: Ledger) -> None:
    p = ledger.authorize(caps=CAPS, tz=TZ, app_id="org.shop", amount=5000, currency="CNY",
                         item="gems", idempotency_key="a", now=T0)
    assert buy(ledger, 5000, "b") is PurchaseStatus.DENIED
    with pytest.raises(LedgerError, match="by this app"):
        ledger.refund(app_id="org.other", request_id=p.request_id, now=T0)
    assert ledger.refund(app_id="org.shop", request_id=p.request_id, now=T0).status is (
        PurchaseStatus.REFUNDED)
    assert ledger.refund(app_id="org.shop", request_id=p.request_id, now=T0).status is (
        PurchaseStatus.REFUNDED)  # a retried refund is harmless
    assert ledger.totals(CAPS, TZ, T0) == (0, 0)
    assert buy(ledger, 5000, "c") is PurchaseStatus.APPROVED


def test_pending_reserves_then_approve_deny_or_expire(ledger: Ledger) -> None:
    ask = SpendingCaps("CNY", per_transaction=5000, per_day=8000, per_month=20000, ask_above=1000)
    p1 = ledger.authorize(caps=ask, tz=TZ, app_id="org.shop", amount=5000, currency="CNY",
                          item="gems", idempotency_key="p1", now=T0)
    assert p1.status is PurchaseStatus.PENDING
    assert buy(ledger, 3001, "p2", caps=ask) is PurchaseStatus.DENIED  # 5000 is reserved
    ledger.decide(p1.request_id, approve=True, now=T0 + timedelta(minutes=5))
    assert ledger.get(p1.request_id).status is PurchaseStatus.APPROVED  # type: ignore[union-attr]
    with pytest.raises(LedgerError, match="approved"):
        ledger.decide(p1.request_id, approve=False, now=T0)
    p3 = ledger.authorize(caps=ask, tz=TZ, app_id="org.shop", amount=3000, currency="CNY",
                          item="gems", idempotency_key="p3", now=T0)
    ledger.expire(T0 + timedelta(hours=2))
    assert ledger.get(p3.request_id).status is PurchaseStatus.EXPIRED  # type: ignore[union-attr]
    with pytest.raises(LedgerError, match="expired"):
        ledger.decide(p3.request_id, approve=True, now=T0 + timedelta(hours=2))
    decided = ledger.take_unannounced()
    assert [(p.request_id, p.status) for p in decided] == [
        (p1.request_id, PurchaseStatus.APPROVED), (p3.request_id, PurchaseStatus.EXPIRED)]
    assert ledger.take_unannounced() == []
    assert ledger.totals(ask, TZ, T0 + timedelta(hours=2)) == (5000, 5000)


@pytest.mark.parametrize(
    "case",
    [
        (0, "CNY", "gems", "k", "bad_amount"),
        (-1, "CNY", "gems", "k", "bad_amount"),
        (100, "EUR", "gems", "k", "wrong_currency"),
        (100, "C1Y", "gems", "k", "bad_currency"),
        (100, "CNY", "", "k", "bad_item"),
        (100, "CNY", "gems\n", "k", "bad_item"),
        (100, "CNY", "gems", "", "bad_idempotency_key"),
        (100, "CNY", "gems", "k" * 129, "bad_idempotency_key"),
    ],
)
def test_bad_requests_change_nothing(ledger: Ledger, case: tuple[int, str, str, str, str]) -> None:
    amount, currency, item, key, code = case
    with pytest.raises(SpendingError) as err:
        ledger.authorize(caps=CAPS, tz=TZ, app_id="org.shop", amount=amount, currency=currency,
                         item=item, idempotency_key=key, now=T0)
    assert err.value.code == code
    assert ledger.count() == 0


def test_naive_now_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="aware"):
        buy(ledger, 1, "k", datetime(2026, 1, 1))
    assert ledger.count() == 0


def test_concurrent_threads_cannot_exceed_the_day_cap(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    results: list[PurchaseStatus] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        own = Ledger(path)  # its own connection: serialised by SQLite, not by our lock
        start.wait()
        for i in range(5):
            status = buy(own, 700, f"t{n}-{i}")
            with lock:
                results.append(status)
        own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    approved = results.count(PurchaseStatus.APPROVED)
    assert approved == 8000 // 700  # 11 fit, exactly
    assert Ledger(path).totals(CAPS, TZ, T0) == (7700, 7700)


_PROCESS_WORKER = r"""
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from agent.core.policy import SpendingCaps
from agent.store.ledger import Ledger, PurchaseStatus
caps = SpendingCaps("CNY", per_transaction=5000, per_day=8000, per_month=20000, ask_above=5000)
led = Ledger(Path(sys.argv[1]))
sys.stdin.readline()  # start together
got = 0
for i in range(6):
    p = led.authorize(caps=caps, tz=ZoneInfo("Asia/Shanghai"), app_id="org.shop", amount=900,
                      currency="CNY", item="gems", idempotency_key=f"{sys.argv[2]}-{i}",
                      now=datetime(2026, 4, 10, 3, 0, tzinfo=UTC))
    got += p.amount if p.status is PurchaseStatus.APPROVED else 0
print(got)
"""


def test_concurrent_processes_cannot_exceed_the_day_cap(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS_WORKER, str(path), f"p{n}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for n in range(4)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    spent = 0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        spent += int(out)
    assert spent == 8 * 900  # 8 of 24 attempts fit under 8000, never a ninth
    assert Ledger(path).totals(CAPS, TZ, T0) == (7200, 7200)


def test_retention_keeps_the_current_month(ledger: Ledger) -> None:
    now = datetime(2026, 4, 3, 3, tzinfo=UTC)  # April 3rd local
    for key, when in (("jan", datetime(2026, 1, 15, 3, tzinfo=UTC)),
                      ("mar", datetime(2026, 3, 30, 3, tzinfo=UTC)),
                      ("apr", datetime(2026, 4, 1, 3, tzinfo=UTC))):
        buy(ledger, 100, key, when)
    assert ledger.apply_retention(1, TZ, now) == 2  # only what is before April (local)
    assert [p.idempotency_key for p in ledger.purchases()] == ["apr"]
    assert ledger.totals(CAPS, TZ, now) == (0, 100)
    with pytest.raises(ValueError, match="retention_days"):
        ledger.apply_retention(0, TZ, now)


def test_ledger_file_is_private(ledger: Ledger) -> None:
    buy(ledger, 1, "k")
    assert ledger.path.stat().st_mode & 0o777 == 0o600
    assert Path(str(ledger.path) + "-wal").stat().st_mode & 0o777 == 0o600
