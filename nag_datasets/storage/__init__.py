"""Storage: crash-safe writes and locks (``atomic``), dataset formats on disk (``formats``), and resumable
sharded and streaming featurization runs (``sharded``)."""
