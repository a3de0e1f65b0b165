"""Session fixtures for the images side of the suite."""

from __future__ import annotations
