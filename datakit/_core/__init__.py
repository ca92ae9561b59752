"""Shared leaves every stage uses: atomic writes, names, optional dependencies, progress, type checks,
devices, the version. They import nothing else of datakit but errors."""
