"""Hostile model files for the loader's tests (standard library only; no torch needed).

Writes ``tests/fixtures/hostile/``:

* ``reduce_os_system.bin`` — the classic pickle payload: unpickling it calls
  ``os.system("echo executed > pickle_payload_ran")``. A loader that executes pickles would
  create ``pickle_payload_ran`` in its working directory; ours must refuse the file instead.
  It is a legacy (non-zip) pickle, the form ``torch.load`` reads from old checkpoints.
* ``reduce_os_system_zip.bin`` — the same payload inside the zip layout ``torch.save`` writes
  (``archive/data.pkl``), so both reader paths are exercised.

Run: ``python3 scripts/make_hostile_fixtures.py``. Never unpickle these files in Python.
"""

import io
import os
import pickle
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hostile"


class Payload:
    def __reduce__(self):
        return (os.system, ("echo executed > pickle_payload_ran",))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # A state dict whose only value is the payload: what a tampered checkpoint looks like.
    data = pickle.dumps({"bert.embeddings.word_embeddings.weight": Payload()}, protocol=2)
    (OUT / "reduce_os_system.bin").write_bytes(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", "3\n")
    (OUT / "reduce_os_system_zip.bin").write_bytes(buf.getvalue())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
