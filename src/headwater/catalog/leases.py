"""Run leases: which process executes a RUNNING run, and whether it can still be alive.

A process killed by the kernel (OOM, SIGKILL, a preempted node) runs no ``except`` or
``finally``, so the run it had open would stay RUNNING forever. Each run therefore records an
*owner* (host name, pid, and a token naming that process on its machine) and a *lease*
(``lease_until``) that a heartbeat thread of the owner keeps pushing forward while the run block
is open (:class:`Heartbeat`). A RUNNING run is dead, and is reaped to ABORTED, when

* its lease has expired: no heartbeat for a whole lease period, whoever and wherever the owner
  is (clock skew between machines must stay well below the lease), or
* its owner is a process of *this* machine (same boot, same pid namespace) that no longer exists,
  or whose pid now belongs to a process started at another time (a reused pid): reaped at once.

Runs without a lease (ingested from OpenLineage producers, or started before migration 0009)
are never reaped here: their owner is not ours to judge.

The state change is a conditional ``UPDATE … WHERE state = 'RUNNING' AND <still dead>``: two
reapers (or a reaper and a heartbeat) racing on one run change it once. A committing run locks
its row first (``SELECT … FOR UPDATE``), so a reaper never ends a run whose commit is under way.
This module only touches the catalog; :mod:`headwater.reaper` records the lineage events.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, or_, select, true, update
from sqlalchemy.orm import Session

from headwater.catalog.models import Run, utcnow

log = logging.getLogger(__name__)

RUNNING, ABORTED = "RUNNING", "ABORTED"


@dataclass(frozen=True)
class Owner:
    """A process on a machine: ``token`` is ``boot-id/pid-namespace/start-time`` where the OS
    tells them (Linux ``/proc``), so a pid reused after the owner died is not taken for it."""

    host: str
    pid: int
    token: str


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


@cache
def _machine() -> tuple[str, str]:
    """(boot id, pid namespace) of this process: where pids mean the same processes."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return _read("/proc/sys/kernel/random/boot_id"), pidns


def _proc_start(pid: int) -> tuple[str, str] | None:
    """(start time in clock ticks since boot, state letter) of ``pid``; None: no such process.
    ``("", "")`` when it exists but ``/proc`` does not say more (another OS, ``hidepid``)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat:
        fields = stat.rsplit(")", 1)[-1].split()
        # fields[0] is field 3 of proc(5) (state), so field 22 (starttime) is fields[19]
        return (fields[19], fields[0]) if len(fields) > 19 else ("", fields[0] if fields else "")
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return None
    except OSError:  # exists, owned by another user
        pass
    return "", ""


def this_process() -> Owner:
    """The owner a run started by this process records (recomputed after a fork)."""
    return _owner(os.getpid())


@cache
def _owner(pid: int) -> Owner:
    boot, pidns = _machine()
    start = _proc_start(pid)
    return Owner(host=socket.gethostname()[:255], pid=pid,
                 token=f"{boot}/{pidns}/{start[0] if start else ''}"[:128])


def owner_gone(host: str | None, pid: int | None, token: str | None, *, me: Owner) -> bool:
    """True when the owner is known to be dead: a process of this machine (same host name,
    boot and pid namespace as ``me``) that no longer exists, is a zombie, or whose pid now
    names a process started at another time. False when it is alive or cannot be judged here."""
    if host != me.host or pid is None or not token:
        return False
    theirs, mine = token.split("/"), me.token.split("/")
    if len(theirs) != 3 or theirs[:2] != mine[:2]:
        return False  # another container or another boot: its pids are not ours to look up
    if pid == me.pid and token == me.token:
        return False
    seen = _proc_start(pid)
    if seen is None:
        return True
    started, state = seen
    if state in ("Z", "X"):  # killed, not yet waited for by its parent
        return True
    return bool(theirs[2] and started and started != theirs[2])


def lease_columns(owner: Owner, lease_seconds: float, now: datetime) -> dict[str, Any]:
    """The owner and lease columns of a run starting now (keyword arguments of ``Run``)."""
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_token": owner.token,
            "heartbeat_at": now, "lease_until": now + timedelta(seconds=lease_seconds)}


def renew(engine: Engine, run_id: str, lease_seconds: float) -> bool:
    """One heartbeat: push the lease of a RUNNING run forward. False when the run is no longer
    RUNNING (committed, failed, or reaped: the heartbeat should stop)."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(update(Run).where(Run.id == run_id, Run.state == RUNNING).values(
            heartbeat_at=now, lease_until=now + timedelta(seconds=lease_seconds)))
    return bool(done.rowcount)


def lock_run(session: Session, run_id: str) -> Run | None:
    """The run's row, locked until ``session``'s transaction ends (a reaper waits for it, then
    finds the run no longer RUNNING). SQLite's ``BEGIN IMMEDIATE`` already holds the lock."""
    return session.scalars(
        select(Run).where(Run.id == run_id).with_for_update(of=Run)
        .execution_options(populate_existing=True)).first()


@dataclass(frozen=True)
class Reaped:
    """A run moved from RUNNING to ABORTED, and why."""

    run: Run
    reason: str


def _abort(session: Session, run: Run, reason: str, still_dead: Any, now: datetime) -> bool:
    done = session.execute(
        update(Run).where(Run.id == run.id, Run.state == RUNNING, still_dead)
        .values(state=ABORTED, ended_at=now, error=reason[:4000])
        .execution_options(synchronize_session=False))
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    session.refresh(run)
    return True


def reap(session: Session, *, me: Owner | None = None, now: datetime | None = None
         ) -> list[Reaped]:
    """End every RUNNING run whose owner is dead (see the module docstring); one indexed query
    when nothing is to be reaped. The caller records the lineage events in the same session."""
    me = me or this_process()
    now = now or utcnow()
    rows = session.scalars(
        select(Run).where(Run.state == RUNNING, Run.lease_until.is_not(None),
                          or_(Run.lease_until < now, Run.owner_host == me.host))).all()
    reaped = []
    for run in rows:
        if run.lease_until is None:
            continue
        where = f"pid {run.owner_pid} on {run.owner_host}"
        if owner_gone(run.owner_host, run.owner_pid, run.owner_token, me=me):
            reason = (f"aborted by the reaper: its process ({where}) is gone (killed: "
                      "out of memory, SIGKILL or preempted?); last heartbeat "
                      f"{_ago(run.heartbeat_at, now)}")
            still = Run.owner_token == run.owner_token
        elif run.lease_until < now:
            reason = (f"aborted by the reaper: its lease expired {_ago(run.lease_until, now)} "
                      f"with no heartbeat from its process ({where}); last heartbeat "
                      f"{_ago(run.heartbeat_at, now)}")
            still = Run.lease_until < now
        else:
            continue
        if _abort(session, run, reason, still, now):
            reaped.append(Reaped(run, reason))
    return reaped


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return f"{when.isoformat(timespec='seconds')} ({(now - when).total_seconds():.0f} s ago)"


def supersede(session: Session, *, run: Run, attempt: Mapping[str, Any], reason: str
              ) -> tuple[str | None, list[Reaped]]:
    """Earlier attempts of the same engine task as ``run`` that did not complete: the newest
    one's id (``run`` is its retry) and those still RUNNING, now ABORTED (the engine started a
    new attempt, so they cannot be alive). ``attempt`` are the engine ids every attempt shares
    (Airflow: dag_id, task_id, run_id, map_index), matched against ``Run.engine``. Only runs of
    ``run``'s job that are RUNNING, FAILED or ABORTED are read (an index on ``state`` leads
    there): a try after a COMPLETED one is a re-run, not a retry."""
    rows = session.scalars(
        # ``job_id + 0``: SQLite (no statistics) would otherwise walk every run of the job by
        # its job_id index; the few unfinished runs are found by the state index instead
        select(Run).where(Run.state.in_((RUNNING, "FAILED", ABORTED)),
                          (Run.job_id + 0) == run.job_id, Run.id != run.id)
        .order_by(Run.started_at.desc(), Run.id.desc()).limit(500)).all()
    earlier = [r for r in rows
               if all((r.engine or {}).get(k) == v for k, v in attempt.items())]
    if not earlier:
        return None, []
    now = utcnow()
    reaped = [Reaped(r, reason) for r in earlier
              if r.state == RUNNING and _abort(session, r, reason, true(), now)]
    return earlier[0].id, reaped


class Heartbeat:
    """A daemon thread renewing one run's lease every ``interval`` seconds until stopped.

    Each beat is one short transaction with one single-row ``UPDATE`` (on SQLite: the write lock
    for well under a millisecond). A failed beat is logged and retried at the next one: the lease
    is several intervals long, so a transient error costs nothing. ``stop`` wakes the thread and
    waits for it at most ``timeout`` (a beat stuck behind another process's write lock finishes
    on its own and exits: its ``UPDATE`` then matches nothing); safe to call twice, never raises.
    """

    def __init__(self, engine: Engine, run_id: str, *, interval: float, lease: float) -> None:
        self.engine, self.run_id = engine, run_id
        self.interval, self.lease = interval, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"headwater-heartbeat-{run_id}",
                                        daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not renew(self.engine, self.run_id, self.lease):
                    return  # no longer RUNNING: nothing left to keep alive
            except Exception as exc:  # the step matters more than one beat
                log.warning("heartbeat of run %s failed (%s: %s); retrying in %.0f s",
                            self.run_id, type(exc).__name__, exc, self.interval)

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


__all__ = ["ABORTED", "Heartbeat", "Owner", "Reaped", "lease_columns", "lock_run", "owner_gone",
           "reap", "renew", "supersede", "this_process"]
