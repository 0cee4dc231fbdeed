"""The store, whole: the base (``igrt.store.base``) with each capability mixed in.

* ``instances``: received instances, association outcomes, series arrival bookkeeping;
* ``planning_index``: plans, planning CTs, structure sets, spatial registrations, selections;
* ``results``: registration jobs and correction messages (the only place a ``seq`` is made);
* ``decisions``: the operators' approvals and rejections;
* ``review_images``: the fused images of each correction.
* ``records_queue``: the DICOM record of approved corrections and its deliveries;
* ``retention``: what ``[storage] keep_days`` may purge, and the purge.
"""

from __future__ import annotations

from igrt.store.decisions import Decisions
from igrt.store.instances import InstanceStore
from igrt.store.planning_index import PlanningIndex
from igrt.store.records_queue import RecordsQueue
from igrt.store.results import Results
from igrt.store.retention import Retention
from igrt.store.review_images import ReviewImages


class Store(InstanceStore, PlanningIndex, Results, Decisions, ReviewImages, RecordsQueue,
            Retention):
    """The durable store under one state directory. Open with :meth:`Store.open`; close when
    done (or use it as a context manager)."""
