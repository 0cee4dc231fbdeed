"""The durable store: received DICOM instances, the planning index, jobs and correction results.

Layout under the state directory ``root``::

    instances/<patient-key>/<series-uid>/<sop-instance-uid>.dcm   (patient key: hash of the ID)
    tmp/            in-flight writes, same file system; emptied on open (crash leftovers)
    igrt.sqlite     index (WAL, synchronous=FULL), schema version in table ``meta``
    igrt.lock       flock held while the store is open
    qa/             the physics QA history: its own database and images, outside the lock
                    (``igrt.store.qa_history``), so ``igrt qa run`` writes it beside the service
"""

from igrt.store.files import InstanceContent
from igrt.store.records import (
    AssociationOutcome,
    InstanceMeta,
    JobState,
    ObjectRecord,
    PlanRecord,
    SeriesArrivals,
    SeriesAssociation,
    StoredInstance,
    validate_meta,
)
from igrt.store.results import encode_correction
from igrt.store.schema import SCHEMA_VERSION
from igrt.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "AssociationOutcome",
    "InstanceContent",
    "InstanceMeta",
    "JobState",
    "ObjectRecord",
    "PlanRecord",
    "SeriesArrivals",
    "SeriesAssociation",
    "Store",
    "StoredInstance",
    "encode_correction",
    "validate_meta",
]
