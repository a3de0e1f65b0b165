"""mlpack's version: a leaf module every stage may import (it imports nothing)."""

__version__ = "0.1.0"
