"""A reader slower than the broker, with librdkafka's fetch backoff at its default and at 10 ms.

``python -m bench.fetch_backoff [--n N] [--cost-us C]`` writes ``N`` provenance records and their
``N`` outcomes (as the outcome rung does), then reads them all with the outcome worker's consumer
settings and with the scoring worker's, each with ``fetch.queue.backoff.ms`` at librdkafka's
default (1,000 ms) and at 10 ms. The reader spends ``C`` µs of CPU on every message, as a worker
does. Prints messages/s, the share of the time spent waiting in ``consume`` and the messages each
call returned, for each variant, twice, interleaved.

Why: when a partition's prefetch queue is full, librdkafka waits ``fetch.queue.backoff.ms`` before
fetching it again (librdkafka#2879); a reader slower than the broker then finds the queue empty and
waits in ``consume``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer

from bench.outcomes import OutcomeWorker
from stream.kafka.clients import consumer_config
from stream.outcomes.kafka import outcome_consumer_config
from stream.settings import Settings
from stream.tools.broker import EmbeddedKafka


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def read_all(config: dict[str, Any], topics: list[str], n: int, cost_s: float) -> dict[str, float]:
    """Read ``n`` messages with ``config``, spending ``cost_s`` of CPU on each."""
    consumer = Consumer({**config, "group.id": f"bench-fetch-{uuid.uuid4().hex}"})
    consumer.subscribe(topics)
    got = calls = 0
    waited, started = 0.0, None
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        before = time.perf_counter()
        messages = consumer.consume(256, 0.01)
        if started is None:
            if not messages:
                continue
            started = time.perf_counter()
        else:
            waited += time.perf_counter() - before
            calls += 1
        got += len(messages)
        _spin(cost_s * len(messages))
    consumer.close()
    took = time.perf_counter() - (started or time.perf_counter())
    return {
        "messages_per_s": round(got / took),
        "waiting_in_consume": round(waited / took, 3),
        "per_call": round(got / max(1, calls)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="provenance records, and as many outcomes")
    parser.add_argument("--cost-us", type=float, default=40.0, help="CPU spent on each message")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with EmbeddedKafka() as kafka:
        writer = OutcomeWorker(kafka.bootstrap_servers)
        writer.write(args.n, outcomes=True)
        settings = Settings(kafka_bootstrap_servers=kafka.bootstrap_servers, app_id=writer.base)
        base = {
            "outcome worker": outcome_consumer_config(settings),
            "scoring worker": consumer_config(settings),
        }
        for _ in range(2):
            for name, config in base.items():
                for backoff in (1000, 10):
                    variant = f"{name}, fetch.queue.backoff.ms={backoff}"
                    run = read_all(
                        {**config, "fetch.queue.backoff.ms": backoff},
                        [writer.provenance, writer.outcomes],
                        2 * args.n,
                        args.cost_us / 1e6,
                    )
                    print(variant, run, flush=True)
                    results.setdefault(variant, []).append(run)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
