"""Orchestration the front doors share: stages composed, no argument parsing, no printing.

``mlpack.api``, ``mlpack.service`` and ``mlpack.cli`` call these; none of them
imports another front door (tests/unit/test_layout.py). Modules:

* ``export``  an image (reference, store image or ImageInfo) resolved, pushed
              when asked, and written as Kubernetes manifests
"""
