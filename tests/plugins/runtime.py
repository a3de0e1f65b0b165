"""Session fixtures for the runtime side of the suite."""

from __future__ import annotations
