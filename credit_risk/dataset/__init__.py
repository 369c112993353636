"""Data in: readers, row checks, statistics, ingest, TFDV validation and its report, synthetic data."""
