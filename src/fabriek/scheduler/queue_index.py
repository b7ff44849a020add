"""The pending jobs as an index kept from one cycle to the next.

A cycle with a million pending jobs cannot afford a million Python-level steps: ordering
them by priority as tuples, or building a `Wait` for each, takes seconds. `PendingQueue`
holds the queue as columns (NumPy arrays, sorted by submission then job id) that the
caller updates with what changed since the last cycle (`add`, `remove`): the jobs that
arrived and those that left (started, cancelled). Each job's `Wait(Priority)` is made once
and reused, and the jobs are grouped by kind (project, user, GPUs, GPU type, own sites),
so that what a cycle checks per kind is computed per kind, not per job.

A cycle uses it for two things (see `policy._Cycle`): the priority order, computed over
the columns at once with the same formula as `priority.priority_order` (a property test
pins them equal), and the tail of the queue: once the reservation is set and no GPU is
free, no later job can start, and every later job that no static check stops waits with
reason `Priority`; `tail_special` finds the few that need the cycle's own checks.

It is a `Sequence[PendingJob]`, so a `Snapshot` can carry it as its `pending`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from fabriek.scheduler.decisions import ShortfallWait, Wait
from fabriek.scheduler.priority import PriorityWeights
from fabriek.scheduler.reasons import WaitReason
from fabriek.scheduler.snapshot import Allocation, PendingJob, UserKey

# (project, user, GPUs, GPU type, the job's own sites): what a cycle's checks of a job
# depend on besides its times.
Kind = tuple[str, str, int, str | None, frozenset[str] | None]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Objects = npt.NDArray[np.object_]

_FLOAT_COLUMNS = ("submit", "limit", "earliest", "latest")
_INT_COLUMNS = ("job_id", "gpus", "kind", "project", "user")
_OBJECT_COLUMNS = ("jobs", "waits")
_COLUMNS = (*_FLOAT_COLUMNS, *_INT_COLUMNS, *_OBJECT_COLUMNS, "alive")
# Jobs that left stay in the columns, marked, until they are this share of them: taking
# them out moves every column, which a cycle's few departures are not worth.
_DEAD_SHARE = 0.25
# Up to this many ids, `remove` compares them one by one.
_FEW = 8


class PendingQueue(Sequence[PendingJob]):
    """Pending jobs in order of submission (ties by job id), as columns.

    Update it with `add` and `remove` between cycles; a cycle reads it, and changes only
    the order it remembers (a hint that makes the next cycle's sort cheap). `earliest` and
    `latest` hold NaN where a job has none; `alive` is False for a job that left (its row
    stays until many have left). Positions index the columns, the rows of jobs that left
    included."""

    def __init__(self, jobs: Iterable[PendingJob] = ()) -> None:
        self.submit: Floats = np.empty(0, np.float64)
        self.limit: Floats = np.empty(0, np.float64)
        self.earliest: Floats = np.empty(0, np.float64)
        self.latest: Floats = np.empty(0, np.float64)
        self.job_id: Ints = np.empty(0, np.int64)
        self.gpus: Ints = np.empty(0, np.int64)
        self.kind: Ints = np.empty(0, np.int64)
        self.project: Ints = np.empty(0, np.int64)
        self.user: Ints = np.empty(0, np.int64)
        self.jobs: Objects = np.empty(0, object)
        # Each job's Wait(Priority), made once: most of a big queue waits so every cycle.
        self.waits: Objects = np.empty(0, object)
        self.alive: Bools = np.empty(0, np.bool_)
        self._dead = 0
        # The positions in the last priority order; None: not known.
        self._hint: Ints | None = None
        # The positions of the jobs still queued, while none has come or gone since.
        self._live: Ints | None = None
        # Codes, only ever added to: a code's meaning never changes.
        self.kinds: list[Kind] = []
        self.projects: list[str] = []
        self.users: list[UserKey] = []
        self._kind_code: dict[Kind, int] = {}
        self._project_code: dict[str, int] = {}
        self._user_code: dict[UserKey, int] = {}
        # Kind code -> (project code, user code).
        self._kind_of: dict[int, tuple[int, int]] = {}
        self.add(list(jobs))

    # -- Sequence ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.jobs) - self._dead

    @overload
    def __getitem__(self, index: int) -> PendingJob: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PendingJob]: ...

    def __getitem__(self, index: int | slice) -> PendingJob | Sequence[PendingJob]:
        at = self.live_positions()
        if isinstance(index, slice):
            return list(self.jobs[at[index]])
        job: PendingJob = self.jobs[at[index]]
        return job

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.jobs[self.live_positions()].tolist())

    def live_positions(self) -> Ints:
        """The positions of the queued jobs, in order of submission."""
        if self._live is None:
            self._live = np.flatnonzero(self.alive)
        return self._live

    # -- changes ----------------------------------------------------------------------------

    def add(self, jobs: Sequence[PendingJob]) -> None:
        """Add jobs that arrived (or came back: a preempted job keeps its submission
        time). Job ids must not be in the queue already."""
        if not jobs:
            return
        kind_code, project_code, user_code = self._kind_code, self._project_code, self._user_code
        kinds, projects, users = [], [], []
        for j in jobs:
            kind: Kind = (j.project, j.user, j.gpus, j.gpu_type, j.sites)
            k = kind_code.get(kind)
            if k is None:
                k = kind_code[kind] = len(self.kinds)
                self.kinds.append(kind)
                p = project_code.get(j.project)
                if p is None:
                    p = project_code[j.project] = len(self.projects)
                    self.projects.append(j.project)
                u = user_code.get((j.project, j.user))
                if u is None:
                    u = user_code[(j.project, j.user)] = len(self.users)
                    self.users.append((j.project, j.user))
                self._kind_of[k] = (p, u)
            p, u = self._kind_of[k]
            kinds.append(k)
            projects.append(p)
            users.append(u)
        columns = {
            "submit": np.array([j.submit_time_s for j in jobs], np.float64),
            "limit": np.array([j.time_limit_s for j in jobs], np.float64),
            "earliest": np.array(
                [np.nan if j.earliest_start_s is None else j.earliest_start_s for j in jobs],
                np.float64,
            ),
            "latest": np.array(
                [np.nan if j.latest_start_s is None else j.latest_start_s for j in jobs],
                np.float64,
            ),
            "job_id": np.array([j.job_id for j in jobs], np.int64),
            "gpus": np.array([j.gpus for j in jobs], np.int64),
            "kind": np.array(kinds, np.int64),
            "project": np.array(projects, np.int64),
            "user": np.array(users, np.int64),
            "jobs": _objects(jobs),
            "waits": _objects([Wait(j.job_id, WaitReason.PRIORITY) for j in jobs]),
            "alive": np.ones(len(jobs), np.bool_),
        }
        arrival = np.lexsort((columns["job_id"], columns["submit"]))
        columns = {name: column[arrival] for name, column in columns.items()}
        n = len(self.jobs)
        self._live = None
        first = (float(columns["submit"][0]), int(columns["job_id"][0]))
        if n == 0 or (float(self.submit[-1]), int(self.job_id[-1])) < first:
            # The usual case: everything new was submitted after everything queued.
            for name, column in columns.items():
                setattr(self, name, np.concatenate((getattr(self, name), column)))
            if self._hint is not None:
                self._hint = np.concatenate((self._hint, np.arange(n, n + len(jobs))))
            return
        # A job submitted earlier than the last queued one (a requeued job): merge, then
        # restore the order with one sort.
        for name, column in columns.items():
            setattr(self, name, np.concatenate((getattr(self, name), column)))
        self._hint = None
        alive = np.flatnonzero(self.alive)
        self._keep(alive[np.lexsort((self.job_id[alive], self.submit[alive]))])
        self._dead = 0

    def remove(self, job_ids: Iterable[int]) -> None:
        """Take out jobs that left the queue (started, cancelled); unknown ids are ignored."""
        ids = np.fromiter(job_ids, np.int64)
        if ids.size == 0 or len(self.jobs) == 0:
            return
        if ids.size <= _FEW:
            # A cycle's few starts: a comparison per id beats building isin's table.
            found = self.job_id == ids[0]
            for job_id in ids[1:]:
                found |= self.job_id == job_id
        else:
            found = np.isin(self.job_id, ids, kind="table")
        gone = np.flatnonzero(found & self.alive)
        if gone.size == 0:
            return
        self.alive[gone] = False
        self._dead += gone.size
        self._live = None
        if self._dead > _DEAD_SHARE * len(self.jobs):
            keep = np.flatnonzero(self.alive)
            if self._hint is not None:
                moved = np.cumsum(self.alive) - 1
                hint = self._hint
                self._hint = moved[hint[self.alive[hint]]]
            self._keep(keep)
            self._dead = 0

    def sync(self, jobs: Sequence[PendingJob]) -> None:
        """Make the queue hold exactly JOBS: what left is taken out, what came is added, and
        a job whose values changed while it waited (a new latest start, its own sites) is
        taken out and added anew. For a caller that reads the whole queue each cycle (the
        live service reads it from the store) and keeps the index for the cycle's sake."""
        wanted = {j.job_id: j for j in jobs}
        at = self.live_positions()
        held = dict(zip(self.job_id[at].tolist(), self.jobs[at].tolist(), strict=True))
        self.remove(i for i, job in held.items() if wanted.get(i) != job)
        self.add([j for i, j in wanted.items() if held.get(i) != j])

    def _keep(self, positions: Ints) -> None:
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name)[positions])
        self._live = None

    # -- what a cycle reads -----------------------------------------------------------------

    def present_users(self) -> set[UserKey]:
        """The (project, user) of every queued job."""
        counts = np.bincount(self.user[self.live_positions()], minlength=len(self.users))
        return {self.users[i] for i in np.flatnonzero(counts).tolist()}

    def rigid_gpus(self) -> int:
        """GPUs asked for by the jobs that cannot wait (no latest start)."""
        return int(self.gpus[np.isnan(self.latest) & self.alive].sum())

    def priority_positions(
        self,
        now: float,
        allocations: Mapping[str, Allocation],
        fairshare: Mapping[UserKey, float],
        weights: PriorityWeights,
    ) -> Ints:
        """Positions of the queued jobs by `fabriek` priority, highest first: the order of
        `priority.priority_order`, computed over the columns with the same formula,
        operation for operation (so with the same rounding)."""
        bound, cap = weights.slowdown_bound_s, weights.max_requested_s
        est = np.where(self.limit > bound, self.limit, bound)
        est = np.where(est > cap, cap, est)
        wait = now - self.submit
        xfactor = np.where(wait > 0, (wait + est) / est, 1.0)
        shares = np.array([fairshare.get(u, 0.0) for u in self.users], np.float64)
        score = xfactor * (1.0 + weights.fairshare * shares[self.user])
        if weights.tier:
            tiers = np.array(
                [a.tier if (a := allocations.get(p)) is not None else 0 for p in self.projects],
                np.float64,
            )
            score = score + weights.tier * tiers[self.project]
        with np.errstate(invalid="ignore"):
            overdue = self.latest <= now + weights.overdue_lead_s
        score = np.where(overdue, score + weights.overdue, score)
        # Sorted from the last cycle's order, which scores change little (the sort is
        # then cheap); equal scores are put back in the columns' order, submission then
        # job id, as `priority_order` breaks ties.
        hint = self._hint
        start = self.live_positions() if hint is None else hint[self.alive[hint]]
        negative = -score[start]
        by_score = np.argsort(negative, kind="stable")
        order = start[by_score]
        ranked = negative[by_score]
        same = ranked[1:] == ranked[:-1]
        if same.any():
            tied = np.zeros(len(order), np.bool_)
            tied[1:] |= same
            tied[:-1] |= same
            group = np.cumsum(np.concatenate(([True], ~same)))
            at = np.flatnonzero(tied)
            order[at] = order[at][np.lexsort((order[at], group[at]))]
        self._hint = order
        return order

    def kinds_in(self, positions: Ints) -> list[int]:
        """The kinds of the jobs at `positions`, each once."""
        present = np.zeros(len(self.kinds), np.bool_)
        present[self.kind[positions]] = True
        return list(np.flatnonzero(present).tolist())

    def tail_decisions(
        self,
        positions: Ints,
        now: float,
        kind_never: Mapping[int, bool],
        kind_factor: Mapping[int, float],
        budget_left: Mapping[str, float],
        hold_spare: int | None,
    ) -> tuple[list[int], Objects]:
        """For the jobs at `positions`, once no job can start any more: which (indexes into
        `positions`, in order) the cycle must still check itself, and the decisions of
        all others: `Wait(Priority)`, or a `ShortfallWait` for jobs surely over budget.
        Per kind: whether it never fits and its GPU-hour factor; per project: the
        GPU-hours it may still commit (absent: no allocation). See `tail_special`."""
        never = np.zeros(len(self.kinds), np.bool_)
        factor = np.ones(len(self.kinds), np.float64)
        for code, value in kind_never.items():
            never[code] = value
        for code, rate in kind_factor.items():
            factor[code] = rate
        left = np.array([budget_left.get(p, math.nan) for p in self.projects], np.float64)
        special, over, need = self.tail_special(positions, now, never, factor, left, hold_spare)
        decided = self.waits[positions]
        at_over = np.flatnonzero(over)
        if at_over.size:
            ids = self.job_id[positions[at_over]].tolist()
            free = np.maximum(0.0, left[self.project[positions[at_over]]]).tolist()
            decided[at_over] = [
                ShortfallWait(i, n, f)
                for i, n, f in zip(ids, need[at_over].tolist(), free, strict=True)
            ]
        return list(np.flatnonzero(special).tolist()), decided

    def tail_special(
        self,
        positions: Ints,
        now: float,
        kind_never: Bools,
        kind_factor: Floats,
        project_left: Floats,
        hold_spare: int | None,
    ) -> tuple[Bools, Bools, Floats]:
        """Which of the jobs at `positions` a cycle must still check itself once no job
        can start any more (no GPU free, the reservation set), and which surely wait for
        their budget, with the GPU-hours each needs.

        Checked by the cycle: those a static check may stop (never fits, no allocation
        (`project_left` NaN), not before their start time, a budget near its edge), that
        take no GPU (they start without one), or that may be held for a cleaner hour
        (`hold_spare`: the spare GPUs; None when nothing is held). Surely over budget:
        past every earlier check, and short by more than rounding. Every other job waits
        with reason `Priority`. Per kind: `kind_never`, `kind_factor` (GPU-hour factor);
        per project: `project_left` (GPU-hours it may still commit, inf without a
        limit). The arithmetic is the cycle's, operation for operation."""
        kind = self.kind[positions]
        gpus = self.gpus[positions]
        limit = self.limit[positions]
        left = project_left[self.project[positions]]
        earliest = self.earliest[positions]
        with np.errstate(invalid="ignore"):
            before = kind_never[kind] | np.isnan(left) | (gpus <= 0)
            before |= (self.submit[positions] > now) | (earliest > now)
            allowed = (left + 1e-9) * 3600.0
            need = gpus * limit * kind_factor[kind]
            finite = left < np.inf
            over = ~before & finite & (need > allowed * (1 + 1e-9) + 1e-9)
            near = finite & (need > allowed * (1 - 1e-9) - 1e-9) & ~over
            special = before | near
            if hold_spare is not None:
                latest = self.latest[positions]
                special |= ~over & (latest > now) & (gpus <= hold_spare)
        hours = gpus * limit / 3600.0 * kind_factor[kind]
        return special, over, hours


def _objects(items: Sequence[object]) -> Objects:
    """A 1-d object array of `items` (NumPy would otherwise unpack dataclasses' fields)."""
    array = np.empty(len(items), object)
    array[:] = items
    return array
