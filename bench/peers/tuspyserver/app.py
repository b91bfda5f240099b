"""tuspyserver as a peer in tusgate's benchmark: its FastAPI router on local storage, served by
uvicorn (``uvicorn app:app``; files in ``BENCH_FILES_DIR``). Started by bench/peers.py in a
virtual environment of its own (requirements.txt beside this file), since its pins are not ours.
"""

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=os.environ["BENCH_FILES_DIR"]))
