"""A bare faust-streaming agent that only counts one-event messages: the framework's own rate.

Run by `schoolhealth bench pipeline` as `python -m services.devtools._bench_faust TOPIC COUNT RESULT_FILE`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faust

from services.platform.kafka_security import faust_credentials
from services.platform.settings import Settings


def main(topic_name: str, count: int, result_file: Path) -> None:
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
        async for _value in stream:
            if not state["seen"]:
                state["started"] = time.perf_counter()
            state["seen"] += 1
            if state["seen"] >= count:
                # The parent reads this file and stops the process.
                result_file.write_text(json.dumps({"seconds": time.perf_counter() - state["started"]}))  # noqa: ASYNC240 - once, at the end
                return

    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
