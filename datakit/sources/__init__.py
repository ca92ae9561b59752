"""Sources: readers of the original distribution formats, each writing a manifest.

One module per source, declarative at the top (files, checksums, classes, domain).
"""
