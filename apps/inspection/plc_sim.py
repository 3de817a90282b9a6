"""A small PLC stand-in: a real pymodbus Modbus/TCP server that records coil writes.

``python -m npusuite.inspection.plc_sim --port 5020 --log writes.jsonl`` serves
coils 0..63 (and as many holding registers) for device id 1 and appends one
JSON line per coil write to ``--log``: ``{"t": epoch_s, "address": int,
"value": bool}``; ``t`` is the server's clock when the write arrived, so a
test (or the demo) can check that the reject coil was set for a part within
its window.  It prints ``READY <port>`` once it listens.  Used by the demo and
the tests; a real line talks to its real PLC instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _device(log: Path | None, coils: int):
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def record(function_code, start_address, address, count, current, set_values):
        if log is not None and function_code in (5, 15) and set_values is not None:
            now = time.time()
            with log.open("a") as fh:
                for i, value in enumerate(set_values):
                    fh.write(json.dumps({"t": now, "address": address + i, "value": bool(value)}) + "\n")
        return None

    coil_block = [SimData(0, count=coils, values=False, datatype=DataType.BITS)]
    di_block = [SimData(0, count=coils, values=False, datatype=DataType.BITS)]
    regs = [SimData(0, count=coils, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(1, simdata=(coil_block, di_block, regs, list(regs)), action=record)


def main(argv: list[str] | None = None) -> None:
    from pymodbus.server import ModbusTcpServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--log", type=Path, default=None, help="append coil writes here as JSON lines")
    parser.add_argument("--coils", type=int, default=64)
    args = parser.parse_args(argv)

    async def serve() -> None:
        server = ModbusTcpServer(_device(args.log, args.coils), address=(args.host, args.port))
        task = asyncio.create_task(server.serve_forever())
        for _ in range(100):
            if server.transport is not None:
                break
            await asyncio.sleep(0.05)
        print(f"READY {args.port}", flush=True)
        await task

    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
