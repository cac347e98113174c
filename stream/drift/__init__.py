"""Drift statistics, with no Kafka: what the worker's drift reports compute.

- :mod:`.monitor`: data drift against the model card's reference: windows, distances, detectors;
- :mod:`.state`: the saved form of one partition's drift state (versioned JSON, plain numbers);
- :mod:`.river_state`: River's change detectors as plain numbers and back;
- :mod:`.performance`: model performance on true outcomes, and a detector on the loss.
"""
