"""Units of work over the generated queries: each one transaction, validated at the boundary.

- ``pipelines``: save / restore / delete a pipeline with its steps, versioned and audited.
- ``jobs``: save / restore / delete a job with components, edges and tags; add a dependency.
- ``worker``: the pipeline work queue (enqueue, claim, succeed, fail + retry, the loop).
- ``events``: ingest events and the consumer loop.
- ``access``: users and grants (audited) and the login check.
"""

from etlstore.services._common import SYSTEM, Actor
from etlstore.services.errors import DependencyCycle, InvalidInput

__all__ = ["SYSTEM", "Actor", "DependencyCycle", "InvalidInput"]
