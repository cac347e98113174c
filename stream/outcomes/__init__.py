"""The outcome worker: joins true outcomes with the predictions they judge (see :mod:`.app`)."""
