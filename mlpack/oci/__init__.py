"""Images without a daemon: the local OCI store, layers, formats and registries.

Knows nothing about ML. Modules (import the one you need; nothing here runs
at import time):

* ``layout``      the store: an OCI image layout (``Store``, a facade over the next five)
* ``cas``         blobs and index.json, the only code that writes (``blobs``: atomic files)
* ``refs``        tag names: normalise, resolve, tag, delete; ``platforms``: index -> image
* ``gc``          reachability and garbage collection; ``validate``: re-hash and walk
* ``image``       ``Layer``, ``Image``, ``ImageSummary``
* ``config``      ``ImageConfig``: an image's config blob parsed once, read by every consumer
* ``layer``       reproducible tar+gzip layers from directories or entries
* ``unpack``      safe layer application (no write ever escapes the root)
* ``layercache``  layers unpacked once per diff_id, overlay lowerdir form
* ``archive``     docker-archive and OCI layout/tar import and export
* ``registry``    pull/push over the distribution API (``transport``, ``auth``)
* references: the one :mod:`mlpack.reference` type (a leaf every stage may import)
* ``base``        the Debian python base image made with mmdebstrap
"""
