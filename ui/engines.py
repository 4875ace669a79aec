"""App controls for the distributed engines: encoding the active catalog on Ray with live items/s and ETA, and
where the Train page's fit runs (this process, or Ray Train workers)."""
from __future__ import annotations

import importlib.util
from contextlib import AbstractContextManager, nullcontext

import streamlit as st

from core.errors import PrismError
from ui import components, loaders


def ray_encode_panel(ws: loaders.Workspace) -> None:
    """Address and batch-size fields and a button that (re-)encodes the catalog on Ray Data; vectors already
    in the embedding cache are not encoded again."""
    c1, c2 = st.columns([3, 1])
    address = c1.text_input("Ray address", key="ray_address", placeholder="blank = Ray on this machine; auto; "
                            "ray://HOST:10001")
    batch = c2.number_input("Batch size", min_value=1, max_value=4096, value=32, step=8, key="ray_batch")
    if not st.button("Encode on Ray", key="ray_encode", icon=":material/hub:",
                     help="Encodes the items the embedding cache does not hold yet, one actor per encoder "
                          "per worker, and stores the set exactly as a local encode does"):
        return
    from core.scale.progress import RateProgress
    from core.scale.ray_encode import RayEncodeEngine
    from core.workspace.prepare import prepare_embeddings

    bar = st.progress(0.0, text="starting Ray…")

    def draw(done: int, total: int, message: str = "") -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{done:,}/{total:,} · {message}" if message else None)

    engine = RayEncodeEngine(address=address.strip() or None)
    try:
        emb = prepare_embeddings(loaders.store(), ws.catalog, loaders.encoders(), progress=RateProgress(draw),
                                 force=True, engine=engine, batch_size=int(batch))
    except PrismError as e:
        components.show_error(e, "Encoding on Ray failed (the vectors finished so far are cached)")
        return
    finally:
        bar.empty()
    stats = engine.stats
    st.success(f"Encoded {stats.get('rows', 0):,} inputs on Ray ({stats.get('workers', 1)} worker(s), "
               f"{int(stats.get('gpus', 0))} GPU(s)); {len(emb.item_ids):,} items stored"
               if stats else f"Every vector was already cached; {len(emb.item_ids):,} items stored",
               icon=":material/check_circle:")


TRAIN_HERE = "This process"
TRAIN_RAY = "Ray Train"


def ray_installed() -> bool:
    """Whether Ray can be imported here (the Ray engines are offered only then)."""
    return importlib.util.find_spec("ray") is not None


def training_block(where: str, workers: int = 1, address: str | None = None) -> AbstractContextManager:
    """The block the Train page's fit runs in: nothing for this process, else the same training loop on Ray Train
    workers (core.scale.ray_train.RayTrainEngine); each epoch's report reaches the page's progress as locally."""
    if where != TRAIN_RAY:
        return nullcontext()
    from core.models.fusion.train import training_engine
    from core.scale.ray_train import RayTrainEngine

    return training_engine(RayTrainEngine(workers=int(workers), address=(address or "").strip() or None))

