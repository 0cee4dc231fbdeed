"""The QA report (CONTRACT §9, ``igrt qa report``): the QA history as PDF (reportlab) or
self-contained HTML, with matplotlib trend charts. An adapter over plain run records: it reads
the runs' image files and writes one file; the history itself is ``igrt.store.qa_history``."""
