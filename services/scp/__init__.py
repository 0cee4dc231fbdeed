"""The DICOM Storage SCP (CONTRACT §3): the server (``server``), what it accepts (``policy``),
association bookkeeping (``sessions``), the C-STORE handler (``c_store``), the statuses it
answers with (``status``) and the events it reports (``events``)."""

from services.scp.events import ActivityKind, SeriesEvent
from services.scp.server import StorageScp

__all__ = ["ActivityKind", "SeriesEvent", "StorageScp"]
