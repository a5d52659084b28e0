"""Worker-group placement groups that Ray Train left behind, released during a search.

When ASHA stops a trial, Tune kills the trial's actor and with it Ray Train's controller and workers. If the
worker dies first, the controller may take it for a worker failure (FailureConfig max_failures >= 1), create a
new worker group's placement group, and be killed before it registers that group with Ray's
PlacementGroupCleaner (ray.train.v2 ... placement_group_cleaner.py registers a group only once its workers
started). Nothing then removes it until the search's driver exits: a leaked 1-CPU reservation makes every
later trial that needs both CPUs of a 2-core machine time out (`worker group startup timed out`).

An orphan here is a placement group of this search's own Ray job (never another user's), in state CREATED,
that reserves CPUs or GPUs, in which no actor lives or is being created, seen so twice at least `grace_s`
apart: a worker group being started has its actors requested within seconds of its group being ready.
"""

from __future__ import annotations

import time

import ray
from ray.tune import Callback
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.state import list_actors, list_placement_groups

GRACE_S = 60.0  # how long a reservation must stay without actors before it counts as left behind
EVERY_S = 30.0  # how often the search looks (two State API calls; the dashboard serves them)


def orphaned_groups(job_id: str) -> set[str]:
    """Ids (hex) of the CREATED placement groups of Ray job `job_id` that reserve CPUs or GPUs and hold no
    actor of the job that is alive or being created. Needs the Ray dashboard (the State API); raises
    ray.util.state.exception.RayStateApiException when it does not answer."""
    groups = list_placement_groups(filters=[("creator_job_id", "=", job_id), ("state", "=", "CREATED")],
                                   detail=True, limit=10_000, raise_on_missing_output=False)
    # An actor belongs to the job of the process that created it, so Train's controller and workers (created by
    # the trial's actor, itself by this driver) carry `job_id` too: listing only this job's actors keeps each look
    # as cheap on a shared cluster as on a laptop.
    actors = list_actors(filters=[("job_id", "=", job_id), ("state", "!=", "DEAD")], detail=True, limit=10_000,
                         raise_on_missing_output=False)
    used = {a.placement_group_id for a in actors if a.placement_group_id}
    # Ray Train's worker groups reserve CPUs or GPUs and no memory; Tune's own trial reservations (a one-worker
    # trial's CPUs among them, raykd.tuning.tuner.trainable) always name memory, and are Tune's to release.
    reserves = lambda g: any(b.get("unit_resources", {}).get(r, 0) > 0 for b in g.bundles or [] for r in ("CPU", "GPU")) \
        and not any(b.get("unit_resources", {}).get("memory", 0) > 0 for b in g.bundles or [])
    return {g.placement_group_id for g in groups if reserves(g) and g.placement_group_id not in used}


class ReleaseOrphanedGroups(Callback):
    """A Tune callback (in the search's driver) that removes this job's orphaned worker-group placement
    groups (module docstring) once each has been seen orphaned for `grace_s` seconds, looking every
    `every_s` seconds. Each removal is printed. A State API that does not answer skips that look."""

    def __init__(self, grace_s: float = GRACE_S, every_s: float = EVERY_S):
        self.grace_s, self.every_s = grace_s, every_s
        self._first_seen: dict[str, float] = {}
        self._last_look = 0.0

    def on_step_end(self, iteration: int, trials: list, **info):
        now = time.monotonic()
        if now - self._last_look < self.every_s:
            return
        self._last_look = now
        self.release(now)

    def release(self, now: float) -> list[str]:
        """Look once: remove the groups orphaned since at least `grace_s` before `now` (time.monotonic()).
        Returns the ids removed."""
        try:
            orphans = orphaned_groups(ray.get_runtime_context().get_job_id())
        except Exception:  # the State API is busy or down: the next look tries again
            return []
        self._first_seen = {g: self._first_seen.get(g, now) for g in orphans}
        removed = [g for g, seen in self._first_seen.items() if now - seen >= self.grace_s]
        for group in removed:
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group))))
            del self._first_seen[group]
            print(f"released placement group {group}: a stopped trial's Ray Train left it reserved with no workers",
                  flush=True)
        return removed
