"""HTML reports: the data audit of manifests (``datakit stats --html``) and the audit of runs
(``datakit audit``). Pages are self-contained: figures are inline data URIs, no network."""
