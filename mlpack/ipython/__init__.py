"""ipython stage."""
