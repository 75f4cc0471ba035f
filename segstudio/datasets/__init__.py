"""Ring 1: dataset formats, detection and safe image/mask I/O."""
