"""The manifest: one Parquet table + JSON sidecar + memory-mappable pixel store.

It is the contract between ingest, compose, train and audit (DESIGN.md). ``model`` holds its
types and checksums, ``read`` and ``write`` its two directions (``switch``: the three files
replaced together, one writer at a time), ``store`` the pixel store a chunk at a time,
``stats`` and ``duplicates`` what a sidecar records, ``verify`` the recheck, ``export`` the
formats other tools read.
"""
from datakit.manifest.model import Geometry, Manifest, manifest_paths
from datakit.manifest.read import read_manifest
from datakit.manifest.write import write_manifest

__all__ = ["Geometry", "Manifest", "manifest_paths", "read_manifest", "write_manifest"]
