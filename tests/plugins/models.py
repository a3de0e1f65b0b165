"""Session fixtures for the models side of the suite."""

from __future__ import annotations
