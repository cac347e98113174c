"""The data path, pure: input bytes to an event, a feature row, a score, and the records that say so.

No Kafka here: the worker (:mod:`stream.worker`) hands a batch of messages in and sends what comes back.

- :mod:`.codec`: input bytes to a validated event and its feature row, bounded before they cost much;
- :mod:`.model`: the model registry on disk, and a model loaded and verified with its card;
- :mod:`.pipeline`: a batch in; predictions, provenance and dead letters out;
- :mod:`.challenger`: a challenger beside the champion: in shadow, or a canary by key;
- :mod:`.records`: the output records, and a dead letter for each refused input;
- :mod:`.dead_letters`: a dead letter's headers, and the cut of one too large to copy;
- :mod:`.headers`: the trace context carried from the input, and the CloudEvents headers.
"""
