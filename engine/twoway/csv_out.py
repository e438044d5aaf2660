"""CSV for staff downloads: the project's one CSV writer (``engine.platform.csv_io``), named
here for the two-way modules that import it."""

from __future__ import annotations

from engine.platform.csv_io import csv_bytes, csv_cell

__all__ = ["csv_bytes", "csv_cell"]
