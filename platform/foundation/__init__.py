"""What every app shares: the REST API instance and its errors, ids, field encryption,
signatures, safe outbound HTTP, text limits, the channel layer's wrapper, metrics, task
retries. It imports no other app of Koe (the composition root, ``koe``, wires them)."""
