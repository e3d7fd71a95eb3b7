"""Delivering outbox rows through openlineage-python's own client and transports.

The transport is whatever openlineage-python resolves for ``OpenLineageClient()``
(``OPENLINEAGE_CONFIG``, ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__*``, ``OPENLINEAGE_URL``).
Headwater adds no transport of its own and does not re-implement that lookup to decide what
counts as delivery: it asks the client which transport it resolved, and whether openlineage's
transport factory built it from a configuration (:meth:`Emitter.resolve`). Its last-resort
fallbacks (the console when it found no usable configuration, the no-op of
``OPENLINEAGE_DISABLED``) send nothing anywhere, so rows stay pending, with the reason.

Delivery rules (see ``docs/lineage.md``):

* Events are built at delivery from the outbox record (:mod:`headwater.lineage.record`); the
  commit path imports neither openlineage nor this module's heavy dependencies.
* At-least-once. A row is marked delivered only after the transport returned; a crash in
  between means it is sent again. Consumers deduplicate on ``(run.runId, eventType, eventTime)``,
  which never changes because the stored record is never rewritten.
* In order per run: a run's COMPLETE is not sent while its START is still undelivered.
* Rows are *claimed* (``claimed_until`` + ``claimed_by`` = ``host:pid:token``) in a short
  transaction, sent with no transaction open, then marked in another short one. A process
  releases its claims when it exits; ``flush`` takes over the claims of an owner that is gone
  (same host, pid not alive) at once, and anyone takes over a claim whose lease ran out.
* A failed send is retried a few times at once (tenacity), then the row waits
  ``backoff_base * 2**(attempts-1)`` seconds before it is due again; after ``max_attempts`` it
  is ``failed`` (kept: ``flush --include-failed`` retries it).
* Backoff of the *transport* is shared by every process through the catalog's
  ``lineage_backoff`` table (:class:`Breaker`): each CLI command and Airflow task is a new
  process, so a breaker living in one process would let every one of them pay the dead
  backend's timeout. While it is open, after-commit delivery does not even import openlineage.
* Nothing here raises into a run: :class:`BackgroundDelivery` logs errors with their class.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from headwater.catalog.models import LineageBackoff, LineageOutbox, utcnow

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import Transport

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_T: Table = LineageOutbox.__table__  # type: ignore[assignment]
_B: Table = LineageBackoff.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard and how often to try."""

    #: attempts per event within one drain (tenacity), waiting ``retry_wait`` · 2ⁿ between
    attempts_per_drain: int = 2
    retry_wait: float = 0.05
    retry_wait_max: float = 0.5
    #: between drains: a failed row is due again after ``backoff_base · 2^(attempts-1)`` s
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    #: failed attempts after which a row is ``failed`` (about 3.5 hours with the defaults)
    max_attempts: int = 12
    #: how long a claim protects a row being sent from other emitters
    lease_seconds: float = 60.0
    batch_size: int = 100
    #: the shared breaker: after n consecutive failures of a transport, after-commit delivery
    #: (in every process) waits ``backoff_base · 2^(n-1)`` s, at most ``breaker_max``
    breaker_max: float = 300.0
    #: how long one process's probe of a recovering transport keeps others from probing too
    probe_lease: float = 30.0

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1)))

    def breaker_delay(self, failures: int) -> float:
        return float(min(self.breaker_max, self.backoff_base * 2 ** max(0, failures - 1)))


@dataclass
class DeliveryResult:
    """What one drain or flush did."""

    delivered: int = 0
    failed_attempts: int = 0
    errors: list[str] = field(default_factory=list)
    #: why nothing was sent through the resolved transport (a console/no-op fallback, a
    #: transport that could not be created); rows stay pending and no attempt is charged
    refused: str | None = None
    #: rows that cannot be built into a valid event (marked ``failed`` at once)
    unbuildable: int = 0
    #: the shared breaker was open, or another process is probing: nothing was tried
    skipped: bool = False
    #: ``limit`` rows were sent; more may be due
    limited: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and self.refused is None

    def merge(self, other: DeliveryResult) -> None:
        self.delivered += other.delivered
        self.failed_attempts += other.failed_attempts
        self.errors.extend(other.errors)
        self.refused = self.refused or other.refused
        self.unbuildable += other.unbuildable
        self.limited = self.limited or other.limited


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()[:2000]


# -- claim owners -------------------------------------------------------------------------------
_OWNER: dict[int, str] = {}


def current_owner() -> str:
    """``host:pid:token`` of this process (a new one after ``fork``)."""
    pid = os.getpid()
    owner = _OWNER.get(pid)
    if owner is None:
        owner = f"{socket.gethostname()[:150]}:{pid}:{secrets.token_hex(6)}"
        _OWNER.clear()
        _OWNER[pid] = owner
    return owner


def owner_is_gone(owner: str | None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists.

    Another host's process cannot be checked: its claims are kept until their lease runs out.
    A live pid may have been reused by an unrelated process; the claim then also waits for its
    lease (never taken too early, only too late).
    """
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host != socket.gethostname()[:150] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner != current_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


# -- what openlineage-python resolved ------------------------------------------------------------
@dataclass(frozen=True)
class Resolved:
    """The transport openlineage-python resolved, and whether sending through it is delivery."""

    client: OpenLineageClient
    #: ``http http://host:5000``, ``file /path``, ``console``…
    description: str
    #: why events sent through it are not delivered (a console/no-op fallback), else None
    refusal: str | None = None


def _describe_transport(transport: Any) -> str:
    kind = str(getattr(transport, "kind", None) or type(transport).__name__)
    config = getattr(transport, "config", None)
    target = (
        getattr(transport, "url", None)
        or getattr(config, "url", None)
        or getattr(config, "log_file_path", None)
        or getattr(config, "topic", None)
    )
    return f"{kind} {target}" if target else kind


def _fallback_reason(kind: str) -> str:
    if kind == "noop":
        return (
            "OPENLINEAGE_DISABLED is set, so openlineage-python sends nothing; events stay "
            "pending until it is unset"
        )
    config = os.environ.get("OPENLINEAGE_CONFIG")
    if config and not os.path.isfile(config):
        return (
            f"OPENLINEAGE_CONFIG names {config}, which does not exist; openlineage-python fell "
            "back to printing events on the console, which is not delivery"
        )
    return (
        "openlineage-python found no usable transport configuration and fell back to printing "
        "events on the console, which is not delivery (configure openlineage.yml, "
        "OPENLINEAGE_URL or OPENLINEAGE__TRANSPORT__*)"
    )


class _DropConsoleFallbackWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "print events to console" not in record.getMessage()


def resolve_transport() -> Resolved:
    """``OpenLineageClient()`` as openlineage-python configures it, and what it resolved to.

    The client's transport factory is wrapped to see which transports it built from a
    configuration. A console or no-op transport it did *not* build is the client's own fallback
    (no configuration found, ``OPENLINEAGE_CONFIG`` naming a missing file, the kill switch) and
    is refused; one the user configured (``type: console``) is honoured.
    """
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import TransportFactory, get_default_factory

    inner = get_default_factory()

    class RecordingFactory(TransportFactory):
        def __init__(self) -> None:
            self.made: list[Any] = []

        def create(self, config: dict[str, str] | None = None) -> Transport:
            transport = inner.create(config)
            if config:
                self.made.append(transport)
            return transport

    factory = RecordingFactory()
    # Its "will print events to console" warning is replaced by our reason (Resolved.refusal).
    client_log = logging.getLogger("openlineage.client.client")
    quiet = _DropConsoleFallbackWarning()
    client_log.addFilter(quiet)
    try:
        client = OpenLineageClient(factory=factory)
    finally:
        client_log.removeFilter(quiet)
    transport = client.transport
    kind = str(getattr(transport, "kind", ""))
    built = any(transport is made for made in factory.made)
    refusal = _fallback_reason(kind) if kind in ("console", "noop") and not built else None
    return Resolved(client, _describe_transport(transport), refusal)


def config_fingerprint(environ: Mapping[str, str] | None = None) -> str:
    """A key for "the OpenLineage configuration this process sees": the ``OPENLINEAGE*``
    variables and the identity (path, size, mtime) of the config files openlineage-python may
    read. Processes that see the same configuration share one :class:`Breaker` row; editing the
    configuration (creating the missing file, say) makes a new key, so a fix takes effect at
    once. This is a cache key only: what the configuration *means* is asked of the client.
    """
    env = os.environ if environ is None else environ
    parts = sorted(f"{k}={v}" for k, v in env.items() if k.startswith("OPENLINEAGE"))
    for path in _config_candidates(env):
        try:
            st = os.stat(path)
            parts.append(f"{path}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}|-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _config_candidates(env: Mapping[str, str]) -> list[str]:
    paths = [
        os.path.abspath("openlineage.yml"),
        str(Path.home() / ".openlineage" / "openlineage.yml"),
    ]
    if env.get("OPENLINEAGE_CONFIG"):
        paths.insert(0, os.path.abspath(env["OPENLINEAGE_CONFIG"]))
    return paths


def openlineage_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether anything hints at an openlineage-python configuration (a cheap gate).

    It only decides whether after-commit delivery starts at all (and so whether openlineage is
    imported): with nothing configured, events wait in the outbox instead of flooding every
    command's output on the console, and the commit costs nothing extra. Whether a hinted
    configuration really gives a transport is asked of openlineage-python at delivery
    (:func:`resolve_transport`).
    """
    env = os.environ if environ is None else environ
    if env.get("OPENLINEAGE_DISABLED", "").lower().strip() in ("1", "true", "yes"):
        return False
    if env.get("OPENLINEAGE_CONFIG") or env.get("OPENLINEAGE_URL"):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in env.items()):
        return True
    return any(os.path.isfile(p) for p in _config_candidates(env))


# -- the breaker shared through the catalog ------------------------------------------------------
class Breaker:
    """A circuit breaker per transport, in memory and (``key`` given) in the catalog.

    No row: the transport is healthy (the healthy path never writes). After a failure the row
    says when the next attempt is due; until then after-commit delivery in every process skips
    at the cost of one primary-key read. When it is due, one process takes the probe (an atomic
    update moves ``next_attempt_at`` by ``probe_lease``) and the others keep skipping; a success
    deletes the row, a failure pushes it out further.
    """

    def __init__(self, key: str | None, policy: DeliveryPolicy) -> None:
        self.key = key
        self.policy = policy
        #: ``time.monotonic()`` before which this process does not try (nor read the row)
        self.down_until = 0.0
        self._row_seen = False

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until

    def state(self, engine: Engine) -> tuple[int, datetime] | None:
        """(failures, next attempt) of the shared row, or None."""
        if self.key is None:
            return None
        with engine.connect() as conn:
            row = conn.execute(
                select(_B.c.failures, _B.c.next_attempt_at).where(_B.c.transport_key == self.key)
            ).first()
        if row is None:
            self._row_seen = False
            return None
        self._row_seen = True
        return int(row.failures), _aware(row.next_attempt_at)

    def allows(self, engine: Engine) -> bool:
        """Whether an after-commit attempt may start now (no write)."""
        if not self.healthy:
            return False
        shared = self.state(engine)
        if shared is None:
            return True
        wait = (shared[1] - utcnow()).total_seconds()
        if wait > 0:
            self.down_until = time.monotonic() + wait
            return False
        return True

    def recovering(self) -> bool:
        """The last look at the shared row found one (the transport failed recently)."""
        return self._row_seen

    def take_probe(self, engine: Engine) -> bool:
        """True if this process may try now: no row (healthy; nothing is written), or the row
        is due and this process won the probe."""
        if self.key is None:
            return self.healthy
        shared = self.state(engine)
        if shared is None:
            return True
        now = utcnow()
        if shared[1] > now:
            self.down_until = time.monotonic() + (shared[1] - now).total_seconds()
            return False
        with engine.begin() as conn:
            got = conn.execute(
                update(_B)
                .where(_B.c.transport_key == self.key, _B.c.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=self.policy.probe_lease))
            ).rowcount
        return bool(got == 1)

    def failed(self, engine: Engine | None, error: str, transport: str | None) -> float:
        """Open the breaker (here and, with a key, for every process); the delay in seconds."""
        failures = 1
        if self.key is not None and engine is not None:
            try:
                failures = self._record_failure(engine, error, transport)
            except Exception as exc:  # the breaker is an optimisation: never fail delivery
                log.debug("headwater lineage: could not record backoff (%s)", describe(exc))
        delay = self.policy.breaker_delay(failures)
        self.down_until = time.monotonic() + delay
        return delay

    def _record_failure(self, engine: Engine, error: str, transport: str | None) -> int:
        for _ in range(3):
            now = utcnow()
            with engine.begin() as conn:
                row = conn.execute(
                    select(_B.c.failures).where(_B.c.transport_key == self.key)
                ).first()
                if row is not None:
                    failures = int(row.failures) + 1
                    conn.execute(
                        update(_B)
                        .where(_B.c.transport_key == self.key)
                        .values(
                            failures=failures,
                            next_attempt_at=now
                            + timedelta(seconds=self.policy.breaker_delay(failures)),
                            last_error=error,
                            transport=transport,
                            updated_at=now,
                        )
                    )
                    self._row_seen = True
                    return failures
            try:
                with engine.begin() as conn:
                    conn.execute(
                        insert(_B).values(
                            transport_key=self.key,
                            transport=transport,
                            failures=1,
                            next_attempt_at=now
                            + timedelta(seconds=self.policy.breaker_delay(1)),
                            last_error=error,
                            updated_at=now,
                        )
                    )
                self._row_seen = True
                return 1
            except IntegrityError:  # another process inserted it first: update theirs
                continue
        return 1

    def succeeded(self, engine: Engine | None) -> None:
        self.down_until = 0.0
        if self.key is not None and engine is not None and self._row_seen:
            with engine.begin() as conn:
                conn.execute(delete(_B).where(_B.c.transport_key == self.key))
            self._row_seen = False


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the emitter ---------------------------------------------------------------------------------
class Emitter:
    """Sends outbox rows with an ``OpenLineageClient``; safe to share between threads.

    ``transport`` (or a ready ``client``) overrides openlineage-python's configuration, for tests
    and for embedding (its breaker then lives in this process only); otherwise the client is
    created on first use, not in the constructor, and the breaker is shared through the catalog
    under :func:`config_fingerprint`.
    """

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        client: OpenLineageClient | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._transport = transport
        self._client = client
        self._resolved: Resolved | None = None
        self.policy = policy or DeliveryPolicy()
        self._client_lock = threading.Lock()
        explicit = transport is not None or client is not None
        self.breaker = Breaker(None if explicit else config_fingerprint(), self.policy)
        self._warned = False
        #: log a warning when delivery stops (False where the caller reports it: ``flush``)
        self.warn = True

    # kept for callers of the in-process breaker
    @property
    def healthy(self) -> bool:
        return self.breaker.healthy

    @property
    def down_until(self) -> float:
        return self.breaker.down_until

    @down_until.setter
    def down_until(self, value: float) -> None:
        self.breaker.down_until = value

    def resolve(self) -> Resolved:
        """The client and what its transport is (see :func:`resolve_transport`)."""
        with self._client_lock:
            if self._resolved is None:
                if self._client is not None or self._transport is not None:
                    from openlineage.client import OpenLineageClient

                    client = self._client or OpenLineageClient(transport=self._transport)
                    self._resolved = Resolved(client, _describe_transport(client.transport))
                else:
                    self._resolved = resolve_transport()
            return self._resolved

    @property
    def client(self) -> OpenLineageClient:
        return self.resolve().client

    def _went_down(self, engine: Engine | None, error: str, what: str) -> None:
        transport = self._resolved.description if self._resolved else None
        delay = self.breaker.failed(engine, error, transport)
        # one warning per outage and process, not one per event
        log.log(
            logging.DEBUG if self._warned or not self.warn else logging.WARNING,
            "headwater lineage: %s (%s); events stay queued, delivery pauses %.0f s "
            "(`headwater lineage status` shows the backlog, `flush` sends it)",
            what,
            error,
            delay,
        )
        self._warned = True

    # -- sending --------------------------------------------------------------------------------
    def send(self, stored: Mapping[str, Any]) -> None:
        """Build the event of one stored payload and send it, retrying a few times; raises the
        last error. :class:`UnsendableEvent` when no valid event can be built from it."""
        from tenacity import Retrying, stop_after_attempt, wait_exponential

        from headwater.lineage.facets import event_for_delivery

        try:
            event = event_for_delivery(stored)
        except Exception as exc:
            raise UnsendableEvent(describe(exc)) from exc
        client = self.client
        p = self.policy
        for attempt in Retrying(
            stop=stop_after_attempt(max(1, p.attempts_per_drain)),
            wait=wait_exponential(multiplier=p.retry_wait, max=p.retry_wait_max),
            reraise=True,
        ):
            with attempt:
                client.emit(event)

    # -- draining the outbox --------------------------------------------------------------------
    def deliver(
        self,
        engine: Engine,
        *,
        run_ids: Collection[str] | None = None,
        ignore_backoff: bool = False,
        include_failed: bool = False,
        limit: int | None = None,
        take_over_dead: bool = False,
        upto_id: int | None = None,
    ) -> DeliveryResult:
        """Send due rows (of ``run_ids`` only, if given; ids up to ``upto_id``) oldest first
        until none is left, one fails, or ``limit`` were sent.

        ``ignore_backoff`` (``headwater lineage flush``) sends rows that are waiting out a
        backoff and ignores the shared breaker; ``take_over_dead`` also takes rows claimed by a
        process of this host that is gone. Without ``ignore_backoff`` nothing is tried while the
        breaker is open or another process is probing the transport.
        """
        result = DeliveryResult()
        if ignore_backoff:
            self.breaker.state(engine)  # a success clears a shared row
        elif not self.breaker.take_probe(engine):
            result.skipped = True
            return result
        try:
            resolved = self.resolve()
        except Exception as exc:  # a configuration openlineage-python cannot build
            result.refused = f"openlineage-python could not create its transport: {describe(exc)}"
            self._went_down(engine, result.refused, "no lineage transport")
            return result
        if resolved.refusal is not None:
            result.refused = resolved.refusal
            self._went_down(engine, resolved.refusal, "lineage events not sent")
            return result
        states = (PENDING, FAILED) if include_failed else (PENDING,)
        succeeded = False
        while limit is None or result.delivered < limit:
            batch = self._claim(
                engine,
                states=states,
                run_ids=run_ids,
                ignore_backoff=ignore_backoff,
                size=min(self.policy.batch_size, (limit - result.delivered) if limit else 10**9),
                take_over_dead=take_over_dead,
                upto_id=upto_id,
            )
            if not batch:
                break
            given_up: set[str] = set()
            for i, (row_id, attempts, stored, run_id) in enumerate(batch):
                if run_id in given_up:  # in order per run: not after an event that gave up
                    self._release(engine, [row_id])
                    continue
                try:
                    self.send(stored)
                except UnsendableEvent as exc:  # never sendable by this Headwater
                    result.unbuildable += 1
                    result.errors.append(str(exc))
                    given_up.add(run_id)
                    self._mark_failed(engine, row_id, attempts + 1, str(exc), give_up=True)
                    continue
                except Exception as exc:  # any transport error: keep the row for later
                    result.failed_attempts += 1
                    result.errors.append(describe(exc))
                    self._mark_failed(engine, row_id, attempts + 1, describe(exc))
                    self._release(engine, [r[0] for r in batch[i + 1 :]])
                    self._went_down(
                        engine, describe(exc), f"delivery of outbox row {row_id} failed"
                    )
                    return result
                if not succeeded:
                    succeeded = True
                    self._warned = False
                    self.breaker.succeeded(engine)
                self._mark_delivered(engine, row_id, attempts + 1)
                result.delivered += 1
        if limit is not None and result.delivered >= limit:
            result.limited = True
        return result

    def _claim(
        self,
        engine: Engine,
        *,
        states: tuple[str, ...],
        run_ids: Collection[str] | None,
        ignore_backoff: bool,
        size: int,
        take_over_dead: bool = False,
        upto_id: int | None = None,
    ) -> list[tuple[int, int, dict[str, Any], str]]:
        """Claim up to ``size`` due rows: (id, attempts, stored payload, run id)."""
        now = utcnow()
        owner = current_owner()
        with engine.begin() as conn:
            free = or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < now)
            if take_over_dead:
                holders = conn.execute(
                    select(_T.c.claimed_by)
                    .where(
                        _T.c.state.in_(states),
                        _T.c.claimed_until >= now,
                        _T.c.claimed_by.is_not(None),
                    )
                    .distinct()
                ).scalars()
                dead = [h for h in holders if owner_is_gone(h)]
                if dead:
                    free = or_(free, _T.c.claimed_by.in_(dead))
            q = select(_T.c.id, _T.c.run_id, _T.c.attempts, _T.c.event).where(
                _T.c.state.in_(states), free
            )
            if not ignore_backoff:
                q = q.where(_T.c.next_attempt_at <= now)
            if run_ids is not None:
                q = q.where(_T.c.run_id.in_(list(run_ids)))
            if upto_id is not None:
                q = q.where(_T.c.id <= upto_id)
            rows = conn.execute(q.order_by(_T.c.id).limit(size)).all()
            if not rows:
                return []
            # In order per run: a row waits while an older row of its run is undelivered
            # (backing off, given up, or being sent by someone else) and not ahead of it in
            # this batch.
            runs = {r.run_id for r in rows}
            older: dict[str, set[int]] = {}
            for run_id, row_id in conn.execute(
                select(_T.c.run_id, _T.c.id).where(
                    _T.c.state.in_((PENDING, FAILED)),
                    _T.c.run_id.in_(list(runs)),
                    _T.c.id <= max(r.id for r in rows),
                )
            ):
                older.setdefault(run_id, set()).add(row_id)
            lease = now + timedelta(seconds=self.policy.lease_seconds)
            taken: list[tuple[int, int, dict[str, Any], str]] = []
            taken_ids: set[int] = set()
            blocked: set[str] = set()
            for r in rows:
                before = {i for i in older.get(r.run_id, ()) if i < r.id}
                if r.run_id in blocked or not before <= taken_ids:
                    blocked.add(r.run_id)
                    continue
                got = conn.execute(
                    update(_T)
                    .where(_T.c.id == r.id, _T.c.state.in_(states), free)
                    .values(claimed_until=lease, claimed_by=owner)
                ).rowcount
                if got == 1:
                    taken.append((r.id, r.attempts, dict(r.event), r.run_id))
                    taken_ids.add(r.id)
                else:
                    blocked.add(r.run_id)
            return taken

    def _mark_delivered(self, engine: Engine, row_id: int, attempts: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.id == row_id)
                .values(
                    state=DELIVERED,
                    delivered_at=utcnow(),
                    attempts=attempts,
                    claimed_until=None,
                    claimed_by=None,
                    last_error=None,
                )
            )

    def _mark_failed(
        self, engine: Engine, row_id: int, attempts: int, error: str, *, give_up: bool = False
    ) -> None:
        now = utcnow()
        gave_up = give_up or attempts >= self.policy.max_attempts
        with engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.id == row_id)
                .values(
                    state=FAILED if gave_up else PENDING,
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=self.policy.backoff(attempts)),
                    claimed_until=None,
                    claimed_by=None,
                    last_error=error,
                )
            )

    def _release(self, engine: Engine, row_ids: Iterable[int]) -> None:
        ids = list(row_ids)
        if ids:
            with engine.begin() as conn:
                conn.execute(
                    update(_T)
                    .where(_T.c.id.in_(ids), _T.c.claimed_by == current_owner())
                    .values(claimed_until=None, claimed_by=None)
                )


class UnsendableEvent(Exception):
    """A stored payload from which no valid event can be built (retrying will not help)."""


def release_claims(engine: Engine, owner: str | None = None) -> int:
    """Release every undelivered row claimed by ``owner`` (this process by default), so the
    next emitter or ``flush`` takes them at once instead of waiting out the lease."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                update(_T)
                .where(_T.c.claimed_by == (owner or current_owner()), _T.c.state != DELIVERED)
                .values(claimed_until=None, claimed_by=None)
            ).rowcount
        )


# -- status -------------------------------------------------------------------------------------
def outbox_status(engine: Engine) -> dict[str, Any]:
    """Counts per state, the oldest undelivered event, the latest delivery error, and the
    shared breaker rows (transports whose after-commit delivery is paused)."""
    with engine.connect() as conn:
        counts: dict[str, int] = {
            state: int(n)
            for state, n in conn.execute(select(_T.c.state, func.count()).group_by(_T.c.state))
        }
        oldest = conn.execute(
            select(func.min(_T.c.created_at)).where(_T.c.state.in_((PENDING, FAILED)))
        ).scalar()
        last = conn.execute(
            select(_T.c.last_error)
            .where(_T.c.last_error.is_not(None), _T.c.state.in_((PENDING, FAILED)))
            .order_by(_T.c.id.desc())
            .limit(1)
        ).scalar()
        paused = [
            {
                "transport": r.transport,
                "failures": int(r.failures),
                "next_attempt_at": _aware(r.next_attempt_at).isoformat(),
                "last_error": r.last_error,
            }
            for r in conn.execute(
                select(_B.c.transport, _B.c.failures, _B.c.next_attempt_at, _B.c.last_error)
            )
        ]
    oldest_text = None
    if oldest is not None:
        oldest_text = oldest.isoformat() if hasattr(oldest, "isoformat") else str(oldest)
    return {
        PENDING: int(counts.get(PENDING, 0)),
        FAILED: int(counts.get(FAILED, 0)),
        DELIVERED: int(counts.get(DELIVERED, 0)),
        "oldest_undelivered": oldest_text,
        "last_error": last,
        "paused": paused,
    }


def not_sent(
    engine: Engine, result: DeliveryResult, *, upto_id: int | None, include_failed: bool
) -> list[dict[str, Any]]:
    """Why the undelivered rows (up to ``upto_id``) were not sent by the drain behind
    ``result``: one ``{"events": n, "reason": ...}`` per reason."""
    now = utcnow()
    with engine.connect() as conn:
        q = select(
            _T.c.id, _T.c.run_id, _T.c.state, _T.c.claimed_until, _T.c.claimed_by
        ).where(_T.c.state.in_((PENDING, FAILED)))
        if upto_id is not None:
            q = q.where(_T.c.id <= upto_id)
        rows = conn.execute(q.order_by(_T.c.id)).all()
    reasons: dict[str, int] = {}

    def add(reason: str) -> None:
        reasons[reason] = reasons.get(reason, 0) + 1

    failed_runs: set[str] = set()
    for r in rows:
        claimed = r.claimed_until is not None and _aware(r.claimed_until) >= now
        if r.state == FAILED and not include_failed:
            failed_runs.add(r.run_id)
            add("gave up after too many failed attempts (`--include-failed` retries them)")
        elif claimed and r.claimed_by != current_owner():
            until = _aware(r.claimed_until).strftime("%H:%M:%S UTC")
            add(f"being sent by process {r.claimed_by} (its claim lasts until {until})")
        elif r.run_id in failed_runs:
            add("wait behind an earlier event of their run that gave up")
        elif result.refused:
            add(result.refused)
        elif result.errors:
            add(f"the lineage backend failed: {result.errors[0]}")
        elif result.limited:
            add("not tried: --limit reached")
        else:
            add("wait behind an earlier undelivered event of their run")
    return [{"events": n, "reason": reason} for reason, n in reasons.items()]


# -- after-commit delivery ----------------------------------------------------------------------
class BackgroundDelivery:
    """Delivers the events of a just-committed transaction on one daemon thread.

    The committing thread waits at most ``wait`` seconds, so a slow backend never holds a step
    up for long; while the transport's breaker is open (in this process or, through the
    catalog, in any) nothing is tried at all, and while it is recovering the step does not
    wait for the probe. What is not delivered stays in the outbox for the next drain or
    ``flush``. At interpreter exit the thread gets ``exit_wait`` more seconds to finish, then
    this process's claims are released so nobody waits for their lease.
    """

    def __init__(self, emitter: Emitter, *, wait: float = 1.0, exit_wait: float = 2.0) -> None:
        self.emitter = emitter
        self.wait = wait
        self.exit_wait = exit_wait
        self.backlog_limit = 100
        self._lock = threading.Lock()
        self._queue: list[tuple[Engine, frozenset[str], threading.Event]] = []
        self._thread: threading.Thread | None = None
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def kick(self, engine: Engine, run_ids: Iterable[str]) -> None:
        """Queue delivery of ``run_ids``' events and wait briefly for it. Never raises."""
        try:
            if not self.emitter.breaker.allows(engine):  # down: leave rows for a later drain
                return
            done = threading.Event()
            with self._lock:
                self._queue.append((engine, frozenset(run_ids), done))
                self._engines.add(engine)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="headwater-lineage-delivery", daemon=True
                    )
                    self._thread.start()
                _register_for_exit(self)
            if not self.emitter.breaker.recovering():  # a probe is not worth holding a step
                done.wait(self.wait)
        except Exception as exc:  # e.g. no thread can be started
            log.warning("headwater lineage: could not start delivery (%s)", describe(exc))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for queued deliveries; True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            thread.join(remaining)

    def unfinished_at_exit(self) -> None:
        """The process exits while a send is still waiting for the backend: open the shared
        breaker, so the next processes do not each wait for the same silent backend (the rows
        stay pending and the next probe or ``flush`` sends them)."""
        resolved = self.emitter._resolved
        error = f"no answer within {self.exit_wait:g} s, before the process exited"
        for engine in list(self._engines):
            self.emitter.breaker.failed(engine, error, resolved.description if resolved else None)

    def release(self) -> None:
        """Give back this process's claims on every catalog it delivered to."""
        for engine in list(self._engines):
            try:
                release_claims(engine)
            except Exception as exc:
                log.debug("headwater lineage: could not release claims (%s)", describe(exc))

    def _run(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._thread = None
                    return
            runs: dict[Engine, set[str]] = {}
            for engine, ids, _ in batch:
                runs.setdefault(engine, set()).update(ids)
            for engine, run_ids in runs.items():
                try:
                    result = self.emitter.deliver(engine, run_ids=run_ids)
                    if result.ok and result.delivered:  # the backend is up: catch up
                        self.emitter.deliver(engine, limit=self.backlog_limit)
                except Exception as exc:  # a database error, a transport that cannot be built
                    self.emitter.breaker.failed(None, describe(exc), None)
                    log.warning(
                        "headwater lineage: delivery failed (%s); events stay queued",
                        describe(exc),
                    )
                    with contextlib.suppress(Exception):
                        release_claims(engine)
            for *_, done in batch:
                done.set()


_LIVE: weakref.WeakSet[BackgroundDelivery] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []
_EXIT_LOCK = threading.Lock()


def _register_for_exit(delivery: BackgroundDelivery) -> None:
    """One interpreter-exit hook for all deliveries, holding none of them alive."""
    with _EXIT_LOCK:
        _LIVE.add(delivery)
        if not _EXIT_HOOK:
            atexit.register(_join_all_at_exit)
            _EXIT_HOOK.append(True)


def _join_all_at_exit() -> None:
    for delivery in list(_LIVE):
        if not delivery.join(delivery.exit_wait):
            delivery.unfinished_at_exit()
    for delivery in list(_LIVE):
        delivery.release()


__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "BackgroundDelivery",
    "Breaker",
    "DeliveryPolicy",
    "DeliveryResult",
    "Emitter",
    "Resolved",
    "UnsendableEvent",
    "config_fingerprint",
    "current_owner",
    "not_sent",
    "openlineage_configured",
    "outbox_status",
    "owner_is_gone",
    "release_claims",
    "resolve_transport",
]
