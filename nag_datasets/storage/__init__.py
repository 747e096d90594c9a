"""Storage: local paths and fsspec URLs (``location``), crash-safe writes, locks and remote completion markers
(``atomic``), dataset formats (``formats``), launcher ranks (``ranks``), resumable sharded (``sharded``) and
streaming (``streaming``) featurization runs."""
