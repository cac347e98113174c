"""Drift statistics, with no Kafka: what the worker's drift reports compute.

- :mod:`.monitor`: data drift against the model card's reference: windows, distances, detectors;
- :mod:`.distances`: PSI and total variation or Kolmogorov-Smirnov over the reference's bins;
- :mod:`.partition`: one input partition's window and change detectors;
- :mod:`.snapshot`: a partition's live state to its saved record and back;
- :mod:`.state`: the saved form of one partition's drift state (versioned JSON, plain numbers);
- :mod:`.detectors`: River's change detectors, without the data sets ``river.drift`` imports;
- :mod:`.river_state`: River's change detectors as plain numbers and back;
- :mod:`.performance`: model performance on true outcomes, and a detector on the loss.
"""
