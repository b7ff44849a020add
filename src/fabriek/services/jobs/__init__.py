"""Jobs: submit, look at, cancel, read output; the dispatcher that starts, watches and stops
them on the sites' engines; their datasets staged while they run.

The use cases the API and the portal call are re-exported here (`jobs.submit_job`,
`jobs.list_jobs`, ...); the dispatcher and the engines' registry are imported from their
own modules by the server that runs them.
"""

from fabriek.services.jobs.queries import (
    get_job,
    job_events,
    job_handle,
    list_jobs,
    request_cancel,
)
from fabriek.services.jobs.shapes import ProjectRefCache, SiteShapeCache, site_shapes
from fabriek.services.jobs.specs import spec_from_row, spec_of, waiting_reason
from fabriek.services.jobs.states import transition
from fabriek.services.jobs.submit import PreparedJob, prepare_job, submit_job, write_jobs

__all__ = [
    "PreparedJob",
    "ProjectRefCache",
    "SiteShapeCache",
    "get_job",
    "job_events",
    "job_handle",
    "list_jobs",
    "prepare_job",
    "request_cancel",
    "site_shapes",
    "spec_from_row",
    "spec_of",
    "submit_job",
    "transition",
    "waiting_reason",
    "write_jobs",
]
