"""Webhooks after the Standard Webhooks spec: signed POSTs of a finished job or inspection,
sent by the `notify` worker, each attempt guarded against SSRF and recorded."""
