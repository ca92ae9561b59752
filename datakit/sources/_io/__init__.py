"""Reading original files: tar archives and folder trees, checksummed downloads, parallel image decoding."""
