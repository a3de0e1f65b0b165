"""Session fixtures for the oci side of the suite."""

from __future__ import annotations
