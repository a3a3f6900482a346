"""A bare faust-streaming agent: the framework's own rate, with nothing of the pipeline behind it.

Mode ``count`` counts one-event messages. Mode ``decode`` takes the worker's batch envelopes and
decodes each with the worker's own decoder (`models.codecs.decode_message`), counting the events:
the like-with-like baseline for the worker, which does that and then classifies and stores.

Run by `schoolhealth bench pipeline` as
``python -m services.devtools._bench_faust TOPIC COUNT RESULT_FILE [count|decode FAMILY]``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faust

from models.codecs import decode_message
from services.platform.kafka_security import faust_credentials
from services.platform.settings import Settings


def main(topic_name: str, count: int, result_file: Path, family: str | None = None) -> None:
    settings = Settings()
    app = faust.App(f"{settings.topic_prefix}bare-faust", broker=f"kafka://{settings.kafka_bootstrap}",
                    broker_credentials=faust_credentials(settings), web_enabled=False,
                    topic_allow_declare=False, topic_disable_leader=True,
                    store="memory://", datadir=str(settings.state_dir / "faust" / "bench"),
                    consumer_auto_offset_reset="earliest", value_serializer="raw")
    topic = app.topic(topic_name, value_type=bytes)
    state = {"seen": 0, "started": 0.0}

    @app.agent(topic)
    async def count_events(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            if not state["seen"]:
                state["started"] = time.perf_counter()
            state["seen"] += 1 if family is None else len(decode_message(value, family=family).events)
            if state["seen"] >= count:
                # The parent reads this file and stops the process.
                result_file.write_text(json.dumps({"seconds": time.perf_counter() - state["started"]}))  # noqa: ASYNC240 - once, at the end
                return

    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    mode = sys.argv[4] if len(sys.argv) > 4 else "count"
    if mode not in ("count", "decode") or (mode == "decode") != (len(sys.argv) == 6):
        raise SystemExit("usage: _bench_faust TOPIC COUNT RESULT_FILE [count | decode FAMILY]")
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[5] if mode == "decode" else None)
