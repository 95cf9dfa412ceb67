"""Where replay outputs go: lists in memory, or one JSON-lines file per output topic.

A sink has one appender per output topic (`channels`), each taking encoded records in emission
order. `reset` forgets everything written so far (the replay starts over when it finds it must sort
its input rather than merge it); `counts` is the number of records per topic.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

OUTPUT_FILES = {
    "attributed-conversions": "attributed-conversions.jsonl",
    "unattributed-conversions": "unattributed-conversions.jsonl",
    "piggyback-fires": "piggyback-fires.jsonl",
    "dead-letters": "dead-letters.jsonl",
}


class MemorySink:
    """Outputs kept as lists of encoded records, by output topic."""

    def __init__(self) -> None:
        self.channels: dict[str, list[bytes]] = {t: [] for t in OUTPUT_FILES}

    def reset(self) -> None:
        for records in self.channels.values():
            records.clear()

    @property
    def counts(self) -> dict[str, int]:
        return {t: len(v) for t, v in self.channels.items()}

    def close(self) -> None:
        pass


class _FileChannel:
    def __init__(self, path: Path) -> None:
        self.file: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 (closed by the sink)
        self.count = 0

    def append(self, record: bytes, /) -> None:
        self.file.write(record)
        self.file.write(b"\n")
        self.count += 1


class FileSink:
    """Outputs written as they come, one line per record, to `OUTPUT_FILES` names in `directory`."""

    def __init__(self, directory: str | Path) -> None:
        out = Path(directory)
        self.channels: dict[str, _FileChannel] = {}
        try:
            for topic, name in OUTPUT_FILES.items():
                self.channels[topic] = _FileChannel(out / name)
        except BaseException:
            self.close()
            raise

    def reset(self) -> None:
        for channel in self.channels.values():
            channel.file.seek(0)
            channel.file.truncate()
            channel.count = 0

    @property
    def counts(self) -> dict[str, int]:
        return {t: c.count for t, c in self.channels.items()}

    def close(self) -> None:
        for channel in self.channels.values():
            channel.file.close()
