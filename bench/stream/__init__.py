"""The stream benchmark's parts (`python -m bench.stream_bench` is the entry point).

* `common`: the run's constants, sizes and log line.
* `measure`: CPU and memory of processes and of the machine, sampled from /proc.
* `processes`: launching and stopping the contenders, and their py-spy profiles.
* `kafka`: the benchmark's Kafka helpers (bulk producer, offsets, CreateTimes, lag).
* `run`: one run's state (`Bench`) and the figures of one contender (`RunResult`).
* `inputs`: the input traffic, produced and written as a replay file.
* `contenders`: replay, the two passthroughs and the worker runs (one or two processes).
* `phases`: state size, end-to-end latency and recovery.
* `driver`: every phase in order; `report`: the markdown table and the profile summaries.
"""
